"""The annotation tabs (rating, distortion labelling, admin) and their named API endpoints. Gradio lives here only.

from annotation.tabs import create_rating_tab, create_labelling_tab, create_admin_tab, add_annotation_api
"""

from annotation.tabs.admin import create_admin_tab
from annotation.tabs.api import add_annotation_api
from annotation.tabs.labelling import create_labelling_tab
from annotation.tabs.rating import create_rating_tab

__all__ = ["add_annotation_api", "create_admin_tab", "create_labelling_tab", "create_rating_tab"]

"""The psychologists' rating and distortion-labelling store and tabs. Imports cbt/ and eval/.

Not built yet: see the annotation issue.
"""

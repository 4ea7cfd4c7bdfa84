"""CBT-LLM Studio core: CBT QA data, prompts, text analysis and generation backends.

Imports nothing heavy (no torch, no gradio) at module import time, so the CLI and tests start fast.
"""

__version__ = "0.1.0"

"""Gradio tabs of the evaluation package (the only place eval/ imports gradio)."""

from eval.tabs.evaluation import create_evaluation_tab

__all__ = ["create_evaluation_tab"]

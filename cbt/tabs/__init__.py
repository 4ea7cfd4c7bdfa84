"""Gradio tabs, one create_<tab>_tab() per module. Only these modules and app.py import gradio."""

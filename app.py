"""CBT-LLM Studio: the Gradio app. Wires one tab per module to the packages; implements nothing itself.

python app.py          # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT respected)
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr

from cbt.io import load_sample
from cbt.tabs.browse import create_browse_tab
from cbt.tabs.common import notice

TITLE = "CBT-LLM Studio"


def build_app() -> gr.Blocks:
    """The whole UI; each tab module wires its widgets to functions of cbt/, train/, eval/, annotation/."""
    records = load_sample()
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLE}\nCognitive-behavioural-therapy question answering, after the CBT-LLM paper.")
        notice()
        with gr.Tabs():
            create_browse_tab(records)
    return demo


def main() -> None:
    demo = build_app()
    demo.queue(max_size=64, default_concurrency_limit=4)
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        share=False,
        ssr_mode=False,  # gradio 6.27-6.31 auth-bypass advisory needs SSR
        run_history=False,
        enable_monitoring=False,
        max_file_size="1mb",
        footer_links=[],
    )


if __name__ == "__main__":
    main()

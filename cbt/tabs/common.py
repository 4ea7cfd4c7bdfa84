"""Pieces every tab shares: the AI notice and the section legend."""

from __future__ import annotations

import gradio as gr

from cbt.browse import colour_map

AI_NOTICE = (
    "**This is an AI research demo, not a therapist and not a substitute for professional care.** "
    "本应用是人工智能研究演示，不是心理治疗师，不能替代专业的心理治疗或医疗帮助。"
    "如有自伤或自杀的想法，请立即拨打全国心理援助热线 12356，或 110 / 120。"
)


def notice() -> gr.Markdown:
    return gr.Markdown(AI_NOTICE, elem_id="ai-notice")


def highlighted(label: str, elem_id: str | None = None, value: list | None = None) -> gr.HighlightedText:
    """A read-only, colour-coded answer view; text is rendered as text, never as HTML."""
    return gr.HighlightedText(
        value, label=label, color_map=colour_map(), show_legend=True, combine_adjacent=True, elem_id=elem_id
    )

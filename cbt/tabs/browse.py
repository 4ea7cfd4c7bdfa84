"""The browse tab: read the CBT QA sample set (question, description, answer with its five sections)."""

from __future__ import annotations

from collections.abc import Sequence

import gradio as gr

from cbt.browse import filter_records, view_record
from cbt.schema import CBTRecord
from cbt.tabs.common import highlighted


def _options(records: Sequence[CBTRecord]) -> tuple[list[tuple[str, str]], str | None]:
    opts = [(f"{r.id} · {r.question}", r.id) for r in records]
    return opts, (opts[0][1] if opts else None)


def create_browse_tab(records: Sequence[CBTRecord]) -> None:
    """Search box, topic filter and a record picker wired to cbt.browse."""
    topics = sorted({r.topic for r in records if r.topic})
    with gr.Tab("Browse data 浏览数据", id="browse"):
        gr.Markdown(
            f"The CBT QA sample set shipped with the project: {len(records)} records written for this project "
            "(not PsyQA text). Sections are the recorded gold annotation."
        )
        with gr.Row():
            query = gr.Textbox(label="Search 搜索", placeholder="e.g. 失眠", scale=3, elem_id="browse-query")
            topic = gr.Dropdown(["", *topics], value="", label="Topic 主题", scale=1)
        options, first = _options(records)
        picker = gr.Dropdown(options, value=first, label="Record 记录", elem_id="browse-picker")
        count = gr.Markdown(f"{len(records)} record(s)")
        q0, d0, a0, c0 = show(first, records)
        question = gr.Textbox(q0, label="Question 问题", interactive=False, elem_id="browse-question")
        description = gr.Textbox(d0, label="Description 描述", interactive=False, lines=4)
        answer = highlighted("Answer 回答 (five CBT sections)", elem_id="browse-answer", value=a0)
        distortions = gr.Markdown(c0, elem_id="browse-distortions")

        def choices(q: str, t: str):
            found = filter_records(records, q, t)
            opts, top = _options(found)
            return gr.Dropdown(choices=opts, value=top), f"{len(found)} record(s)"

        for trigger in (query.submit, topic.change):
            trigger(choices, [query, topic], [picker, count])
        picker.change(lambda rid: show(rid, records), picker, [question, description, answer, distortions])


def show(rid: str | None, records: Sequence[CBTRecord]) -> tuple[str, str, list, str]:
    """Field values for one record id (empty when the id is unknown)."""
    rec = next((r for r in records if r.id == rid), None)
    if rec is None:
        return "", "", [], ""
    v = view_record(rec)
    chips = " ".join(f"`{d}`" for d in v.distortions) or "none named"
    return v.question, v.description, v.pieces, f"**Distortions named:** {chips} · sections: {v.source_of_sections}"

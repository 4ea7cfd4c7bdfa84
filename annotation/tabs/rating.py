"""The psychologists' rating tab (the paper's Table 5): three 0-2 scores per answer, each click saved at once.

The backbone that wrote an answer is never sent to the browser; the order is the store's per-rater shuffle, and
the tab opens at the rater's first unfinished item.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from annotation import ui
from annotation.store import AnnotationStore
from annotation.tabs.login import TaskPage, create_login, on_page_load, shared_token
from cbt.tabs.common import highlighted


class RatingPage(TaskPage):
    task = "rating"

    def __init__(self, store: AnnotationStore, token: gr.BrowserState) -> None:
        super().__init__(store)
        self.token = token
        with gr.Tab("Rate answers 回答评分", id="rate"):
            self.login = create_login(store, token, "rate")
            with gr.Column(visible=False, elem_id="rate-work") as self.work:
                self.layout()
            self.item_id = gr.State(None)
        self.item = [self.heading, self.progress, self.question, self.description, self.response, self.pieces,
                     *self.scores.values(), self.comment, self.flag, self.item_id, self.status]  # fmt: skip
        self.n_item = len(self.item)

    def layout(self) -> None:
        with gr.Accordion("Guidelines 评分指南 (paper, Appendix A)", open=False):
            gr.Markdown(ui.rating_guidelines_markdown(), elem_id="rate-guidelines")
        with gr.Row():
            self.heading = gr.Markdown(elem_id="rate-heading")
            self.progress = gr.Markdown(elem_id="rate-progress")
        self.question = gr.Textbox(label="Question 问题", interactive=False, elem_id="rate-question")
        self.description = gr.Textbox(label="Description 描述", interactive=False, lines=3, elem_id="rate-description")
        self.response = gr.Textbox(label="Answer 回答", interactive=False, lines=10, elem_id="rate-response")
        self.pieces = highlighted("Answer by CBT section 回答（按五部分着色）", elem_id="rate-highlight")
        self.scores = {
            m: gr.Radio(ui.score_choices(m), label=ui.metric_label(m), info=ui.metric(m)["description"]["en"],
                        elem_id=f"rate-{m}")
            for m in ui.METRICS
        }  # fmt: skip
        self.comment = gr.Textbox(label="Comment 备注 (optional; saved as you type, at the latest on leaving the box)",
                                  lines=2, max_length=2000, elem_id="rate-comment")  # fmt: skip
        self.typed_at = gr.Number(visible=False)  # the browser's clock of a typed save (TaskPage.wire_text)
        self.flag = gr.Checkbox(label="Flag 标记 (harmful or needs follow-up)", elem_id="rate-flag")
        with gr.Row():
            self.prev = gr.Button("← Prev 上一条", elem_id="rate-prev")
            self.skip_btn = gr.Button("Skip 跳过", elem_id="rate-skip")
            self.next = gr.Button("Next 下一条 →", variant="primary", elem_id="rate-next")
        self.status = gr.Markdown(elem_id="rate-status")
        with gr.Accordion("Settings 设置", open=False):
            self.show_sections = gr.Checkbox(
                False, label="Highlight the five CBT sections (may bias the structure score) 高亮五部分",
                elem_id="rate-show-sections",
            )  # fmt: skip

    def item_outputs(self, tok: str, view: ui.ItemView | None, option: Any, note: str) -> tuple:
        done = ui.progress_text(self.call("progress", tok))
        if view is None:
            return ("### All done 全部完成 — thank you 谢谢", done, "", "", "", gr.update(visible=False),
                    *[None] * len(self.scores), "", False, None, note)  # fmt: skip
        s = view.saved
        marks = " · skipped 已跳过" * bool(s.get("skipped")) + " · flagged 已标记" * bool(s.get("flag"))
        pieces = gr.update(value=view.pieces, visible=view.pieces is not None)
        scores = [s.get(m) for m in self.scores]
        return (f"### {view.heading}{marks}", done, view.question, view.description, view.response, pieces, *scores,
                s.get("comment") or "", bool(s.get("flag")), view.item_id, note)  # fmt: skip

    def wire(self) -> None:
        page = [self.login.box, self.work, self.login.who, self.login.logout, *self.item]
        ask = [self.token, self.item_id, self.show_sections]
        for m, radio in self.scores.items():
            radio.input(self.saver(m), [self.token, self.item_id, radio], [self.status, self.progress], queue=False)
        saved = [self.status, self.progress]
        self.wire_text(self.comment, self.typed_at, "comment", [self.token, self.item_id], saved)
        self.flag.input(self.saver("flag"), [self.token, self.item_id, self.flag], [self.status, self.progress],
                        queue=False)  # fmt: skip
        self.skip_btn.click(self.skip, ask, page, queue=False)
        self.prev.click(lambda t, i, h: self.go(t, i, h, -1), ask, page, queue=False)
        self.next.click(lambda t, i, h: self.go(t, i, h, 1), ask, page, queue=False)
        self.show_sections.input(lambda t, i, h: self.go(t, i, h, 0), ask, page, queue=False)
        self.token.change(lambda t, h: self.go(t, None, h), [self.token, self.show_sections], page, queue=False)
        on_page_load(lambda t, h: self.go(t, None, h), [self.token, self.show_sections], page)


def create_rating_tab(store: AnnotationStore, token: gr.BrowserState | None = None) -> None:
    """The tab; `token` is the shared login state (made once per app when not given)."""
    RatingPage(store, token or shared_token()).wire()

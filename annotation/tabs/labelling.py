"""The distortion-labelling tab (ground truth for the paper's Table 3): the rater names the distortions the asker's
own words show, the key thought and a confidence; each change saved at once.

The model's answer is not sent to the browser unless the rater asks for it, so it cannot anchor the labels.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from annotation import ui
from annotation.store import AnnotationError, AnnotationStore
from annotation.tabs.login import TaskPage, create_login, current_session, on_page_load, shared_token


class LabellingPage(TaskPage):
    task = "label"

    def __init__(self, store: AnnotationStore, token: gr.BrowserState) -> None:
        super().__init__(store)
        self.token = token
        with gr.Tab("Label distortions 认知歪曲标注", id="label"):
            self.login = create_login(store, token, "label")
            with gr.Column(visible=False, elem_id="label-work") as self.work:
                self.layout()
            self.item_id = gr.State(None)
        self.item = [self.heading, self.progress, self.question, self.description, self.distortions, self.key_thought,
                     self.confidence, self.item_id, self.status, self.show_answer, self.answer]  # fmt: skip
        self.n_item = len(self.item)

    def layout(self) -> None:
        with gr.Accordion("Guidelines 标注指南", open=False):
            gr.Markdown(ui.labelling_guidelines_markdown(), elem_id="label-guidelines")
        with gr.Row():
            self.heading = gr.Markdown(elem_id="label-heading")
            self.progress = gr.Markdown(elem_id="label-progress")
        self.question = gr.Textbox(label="Question 问题", interactive=False, elem_id="label-question")
        self.description = gr.Textbox(
            label="Description 描述", interactive=False, lines=3, elem_id="label-description"
        )
        self.distortions = gr.CheckboxGroup(ui.distortion_choices(), label="Distortions 认知歪曲 (or none 无)",
                                            elem_id="label-distortions")  # fmt: skip
        self.key_thought = gr.Textbox(label="Key thought, in your words 关键想法（用你自己的话；离开输入框即保存）",
                                      lines=2, max_length=1000, elem_id="label-key-thought")  # fmt: skip
        self.typed_at = gr.Number(visible=False)  # the browser's clock of a typed save (TaskPage.wire_text)
        self.confidence = gr.Radio(ui.confidence_choices(), label="Confidence 把握程度", elem_id="label-confidence")
        with gr.Row():
            self.prev = gr.Button("← Prev 上一条", elem_id="label-prev")
            self.skip_btn = gr.Button("Skip 跳过", elem_id="label-skip")
            self.next = gr.Button("Next 下一条 →", variant="primary", elem_id="label-next")
        self.status = gr.Markdown(elem_id="label-status")
        self.show_answer = gr.Checkbox(
            False, label="Show the model's answer 显示模型回答", elem_id="label-show-answer"
        )
        self.answer = gr.Textbox(label="Model's answer 模型回答", interactive=False, lines=8, visible=False,
                                 elem_id="label-answer")  # fmt: skip

    def item_outputs(self, tok: str, view: ui.ItemView | None, option: Any, note: str) -> tuple:
        """Every item opens with the model's answer hidden (and not sent) again."""
        done = ui.progress_text(self.call("progress", tok))
        hidden = False, gr.update(value="", visible=False)
        if view is None:
            return "### All done 全部完成 — thank you 谢谢", done, "", "", [], "", None, None, note, *hidden
        s = view.saved
        return (f"### {view.heading}" + " · skipped 已跳过" * bool(s.get("skipped")), done, view.question,
                view.description, s.get("distortions") or [], s.get("key_thought") or "", s.get("confidence"),
                view.item_id, note, *hidden)  # fmt: skip

    def on_distortions(self, tok: str | None, current: str | None, chosen: list[str]) -> tuple:
        """Keep "none" exclusive in the boxes (against what was saved before), then save the list."""
        try:
            before = self.call("get", tok, current)["saved"].get("distortions") if current else []
        except AnnotationError:
            before = []
        chosen = ui.normalize_distortions(chosen, before)
        return chosen, *self.saver("distortions")(tok, current, chosen)

    def reveal(self, tok: str | None, current: str | None, show: bool) -> dict:
        if not (show and current and current_session(self.store, tok)):
            return gr.update(value="", visible=False)
        return gr.update(value=self.call("get", tok, current).get("response") or "(no answer 无回答)", visible=True)

    def wire(self) -> None:
        page = [self.login.box, self.work, self.login.who, self.login.logout, *self.item]
        ask, saved = [self.token, self.item_id], [self.status, self.progress]
        self.distortions.input(self.on_distortions, [*ask, self.distortions], [self.distortions, *saved], queue=False)
        self.wire_text(self.key_thought, self.typed_at, "key_thought", ask, saved)  # as typed; the newest text wins
        self.confidence.input(self.saver("confidence"), [*ask, self.confidence], saved, queue=False)
        self.skip_btn.click(self.skip, ask, page, queue=False)
        self.prev.click(lambda t, i: self.go(t, i, None, -1), ask, page, queue=False)
        self.next.click(lambda t, i: self.go(t, i, None, 1), ask, page, queue=False)
        self.show_answer.input(self.reveal, [*ask, self.show_answer], [self.answer], queue=False)
        self.token.change(lambda t: self.go(t, None), [self.token], page, queue=False)
        on_page_load(lambda t: self.go(t, None), [self.token], page)


def create_labelling_tab(store: AnnotationStore, token: gr.BrowserState | None = None) -> None:
    """The tab; `token` is the shared login state (made once per app when not given)."""
    LabellingPage(store, token or shared_token()).wire()

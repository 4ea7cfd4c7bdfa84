"""The distortion-labelling tab (ground truth for the paper's Table 3): the rater names the distortions the asker's
own words show, the key thought and a confidence; each change saved at once.

The model's answer is not sent to the browser unless the rater asks for it, so it cannot anchor the labels.
"""

from __future__ import annotations

import gradio as gr

from annotation import ui
from annotation.store import AnnotationError, AnnotationStore
from annotation.tabs.login import create_login, current_session, on_page_load, shared_token, who_text


def create_labelling_tab(store: AnnotationStore, token: gr.BrowserState | None = None) -> None:
    """The tab; `token` is the shared login state (made once per app when not given)."""
    token = token or shared_token()
    with gr.Tab("Label distortions 认知歪曲标注", id="label"):
        login = create_login(store, token, "label")
        with gr.Column(visible=False, elem_id="label-work") as work:
            with gr.Accordion("Guidelines 标注指南", open=False):
                gr.Markdown(ui.labelling_guidelines_markdown(), elem_id="label-guidelines")
            with gr.Row():
                heading = gr.Markdown(elem_id="label-heading")
                progress = gr.Markdown(elem_id="label-progress")
            question = gr.Textbox(label="Question 问题", interactive=False, elem_id="label-question")
            description = gr.Textbox(label="Description 描述", interactive=False, lines=3, elem_id="label-description")
            distortions = gr.CheckboxGroup(ui.distortion_choices(), label="Distortions 认知歪曲 (or none 无)",
                                           elem_id="label-distortions")  # fmt: skip
            key_thought = gr.Textbox(label="Key thought, in your words 关键想法（用你自己的话）", lines=2,
                                     max_length=1000, elem_id="label-key-thought")  # fmt: skip
            confidence = gr.Radio(ui.confidence_choices(), label="Confidence 把握程度", elem_id="label-confidence")
            with gr.Row():
                prev = gr.Button("← Prev 上一条", elem_id="label-prev")
                skip = gr.Button("Skip 跳过", elem_id="label-skip")
                nxt = gr.Button("Next 下一条 →", variant="primary", elem_id="label-next")
            status = gr.Markdown(elem_id="label-status")
            show_answer = gr.Checkbox(False, label="Show the model's answer 显示模型回答", elem_id="label-show-answer")
            answer = gr.Textbox(label="Model's answer 模型回答", interactive=False, lines=8, visible=False,
                                elem_id="label-answer")  # fmt: skip
        item_id = gr.State(None)

    page = [login.box, work, login.who, login.logout, heading, progress, question, description, distortions,
            key_thought, confidence, item_id, status, show_answer, answer]  # fmt: skip

    def render(tok: str | None, item: dict | None, note: str = "") -> tuple:
        """Every new item opens with the answer hidden again."""
        session = current_session(store, tok)
        if session is None:
            return (gr.update(visible=True), gr.update(visible=False), "", gr.update(visible=False),
                    *[gr.update()] * (len(page) - 4))  # fmt: skip
        view = ui.item_view(item)
        done = ui.progress_text(store.label_progress(tok))
        head = [gr.update(visible=False), gr.update(visible=True), who_text(session), gr.update(visible=True)]
        hidden = [False, gr.update(value="", visible=False)]
        if view is None:
            return (*head, "### All done 全部完成 — thank you 谢谢", done, "", "", [], "", None, None, note, *hidden)
        s = view.saved
        skipped = " · skipped 已跳过" if s.get("skipped") else ""
        return (*head, f"### {view.heading}{skipped}", done, view.question, view.description,
                s.get("distortions") or [], s.get("key_thought") or "", s.get("confidence"), view.item_id, note,
                *hidden)  # fmt: skip

    def go(tok: str | None, current: str | None, step: int, note: str = "") -> tuple:
        if current_session(store, tok) is None:
            return render(tok, None)
        target = ui.neighbour(store.label_list(tok), current, step) if step else current
        if target is None and step:
            target, note = current, ui.edge_text(step)
        return render(tok, store.label_get(tok, target) if target else store.label_next(tok), note)

    def save(tok: str | None, current: str | None, fields: dict) -> tuple[bool, str]:
        if not current:
            return False, "✗ no item open"
        try:
            store.save_label(tok, current, **fields)
        except AnnotationError as exc:
            gr.Warning(str(exc))
            return False, ui.error_text(exc)
        return True, ui.saved_text(fields)

    def saver(field: str):
        def on_input(tok: str | None, current: str | None, value) -> tuple:
            ok, note = save(tok, current, {field: value})
            return note, ui.progress_text(store.label_progress(tok)) if ok else gr.update()

        return on_input

    def on_distortions(tok: str | None, current: str | None, chosen: list) -> tuple:
        """Keep "none" exclusive in the boxes (against what was saved before), then save the list."""
        try:
            before = store.label_get(tok, current)["saved"].get("distortions") if current else []
        except AnnotationError:
            before = []
        chosen = ui.normalize_distortions(chosen, before)
        return chosen, *saver("distortions")(tok, current, chosen)

    def skip_item(tok: str | None, current: str | None) -> tuple:
        ok, note = save(tok, current, {"skipped": True})
        return render(tok, store.label_next(tok), note) if ok else go(tok, current, 0, note)

    def reveal(tok: str | None, current: str | None, show: bool) -> dict:
        if not (show and current and current_session(store, tok)):
            return gr.update(value="", visible=False)
        return gr.update(value=store.label_get(tok, current).get("response") or "(no answer 无回答)", visible=True)

    distortions.input(on_distortions, [token, item_id, distortions], [distortions, status, progress], queue=False)
    key_thought.blur(saver("key_thought"), [token, item_id, key_thought], [status, progress], queue=False)
    confidence.input(saver("confidence"), [token, item_id, confidence], [status, progress], queue=False)
    skip.click(skip_item, [token, item_id], page, queue=False)
    prev.click(lambda t, i: go(t, i, -1), [token, item_id], page, queue=False)
    nxt.click(lambda t, i: go(t, i, 1), [token, item_id], page, queue=False)
    show_answer.input(reveal, [token, item_id, show_answer], [answer], queue=False)
    token.change(lambda t: go(t, None, 0), [token], page, queue=False)
    on_page_load(lambda t: go(t, None, 0), [token], page)

"""The psychologists' rating tab (the paper's Table 5): three 0-2 scores per answer, each click saved at once.

The backbone that wrote an answer is never sent to the browser; the order is the store's per-rater shuffle, and
the tab opens at the rater's first unfinished item.
"""

from __future__ import annotations

import gradio as gr

from annotation import ui
from annotation.store import AnnotationError, AnnotationStore
from annotation.tabs.login import create_login, current_session, on_page_load, shared_token, who_text
from cbt.tabs.common import highlighted


def create_rating_tab(store: AnnotationStore, token: gr.BrowserState | None = None) -> None:
    """The tab; `token` is the shared login state (made once per app when not given)."""
    token = token or shared_token()
    with gr.Tab("Rate answers 回答评分", id="rate"):
        login = create_login(store, token, "rate")
        with gr.Column(visible=False, elem_id="rate-work") as work:
            with gr.Accordion("Guidelines 评分指南 (paper, Appendix A)", open=False):
                gr.Markdown(ui.rating_guidelines_markdown(), elem_id="rate-guidelines")
            with gr.Row():
                heading = gr.Markdown(elem_id="rate-heading")
                progress = gr.Markdown(elem_id="rate-progress")
            question = gr.Textbox(label="Question 问题", interactive=False, elem_id="rate-question")
            description = gr.Textbox(label="Description 描述", interactive=False, lines=3, elem_id="rate-description")
            response = gr.Textbox(label="Answer 回答", interactive=False, lines=10, elem_id="rate-response")
            pieces = highlighted("Answer by CBT section 回答（按五部分着色）", elem_id="rate-highlight")
            scores = {
                m: gr.Radio(ui.score_choices(m), label=ui.metric_label(m), info=ui.metric(m)["description"]["en"],
                            elem_id=f"rate-{m}")
                for m in ui.METRICS
            }  # fmt: skip
            comment = gr.Textbox(label="Comment 备注 (optional, saved when you leave the box)", lines=2,
                                 max_length=2000, elem_id="rate-comment")  # fmt: skip
            flag = gr.Checkbox(label="Flag 标记 (harmful or needs follow-up)", elem_id="rate-flag")
            with gr.Row():
                prev = gr.Button("← Prev 上一条", elem_id="rate-prev")
                skip = gr.Button("Skip 跳过", elem_id="rate-skip")
                nxt = gr.Button("Next 下一条 →", variant="primary", elem_id="rate-next")
            status = gr.Markdown(elem_id="rate-status")
            with gr.Accordion("Settings 设置", open=False):
                show_sections = gr.Checkbox(
                    False, label="Highlight the five CBT sections (may bias the structure score) 高亮五部分",
                    elem_id="rate-show-sections",
                )  # fmt: skip
        item_id = gr.State(None)

    page = [login.box, work, login.who, login.logout, heading, progress, question, description, response, pieces,
            *scores.values(), comment, flag, item_id, status]  # fmt: skip

    def render(tok: str | None, item: dict | None, highlight: bool, note: str = "") -> tuple:
        session = current_session(store, tok)
        if session is None:
            return (gr.update(visible=True), gr.update(visible=False), "", gr.update(visible=False),
                    *[gr.update()] * (len(page) - 4))  # fmt: skip
        view = ui.item_view(item, bool(highlight))
        done = ui.progress_text(store.rating_progress(tok))
        head = [gr.update(visible=False), gr.update(visible=True), who_text(session), gr.update(visible=True)]
        if view is None:
            return (*head, "### All done 全部完成 — thank you 谢谢", done, "", "", "", gr.update(visible=False),
                    *[None] * len(scores), "", False, None, note)  # fmt: skip
        s = view.saved
        pieces_update = gr.update(value=view.pieces, visible=view.pieces is not None)
        flags = "".join(
            [" · skipped 已跳过" if s.get("skipped") else "", " · flagged 已标记" if s.get("flag") else ""]
        )
        return (*head, f"### {view.heading}{flags}", done, view.question, view.description, view.response,
                pieces_update, *[s.get(m) for m in scores], s.get("comment") or "", bool(s.get("flag")),
                view.item_id, note)  # fmt: skip

    def resume(tok: str | None, highlight: bool) -> tuple:
        session = current_session(store, tok)
        return render(tok, store.rating_next(tok) if session else None, highlight)

    def go(tok: str | None, current: str | None, highlight: bool, step: int, note: str = "") -> tuple:
        if current_session(store, tok) is None:
            return render(tok, None, highlight)
        target = ui.neighbour(store.rating_list(tok), current, step) if step else current
        if target is None and step:
            target, note = current, ui.edge_text(step)
        return render(tok, store.rating_get(tok, target) if target else store.rating_next(tok), highlight, note)

    def save(tok: str | None, current: str | None, fields: dict) -> tuple[bool, str]:
        """Save only the changed field(s); the note says "saved" only once the store has committed."""
        if not current:
            return False, "✗ no item open"
        try:
            store.save_rating(tok, current, **fields)
        except AnnotationError as exc:  # AuthError included: expired session, not yours
            gr.Warning(str(exc))
            return False, ui.error_text(exc)
        return True, ui.saved_text(fields)

    def saver(field: str):
        def on_input(tok: str | None, current: str | None, value) -> tuple:
            ok, note = save(tok, current, {field: value})
            return note, ui.progress_text(store.rating_progress(tok)) if ok else gr.update()

        return on_input

    def skip_item(tok: str | None, current: str | None, highlight: bool) -> tuple:
        ok, note = save(tok, current, {"skipped": True})
        return render(tok, store.rating_next(tok), highlight, note) if ok else go(tok, current, highlight, 0, note)

    for m, radio in scores.items():
        radio.input(saver(m), [token, item_id, radio], [status, progress], queue=False)
    comment.blur(saver("comment"), [token, item_id, comment], [status, progress], queue=False)
    flag.input(saver("flag"), [token, item_id, flag], [status, progress], queue=False)
    skip.click(skip_item, [token, item_id, show_sections], page, queue=False)
    prev.click(lambda t, i, h: go(t, i, h, -1), [token, item_id, show_sections], page, queue=False)
    nxt.click(lambda t, i, h: go(t, i, h, 1), [token, item_id, show_sections], page, queue=False)
    show_sections.input(lambda t, i, h: go(t, i, h, 0), [token, item_id, show_sections], page, queue=False)
    token.change(resume, [token, show_sections], page, queue=False)
    on_page_load(resume, [token, show_sections], page)

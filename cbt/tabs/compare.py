"""The comparison tab: one question to 2-4 backbones side by side, with an optional blind A/B vote."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from cbt.backends.base import GenParams
from cbt.backends.registry import BackendManager
from cbt.compare import blind_order, compare
from cbt.limits import max_message_chars, request_keys, shared_limiter
from cbt.tabs.common import highlighted

MAX_COLUMNS = 4


def create_compare_tab(manager: BackendManager, save_vote: Callable[[dict], object]) -> None:
    with gr.Tab("Compare 对比", id="compare"):
        gr.Markdown("Ask one question of several backbones at once. Tick *blind* to vote before seeing names.")
        cap = max_message_chars()  # question + newline + description together; the server checks the sum
        question = gr.Textbox(label="Question 问题", elem_id="cmp-question", max_length=cap // 5)
        description = gr.Textbox(
            label="Description 描述", lines=3, elem_id="cmp-description", max_length=cap - cap // 5 - 1
        )
        with gr.Row():
            chosen = gr.CheckboxGroup(
                [(manager.label(b), b) for b in manager.specs],
                value=[b for b in manager.specs if b in manager.backends][:2],
                label="Backbones (2-4)",
                elem_id="cmp-backbones",
            )
            blind = gr.Checkbox(False, label="Blind A/B 盲评", elem_id="cmp-blind")
        run = gr.Button("Compare 对比", variant="primary", elem_id="cmp-run")
        crisis = gr.Markdown(visible=False, elem_id="cmp-crisis")
        state = gr.State([])
        titles, views, metas = [], [], []
        with gr.Row():
            for k in range(MAX_COLUMNS):
                with gr.Column(visible=False, min_width=240) as col:
                    titles.append((col, gr.Markdown(elem_id=f"cmp-title-{k}")))
                    views.append(highlighted(f"Answer {chr(65 + k)}", elem_id=f"cmp-answer-{k}"))
                    metas.append(gr.Markdown(elem_id=f"cmp-meta-{k}"))
        with gr.Row(visible=False) as vote_row:
            vote = gr.Radio([], label="Which answer is better? 哪个回答更好？", elem_id="cmp-vote")
            submit_vote = gr.Button("Save vote 保存", elem_id="cmp-vote-save")
        vote_note = gr.Markdown(elem_id="cmp-vote-note")

        def on_run(q, d, bids, is_blind, request: gr.Request):
            empty = [gr.Column(visible=False), "", [], ""] * MAX_COLUMNS + [gr.update()]
            try:
                order = blind_order(bids) if is_blind else list(bids)
                params = GenParams(max_new_tokens=512, temperature=0.7)
                allow = shared_limiter().guard(*request_keys(request))
                cols, crisis_text = compare(manager, order, q, d, params, allow=allow)
            except ValueError as exc:
                return [gr.Markdown(f"Warning: {exc}", visible=True), [], gr.Row(visible=False), "", *empty]
            if crisis_text:
                return [gr.Markdown(crisis_text, visible=True), [], gr.Row(visible=False), "", *empty]
            updates = []
            for k in range(MAX_COLUMNS):
                if k < len(cols):
                    c = cols[k]
                    name = f"Answer {chr(65 + k)}" if is_blind else manager.label(c.backbone)
                    meta = f"Warning: {c.error}" if c.error else (
                        f"structure {c.structure_score:.2f} · {c.chars} chars · {c.latency_s:.2f} s")  # fmt: skip
                    updates += [gr.Column(visible=True), f"### {name}", c.pieces, meta]
                else:
                    updates += [gr.Column(visible=False), "", [], ""]
            letters = [(f"Answer {chr(65 + k)}", c.backbone) for k, c in enumerate(cols)] + [("Tie 平局", "tie")]
            record = {"question": q, "description": d, "columns": [c.backbone for c in cols], "blind": is_blind}
            return [gr.Markdown(visible=False), record, gr.Row(visible=True), "", *updates, gr.Radio(letters)]

        def on_vote(record, winner):
            if not record or not winner:
                return "Warning: run a comparison and pick an answer first"
            save_vote({**record, "winner": winner})
            names = ", ".join(f"{chr(65 + k)} = {manager.label(b)}" for k, b in enumerate(record["columns"]))
            return f"Vote saved. {names}"

        col_outputs = []
        for (col, title), view, meta in zip(titles, views, metas, strict=True):
            col_outputs += [col, title, view, meta]
        run.click(
            on_run, [question, description, chosen, blind], [crisis, state, vote_row, vote_note, *col_outputs, vote]
        )
        submit_vote.click(on_vote, [state, vote], vote_note)

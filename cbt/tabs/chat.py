"""The chat tab: streamed replies with the five sections highlighted, crisis check first."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from cbt.backends.base import GenParams
from cbt.backends.registry import BackendManager
from cbt.chat import flatten_history, respond
from cbt.limits import check_length, max_message_chars, request_keys, shared_limiter
from cbt.prompter import Prompter
from cbt.safety import crisis_reply
from cbt.tabs.common import highlighted

EXAMPLES = [
    "总觉得同事都在背后议论我，怎么办？最近开会发言时大家一笑，我就觉得是在笑我，回家以后反复想，晚上也睡不好。",
    "考研二战又失败了，我是不是一无是处？家里人嘴上不说，可我觉得他们很失望，我也不知道接下来该做什么。",
    "和男朋友吵架后他两天没回消息，是不是不爱我了？我发了很多条，他只回了一句在忙。",
]


def backbone_choices(manager: BackendManager) -> list[tuple[str, str]]:
    return [(f"{manager.label(b)} · {manager.status[b].state}", b) for b in manager.specs]


def create_chat_tab(manager: BackendManager) -> None:
    with gr.Tab("Chat 对话", id="chat"):
        status = gr.Markdown(manager.status_markdown(), elem_id="chat-status")
        with gr.Row():
            backbone = gr.Dropdown(
                backbone_choices(manager), value=manager.preferred(), label="Backbone 模型", elem_id="chat-backbone"
            )
        # Model output is untrusted: shown as text (no markdown), HTML sanitized, no custom tags, no file links.
        chatbot = gr.Chatbot(
            label="对话", height=360, elem_id="chat-history", render_markdown=False, sanitize_html=True,
            allow_tags=False, allow_file_downloads=False,
        )  # fmt: skip
        crisis = gr.Markdown(visible=False, elem_id="crisis-block")
        with gr.Row():
            message = gr.Textbox(
                placeholder="说说你的困扰（问题 + 描述）… Describe what troubles you", scale=5, show_label=False,
                elem_id="chat-input", max_length=max_message_chars(),
            )  # fmt: skip
            send = gr.Button("Send 发送", variant="primary", scale=1, elem_id="chat-send")
        gr.Examples(EXAMPLES, inputs=message, label="Examples 示例")
        latest = highlighted("Latest reply, by CBT section 最新回复（按 CBT 五部分着色）", elem_id="chat-highlight")
        info = gr.Markdown(elem_id="chat-info")
        with gr.Accordion("Settings 设置", open=False):
            system = gr.Textbox(
                Prompter().instruction, label="System prompt (the paper's instruction)", lines=2,
                max_length=2 * max_message_chars(),
            )  # fmt: skip
            max_new = gr.Slider(32, 1024, value=512, step=32, label="max new tokens")
            temperature = gr.Slider(0.0, 1.5, value=0.7, step=0.05, label="temperature")
            top_p = gr.Slider(0.1, 1.0, value=0.9, step=0.05, label="top p")

        def backend_of(bid: str | None, sys_prompt: str):
            check_length(sys_prompt or "", 2 * max_message_chars())  # the event is callable without the page
            if not bid:
                raise RuntimeError("no backbone is ready yet")
            return manager.get(bid)

        def on_send(text, history, bid, sys_prompt, n_new, temp, p, request: gr.Request) -> Iterator[tuple]:
            history = flatten_history(history)
            shown = [*history, {"role": "user", "content": text}]
            try:
                n_new = max(1, min(int(n_new), 1024))  # the slider's range, also for calls that skip the page
                params = GenParams(max_new_tokens=n_new, temperature=float(temp), top_p=float(p))
                allow = shared_limiter().guard(*request_keys(request))
                get = lambda: backend_of(bid, sys_prompt)  # noqa: E731 - called by respond after its checks
                for turn in respond(text, history, get, sys_prompt, params, allow=allow):
                    reply = [*shown, {"role": "assistant", "content": turn.reply}]
                    crisis_md = gr.Markdown(turn.reply, visible=True) if turn.crisis else gr.Markdown(visible=False)
                    chips = " ".join(f"`{d}`" for d in turn.distortions) or "none"
                    note = (
                        "" if turn.crisis else f"**Distortions named:** {chips} · structure {turn.structure_score:.2f}"
                    )
                    yield reply, "", turn.pieces, note, crisis_md
            except (ValueError, RuntimeError, KeyError) as exc:  # InputTooLong and RateLimited are ValueErrors
                yield history, text, [], f"Warning: {exc}", gr.Markdown(visible=False)

        inputs = [message, chatbot, backbone, system, max_new, temperature, top_p]
        outputs = [chatbot, message, latest, info, crisis]
        send.click(on_send, inputs, outputs, concurrency_limit=4)
        message.submit(on_send, inputs, outputs, concurrency_limit=4)

        def poll() -> tuple:
            """Backbone status while any is still loading; then the timer stops (no idle traffic per page)."""
            settled = all(s.state in ("ready", "unavailable") for s in manager.status.values())
            choices = gr.Dropdown(choices=backbone_choices(manager))
            return manager.status_markdown(), choices, gr.Timer(active=not settled)

        timer = gr.Timer(2.0)
        # unqueued: status polls from open pages never take the queue's places meant for generation
        timer.tick(poll, None, [status, backbone, timer], queue=False, show_progress="hidden")
        gr.Markdown(f"<details><summary>Crisis reply shown on risk</summary>\n\n{crisis_reply('zh')}\n</details>")

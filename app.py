"""CBT-LLM Studio: the Gradio app. Wires one tab per module to the packages; implements nothing itself.

    python app.py          # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT respected)

Hub backbones are not fetched unless HF_HUB_OFFLINE=0 is set; the offline default needs no network.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Iterator

import gradio as gr

from annotation.store import AnnotationStore
from annotation.tabs import add_annotation_api, create_admin_tab, create_labelling_tab, create_rating_tab
from annotation.ui import open_store
from annotation.votes import save_vote
from cbt.backends.base import GenParams
from cbt.backends.registry import BackendManager
from cbt.chat import respond
from cbt.io import load_sample
from cbt.limits import check_length, max_message_chars, request_keys, shared_limiter
from cbt.prompter import Prompter
from cbt.sections import segment
from cbt.tabs.browse import create_browse_tab
from cbt.tabs.chat import create_chat_tab
from cbt.tabs.common import notice
from cbt.tabs.compare import create_compare_tab
from eval.tabs import create_evaluation_tab

TITLE = "CBT-LLM Studio"
# The documented API (README); every other event is the page's own and is left out of the API listing.
PUBLIC_API = ("chat", "reply", "segment", "annotate_login", "rating_next", "save_rating", "label_next", "save_label",
              "annotate_progress")  # fmt: skip


def build_app(manager: BackendManager | None = None, store: AnnotationStore | None = None) -> gr.Blocks:
    """The whole UI; each tab module wires its widgets to functions of cbt/, train/, eval/, annotation/."""
    manager = manager or BackendManager.from_config().start()
    store = store or open_store()
    records = load_sample()
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLE}\nCognitive-behavioural-therapy question answering, after the CBT-LLM paper.")
        notice()
        with gr.Tabs():
            create_chat_tab(manager)
            create_compare_tab(manager, save_vote)
            create_browse_tab(records)
            create_rating_tab(store)
            create_labelling_tab(store)
            create_admin_tab(store)
            create_evaluation_tab()
        add_api(manager)
        add_annotation_api(store)
    for fn in demo.fns.values():
        if fn.api_name not in PUBLIC_API:
            fn.api_visibility = "private"
    return demo


def add_api(manager: BackendManager) -> None:
    """Named endpoints for gradio_client: `chat` (streamed), `reply` (whole reply, unqueued) and `segment`.

    Same order of checks as the chat tab (cbt/limits.py): crisis first, then the length cap, then the per-session
    and per-client rate limit shared with the tabs, then the backbone. `reply` skips the queue, so it serves
    retrieval backbones only; model generation goes through the bounded queue.
    """

    def stream(
        message: str, bid: str, system_prompt: str, params: GenParams, request: gr.Request | None, quick_only: bool
    ) -> Iterator:
        """The checks (crisis first), then the reply as it grows; refusals become gr.Error with the reason."""

        def backend():  # runs only after the crisis check, the length cap and the rate limit
            check_length(system_prompt or "", 2 * max_message_chars())
            if quick_only and manager.specs.get(bid) and manager.specs[bid].type != "retrieval":
                raise ValueError(f"backbone '{bid}' generates slowly: use the queued `chat` endpoint")
            return manager.get(bid)

        allow = shared_limiter().guard(*request_keys(request))
        try:
            yield from respond(message, [], backend, system_prompt or Prompter().instruction, params, allow=allow)
        except (ValueError, KeyError, RuntimeError) as exc:  # too long, rate-limited, unknown or loading backbone
            raise gr.Error(str(exc).strip("'\""), print_exception=False) from None

    def chat(
        message: str,
        backbone: str = "",
        system_prompt: str = "",
        max_new_tokens: int = 512,
        temperature: float = 0.7,
        request: gr.Request = None,
    ) -> Iterator[str]:
        """Reply to one message (crisis check first); yields the reply so far."""
        params = GenParams(max_new_tokens=max(1, min(int(max_new_tokens), 2048)), temperature=float(temperature))
        bid = backbone or manager.preferred() or ""
        for turn in stream(message, bid, system_prompt, params, request, quick_only=False):
            yield turn.reply

    def reply(message: str, backbone: str = "", system_prompt: str = "", request: gr.Request = None) -> str:
        """The whole reply at once (crisis check first). Unqueued, so retrieval backbones only: a model's
        generation must wait in the bounded queue (`chat`)."""
        bid = backbone or manager.preferred() or ""
        *_, last = stream(message, bid, system_prompt, GenParams(), request, quick_only=True)
        return last.reply

    def segment_text(text: str) -> dict:
        """Section spans and structure score of a response (the `python -m cbt segment` contract)."""
        return segment(check_length(text, 20 * max_message_chars())).to_dict()

    gr.api(chat, api_name="chat", concurrency_limit=4)
    gr.api(reply, api_name="reply", queue=False)
    gr.api(segment_text, api_name="segment", queue=False)


def main() -> None:
    """Serve with the hardening of DESIGN.md: no SSR, no run history or monitoring, a bounded queue, tiny uploads."""
    demo = build_app()
    # At most CBT_QUEUE_MAX waiting events (beyond that a caller is told the queue is full), 4 running per event.
    demo.queue(max_size=int(os.environ.get("CBT_QUEUE_MAX") or 64), default_concurrency_limit=4)
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        share=False,
        ssr_mode=False,  # gradio 6.27-6.31 auth-bypass advisory needs SSR
        run_history=False,
        enable_monitoring=False,
        max_file_size="1mb",
        footer_links=[],
        show_error=True,  # API clients see why a call failed (e.g. "backbone 'x' is loading")
    )


if __name__ == "__main__":
    main()

"""Named API endpoints for scripted raters and load tests: the same store calls the tabs make.

All unqueued, so one save is one HTTP POST to /gradio_api/run/<name> with {"data": [...]}; a bad call comes back
as a Gradio error carrying the store's message (which names the field and the value).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import gradio as gr

from annotation.store import AnnotationError, AnnotationStore
from annotation.tabs.login import client_id


def _errors_as_gradio(fn: Callable) -> Callable:
    """Store errors become gr.Error, whose message the client sees (with or without show_error)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AnnotationError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    return wrapper


def add_annotation_api(store: AnnotationStore) -> None:
    """annotate_login, rating_next, save_rating, label_next, save_label, annotate_progress."""

    def annotate_login(username: str, password: str, request: gr.Request) -> str:
        """Log in; returns the session token every other endpoint takes first (12 h)."""
        return store.login(username, password, client=client_id(request)).token

    def rating_next(token: str) -> dict | None:
        """The rater's first unfinished rating item (never its backbone), or null when all are done."""
        return store.rating_next(token)

    def save_rating(
        token: str,
        item_id: str,
        relevance: int | None = None,
        structure: int | None = None,
        helpfulness: int | None = None,
        comment: str | None = None,
        flag: bool | None = None,
        skipped: bool | None = None,
    ) -> dict:
        """Save the given fields (null = unchanged) of the rater's row; scores 0-2. Committed when it returns."""
        # The store checks the login before the input, so a caller without one learns nothing else.
        return store.save_rating(
            token, item_id, relevance=relevance, structure=structure, helpfulness=helpfulness,
            comment=comment, flag=flag, skipped=skipped,
        )  # fmt: skip

    def label_next(token: str) -> dict | None:
        """The rater's first unfinished labelling item, or null when all are done."""
        return store.label_next(token)

    def save_label(
        token: str,
        item_id: str,
        distortions: list[str] | None = None,
        key_thought: str | None = None,
        confidence: int | None = None,
        skipped: bool | None = None,
    ) -> dict:
        """Save the given fields (null = unchanged): taxonomy ids or ["none"], key thought, confidence 1-3."""
        return store.save_label(token, item_id, distortions=distortions, key_thought=key_thought,
                                confidence=confidence, skipped=skipped)  # fmt: skip

    def annotate_progress(token: str) -> dict:
        """{"rating": {"done", "skipped", "total"}, "labelling": {...}} for the logged-in rater."""
        return {"rating": store.rating_progress(token), "labelling": store.label_progress(token)}

    for fn in (annotate_login, rating_next, save_rating, label_next, save_label, annotate_progress):
        gr.api(_errors_as_gradio(fn), api_name=fn.__name__, queue=False)

"""The admin tab: progress per rater, inter-rater agreement, exports and a backup. Admins only.

Nothing of it reaches a browser without an admin session: every callback asks the store, which checks the role.
"""

from __future__ import annotations

import tempfile
import time
from functools import partial
from pathlib import Path

import gradio as gr

from annotation import ui
from annotation.store import AnnotationError, AnnotationStore
from annotation.tabs.login import create_login, current_session, on_page_load, shared_token, who_text


def create_admin_tab(store: AnnotationStore, token: gr.BrowserState | None = None) -> None:
    """The tab; `token` is the shared login state (made once per app when not given)."""
    token = token or shared_token()
    with gr.Tab("Annotation admin 标注管理", id="annotation-admin"):
        login = create_login(store, token, "admin")
        denied = gr.Markdown(
            "This view is for the annotation admin. 仅限管理员。", visible=False, elem_id="admin-denied"
        )
        with gr.Column(visible=False, elem_id="admin-work") as work:
            refresh = gr.Button("Refresh 刷新", size="sm", elem_id="admin-refresh")
            progress = gr.Dataframe(label="Progress per rater 进度", interactive=False, elem_id="admin-progress")
            agreement = gr.Markdown(elem_id="admin-agreement")
            with gr.Row():
                fmt = gr.Radio(["jsonl", "csv"], value="jsonl", label="Export format 导出格式", elem_id="admin-format")
                export_ratings = gr.Button("Export ratings 导出评分", elem_id="admin-export-ratings")
                export_labels = gr.Button("Export labels 导出标注", elem_id="admin-export-labels")
                backup = gr.Button("Backup database 备份数据库", elem_id="admin-backup")
            download = gr.File(label="Download 下载", interactive=False, elem_id="admin-download")
            note = gr.Markdown(elem_id="admin-note")

    page = [login.box, denied, work, login.who, login.logout, progress, agreement]
    refresh.click(partial(show, store), [token], page, queue=False)
    export_ratings.click(partial(export, store, "ratings"), [token, fmt], [download, note], queue=False)
    export_labels.click(partial(export, store, "labels"), [token, fmt], [download, note], queue=False)
    backup.click(partial(do_backup, store), [token], [download, note], queue=False)
    token.change(partial(show, store), [token], page, queue=False)
    on_page_load(partial(show, store), [token], page)


def show(store: AnnotationStore, tok: str | None) -> tuple:
    """Login box, "admins only" or the admin view; the data is read only for an admin session."""
    session = current_session(store, tok)
    admin = session is not None and session.role == "admin"
    table, stats = None, ""
    if admin:
        headers, rows = ui.table(store.admin_progress(tok))
        table = gr.update(value=rows, headers=headers)
        try:
            stats = "#### Agreement 一致性\n" + ui.agreement_markdown(store.agreement(tok))
        except (AnnotationError, ValueError, ImportError) as exc:
            stats = f"Agreement not available 暂无一致性统计: {exc}"
    shown = session is not None
    return (gr.update(visible=not shown), gr.update(visible=shown and not admin), gr.update(visible=admin),
            who_text(session), gr.update(visible=shown), table, stats)  # fmt: skip


def export(store: AnnotationStore, kind: str, tok: str | None, form: str) -> tuple:
    """Ratings or labels as a JSONL / CSV download (the store refuses a non-admin token)."""
    try:
        rows = store.export_ratings(tok) if kind == "ratings" else store.export_labels(tok)
    except AnnotationError as exc:
        return None, ui.error_text(exc)
    path = ui.export_file(rows, kind, form, tempfile.mkdtemp(prefix="cbt-export-"))
    return str(path), f"{len(rows)} {kind} rows → {path.name}"


def do_backup(store: AnnotationStore, tok: str | None) -> tuple:
    """A consistent copy of the SQLite store (online backup API) as a download; PostgreSQL says to use pg_dump."""
    try:
        store.admin_progress(tok)  # the role check
        folder = Path(tempfile.mkdtemp(prefix="cbt-backup-"))
        path = store.backup(folder / f"annotation-{time.strftime('%Y%m%d-%H%M%S')}.sqlite3")
    except AnnotationError as exc:
        return None, ui.error_text(exc)
    return str(path), f"Backup written 备份完成: {path.name} ({path.stat().st_size} bytes)"

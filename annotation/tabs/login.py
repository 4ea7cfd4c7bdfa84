"""What the annotation tabs share: the login box (one session token per browser, kept in localStorage) and the
callbacks of a task page (navigation in the rater's order, one save per change).

The token lives in one gr.BrowserState per app (encrypted with a per-start secret), so a reload keeps the login
while the app runs; after an app restart the rater logs in again and resumes at their first unfinished item.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.context import Context

from annotation import ui
from annotation.store import AnnotationError, AnnotationStore, AuthError, Session

STORAGE_KEY = "cbt-annotation-session"
# For a text box saved as it is typed: replaces the last two inputs (the box's value, a hidden number) with the box's
# live text and the browser's clock (ms, sub-ms precise, comparable across tabs), read at the same moment: the value
# gradio hands an event can be older than the moment the event is sent.
STAMP_JS = (
    "(...a) => {{ const el = document.querySelector('#{elem_id} textarea');"
    " return [...a.slice(0, -2), el ? el.value : a[a.length - 2], performance.timeOrigin + performance.now()]; }}"
)
ADD_RATERS = (
    "Raters are added by the admin: `python -m cbt annotate add-user NAME --role rater`, a users file "
    "(CBT_USERS_FILE: YAML list of {username, password_hash | password, role}) or the env "
    "`CBT_USERS=alice:pw1,bob:pw2,admin:pw3:admin`. 评审账号由管理员添加。"
)
_TOKENS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def shared_token() -> gr.BrowserState:
    """The app's one token state, rendered at the top level so every tab reads it on page load."""
    root = Context.root_block
    if root is None:
        return gr.BrowserState(None, storage_key=STORAGE_KEY)
    if root not in _TOKENS:
        inner, Context.block = Context.block, root
        try:
            _TOKENS[root] = gr.BrowserState(None, storage_key=STORAGE_KEY)
        finally:
            Context.block = inner
    return _TOKENS[root]


def client_id(request: gr.Request | None) -> str:
    """Who is logging in, for per-client throttling: the first forwarded hop, else the socket's address."""
    if request is None:
        return ""
    forwarded = (request.headers.get("x-forwarded-for") or "").split(",")[0].strip()
    return forwarded or (request.client.host if request.client else "")


def current_session(store: AnnotationStore, token: str | None) -> Session | None:
    """The live session of a token, or None when absent, expired or logged out."""
    if not token:
        return None
    try:
        return store.session(token)
    except AuthError:
        return None


@dataclass
class LoginBox:
    box: gr.Column
    who: gr.Markdown
    logout: gr.Button


def create_login(store: AnnotationStore, token: gr.BrowserState, prefix: str) -> LoginBox:
    """Username + password + log-in button, and a who-am-I line with log out; events write `token`."""
    with gr.Column(visible=True, elem_id=f"{prefix}-login") as box:
        gr.Markdown("Log in to annotate 登录后开始标注. " + ADD_RATERS)
        with gr.Row():
            username = gr.Textbox(label="Username 用户名", elem_id=f"{prefix}-username", max_length=100)
            password = gr.Textbox(label="Password 密码", type="password", elem_id=f"{prefix}-password", max_length=200)
        login = gr.Button("Log in 登录", variant="primary", elem_id=f"{prefix}-login-btn")
        if hub_login_enabled():  # on a Space with hf_oauth and CBT_HF_RATERS: "Sign in with Hugging Face"
            gr.LoginButton(elem_id=f"{prefix}-hf-login")
        message = gr.Markdown(elem_id=f"{prefix}-login-msg")
    with gr.Row():
        who = gr.Markdown(elem_id=f"{prefix}-who")
        logout = gr.Button("Log out 退出", size="sm", visible=False, elem_id=f"{prefix}-logout")

    def on_login(name: str, pw: str, request: gr.Request) -> tuple:
        try:
            session = store.login((name or "").strip(), pw or "", client=client_id(request))
        except AuthError as exc:  # ThrottledError included: its message says how long to wait
            return gr.update(), f"✗ {exc}", ""
        return session.token, "", ""  # the password box is cleared either way

    def on_logout(tok: str | None) -> tuple:
        if tok:
            store.logout(tok)
        return None

    def on_hub_login(tok: str | None, profile: gr.OAuthProfile | None) -> tuple:
        """After the Hub's OAuth redirect: a session for the signed-in account, if it is a listed rater."""
        if profile is None or current_session(store, tok):
            return gr.update(), gr.update()
        try:
            return store.login_oauth(profile.username).token, ""
        except AuthError as exc:
            return gr.update(), f"✗ {exc}"

    if hub_login_enabled():
        on_page_load(on_hub_login, [token], [token, message])
    login.click(on_login, [username, password], [token, message, password], queue=False)
    password.submit(on_login, [username, password], [token, message, password], queue=False)
    logout.click(on_logout, [token], [token], queue=False)
    return LoginBox(box=box, who=who, logout=logout)


def hub_login_enabled() -> bool:
    """Hugging Face sign-in is offered on a Space (SYSTEM=spaces and SPACE_ID, as gradio detects it) with OAuth on
    (README front matter hf_oauth: the Space sets OAUTH_CLIENT_ID) when CBT_HF_RATERS lists who may rate."""
    env = os.environ
    on_space = env.get("SYSTEM") == "spaces" and env.get("SPACE_ID")
    return bool(on_space and env.get("OAUTH_CLIENT_ID") and env.get("CBT_HF_RATERS", "").strip())


def who_text(session: Session | None) -> str:
    return f"Logged in as **{session.username}** ({session.role})" if session else ""


def on_page_load(fn, inputs: list, outputs: list) -> None:
    """Run `fn` when the page loads (restores the login and the rater's place after a reload)."""
    root = Context.root_block
    if root is not None:
        root.load(fn, inputs, outputs, queue=False)


class TaskPage:
    """Callbacks shared by the rating and labelling pages. Every callback returns the page's outputs: the login box,
    the work column, the who-am-I line and the log-out button, then the subclass's item part (`item_outputs`).
    `option` is a page setting passed through (the rating page's "highlight sections")."""

    task = ""  # the store's method prefix: "rating" or "label"
    n_item = 0  # how many outputs item_outputs returns

    def __init__(self, store: AnnotationStore) -> None:
        self.store = store
        self._typed: dict[tuple, float] = {}  # (token, item, field) -> browser time of the newest text saved
        self._typed_lock = threading.Lock()

    def call(self, what: str, *args: Any) -> Any:
        return getattr(self.store, f"{self.task}_{what}")(*args)

    def item_outputs(self, tok: str, view: ui.ItemView | None, option: Any, note: str) -> tuple:
        raise NotImplementedError

    def render(self, tok: str | None, item: dict | None, option: Any = None, note: str = "") -> tuple:
        session = current_session(self.store, tok)
        if session is None:
            return gr.update(visible=True), gr.update(visible=False), "", gr.update(visible=False), \
                *[gr.update()] * self.n_item  # fmt: skip
        head = gr.update(visible=False), gr.update(visible=True), who_text(session), gr.update(visible=True)
        return *head, *self.item_outputs(tok, ui.item_view(item, bool(option)), option, note)

    def go(self, tok: str | None, current: str | None, option: Any = None, step: int = 0, note: str = "") -> tuple:
        """Open the item `step` places from `current` (0: reopen it; no current item: the first unfinished)."""
        if current_session(self.store, tok) is None:
            return self.render(tok, None, option)
        target = ui.neighbour(self.call("list", tok), current, step) if step else current
        if target is None and step:
            target, note = current, ui.edge_text(step)
        return self.render(tok, self.call("get", tok, target) if target else self.call("next", tok), option, note)

    def save(self, tok: str | None, current: str | None, fields: dict[str, Any]) -> tuple[bool, str]:
        """Save only the changed field(s); the note says "saved" only once the store has committed."""
        if not current:
            return False, "✗ no item open 未打开条目"
        try:
            getattr(self.store, "save_rating" if self.task == "rating" else "save_label")(tok, current, **fields)
        except AnnotationError as exc:  # AuthError included (expired session)
            return False, ui.error_text(exc)  # shown in the status line: unqueued events get no gr.Warning toast
        return True, ui.saved_text(fields)

    def saver(self, field: str) -> Callable[..., tuple]:
        """The handler of one input: (status note, progress)."""

        def on_input(tok: str | None, current: str | None, value: Any) -> tuple:
            ok, note = self.save(tok, current, {field: value})
            return note, ui.progress_text(self.call("progress", tok)) if ok else gr.update()

        return on_input

    def text_saver(self, field: str) -> Callable[..., tuple]:
        """The handler of a text box saved as it is typed. Each call carries the browser's clock (`typed_at`, see
        STAMP_JS); a call older than the newest text already saved for (session, item, field) is dropped, so saves
        that overtake each other on the way never leave an older text in the store."""

        def on_text(tok: str | None, current: str | None, value: Any, typed_at: float | None) -> tuple:
            key, at = (tok, current, field), float(typed_at or 0.0)
            with self._typed_lock:
                if at < self._typed.get(key, float("-inf")):
                    return gr.update(), gr.update()
                self._typed[key] = at
                ok, note = self.save(tok, current, {field: value})
            return note, ui.progress_text(self.call("progress", tok)) if ok else gr.update()

        return on_text

    def wire_text(self, box: gr.Textbox, typed_at: gr.Number, field: str, inputs: list, outputs: list) -> None:
        """Save `box` as it is typed (best effort: the browser may fold or hold back keystroke events) and always on
        leaving it; unqueued, each call stamped with the browser's clock so that the newest text wins."""
        for event in (box.input, box.blur):  # typed_at: a hidden number inside the tab (a Tabs child must be a Tab)
            event(self.text_saver(field), [*inputs, box, typed_at], outputs, queue=False, trigger_mode="multiple",
                  js=STAMP_JS.format(elem_id=box.elem_id), show_progress="hidden")  # fmt: skip

    def skip(self, tok: str | None, current: str | None, option: Any = None) -> tuple:
        """Mark the item skipped and open the next unfinished one."""
        ok, note = self.save(tok, current, {"skipped": True})
        return self.render(tok, self.call("next", tok), option, note) if ok else self.go(tok, current, option, 0, note)

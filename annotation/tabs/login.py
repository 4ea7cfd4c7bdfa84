"""The login box the annotation tabs share: one session token per browser, kept in localStorage.

The token lives in one gr.BrowserState per app (encrypted with a per-start secret), so a reload keeps the login
while the app runs; after an app restart the rater logs in again and resumes at their first unfinished item.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import gradio as gr
from gradio.context import Context

from annotation.store import AnnotationStore, AuthError, Session

STORAGE_KEY = "cbt-annotation-session"
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

    login.click(on_login, [username, password], [token, message, password], queue=False)
    password.submit(on_login, [username, password], [token, message, password], queue=False)
    logout.click(on_logout, [token], [token], queue=False)
    return LoginBox(box=box, who=who, logout=logout)


def who_text(session: Session | None) -> str:
    return f"Logged in as **{session.username}** ({session.role})" if session else ""


def on_page_load(fn, inputs: list, outputs: list) -> None:
    """Run `fn` when the page loads (restores the login and the rater's place after a reload)."""
    root = Context.root_block
    if root is not None:
        root.load(fn, inputs, outputs, queue=False)

"""Security over HTTP against a real `python app.py` on loopback: file and proxy routes, run history, monitoring,
uploads, oversized messages, rate limits, annotation endpoints without login, secrets in logs, and model output
carrying `<script>` rendered inert in Chromium.

The app runs with two retrieval backbones: `evil` (the default), whose only answer is an XSS payload, and
`retrieval` (the sample set); plus an OpenAI-compatible one pointed at a closed port with a secret key.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.apprun import free_port, running_app

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SECRET_KEY = "sk-test-NEVER-LOG-7f3a9c"
SECRET_HF = "hf_NEVER_LOG_token_51c0"
SECRET_PW = "pw-NEVER-LOG-e2d4"
PAYLOAD = (
    '我能感受到你的压力。<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
    '<svg onload="window.__xss=3"></svg><a href="javascript:window.__xss=4">点我</a> 试着每天散步二十分钟。'
)
BACKBONES = """default: evil
backbones:
  evil: {type: retrieval, label: Evil, data: '${EVIL_DATA}'}
  retrieval: {type: retrieval, label: Retrieval}
  endpoint: {type: openai, label: Closed endpoint, base_url: 'http://127.0.0.1:9/v1', model: m}
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, log file) of a fresh `python app.py` with secrets in its environment."""
    tmp = tmp_path_factory.mktemp("secapp")
    evil = tmp / "evil.jsonl"
    record = {"id": "x1", "question": "我压力很大怎么办", "description": "", "answer": PAYLOAD, "source": "test"}
    evil.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    (tmp / "backbones.yaml").write_text(BACKBONES, encoding="utf-8")
    port, log = free_port(), tmp / "app.log"
    env = os.environ | {
        "GRADIO_SERVER_PORT": str(port), "CBT_BACKBONES": str(tmp / "backbones.yaml"), "CBT_DATA_DIR": str(tmp),
        "EVIL_DATA": str(evil), "OPENAI_API_KEY": SECRET_KEY, "HF_TOKEN": SECRET_HF,
        "CBT_USERS": f"alice:{SECRET_PW},root:{SECRET_PW}x:admin", "CBT_RATE_SESSION": "3:3",
        "CBT_RATE_CLIENT": "1000:500", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
    }  # fmt: skip
    with running_app(env, log) as url:
        yield url, log


def alive(url: str) -> None:
    r = httpx.post(f"{url}/gradio_api/run/segment", json={"data": ["我理解你的感受。"]}, timeout=30)
    assert r.status_code == 200 and "spans" in r.text


@pytest.mark.parametrize(
    "path",
    [
        "/gradio_api/file=/etc/passwd",
        "/gradio_api/file=../../../../../../etc/passwd",
        "/gradio_api/file=..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/gradio_api/file=%2Fetc%2Fpasswd",
        "/gradio_api/file=/proc/self/environ",
        "/gradio_api/file=app.py",
        "/gradio_api/file=" + str(ROOT / "app.py"),
        "/gradio_api/file=" + str(ROOT / "configs" / "backbones.yaml"),
        "/gradio_api/file/etc/passwd",
        "/file=/etc/passwd",
        "/gradio_api/file=//etc/passwd",
        "/gradio_api/file=/tmp/../etc/passwd",
    ],
)
def test_file_routes_refuse_paths_outside_the_allowed_ones(app: tuple[str, Path], path: str) -> None:
    r = httpx.get(app[0] + path, timeout=30)
    assert r.status_code in (400, 403, 404), (path, r.status_code)
    assert "root:x:0:0" not in r.text and SECRET_KEY not in r.text and "gr.Blocks" not in r.text


def test_proxy_and_url_fetches_cannot_reach_loopback(app: tuple[str, Path]) -> None:
    url = app[0]
    inner = urllib.parse.quote(f"{url}/config", safe="")
    for path in (f"/gradio_api/proxy={url}/config", f"/gradio_api/file={url}/config", f"/gradio_api/file={inner}"):
        r = httpx.get(url + path, timeout=30)
        assert r.status_code >= 400 and '"components"' not in r.text, (path, r.status_code, r.text[:200])


@pytest.mark.parametrize(
    ("path", "codes"),
    [
        ("/gradio_api/runs", (404,)),
        ("/gradio_api/run-history/records", (404, 405)),
        ("/gradio_api/run-history/buckets", (404, 405)),
        ("/monitoring", (403, 404)),
        ("/monitoring/summary", (403, 404)),
        ("/monitoring/guess-the-key", (403, 404)),
    ],
)
def test_run_history_is_absent_and_monitoring_refused(app: tuple[str, Path], path: str, codes: tuple) -> None:
    r = httpx.get(app[0] + path, timeout=30)
    assert r.status_code in codes, (path, r.status_code)


def test_uploads_over_the_limit_are_refused(app: tuple[str, Path]) -> None:
    big = {"files": ("big.txt", b"x" * (2 * 1024 * 1024), "text/plain")}
    r = httpx.post(app[0] + "/gradio_api/upload", files=big, timeout=60)
    assert r.status_code in (400, 413), r.status_code
    alive(app[0])


def test_oversized_message_is_refused_with_a_reason_and_the_app_keeps_serving(app: tuple[str, Path]) -> None:
    from gradio_client import Client

    client = Client(app[0], verbose=False)
    with pytest.raises(Exception, match=r"message too long: 5000 characters \(at most 2000\)"):
        client.predict("字" * 5000, "retrieval", api_name="/chat")
    r = httpx.post(f"{app[0]}/gradio_api/run/reply", json={"data": ["字" * 1_000_000, "retrieval", ""]}, timeout=60)
    assert r.status_code in (400, 413, 422, 500) and "message too long: 1000000 characters" in r.text
    alive(app[0])
    assert "我能感受到" in client.predict("最近压力很大，总失眠", api_name="/chat")  # default backbone still answers
    # a crisis message over the cap still gets the crisis reply, not a refusal
    assert "12356" in client.predict("最近压力很大。" * 500 + "我不想活了", "retrieval", api_name="/chat")


def test_generation_is_rate_limited_per_session(app: tuple[str, Path]) -> None:
    from gradio_client import Client

    client = Client(app[0], verbose=False)
    for _ in range(3):
        client.predict("考研失败了怎么办", "retrieval", api_name="/chat")
    with pytest.raises(Exception, match=r"too many requests: please wait \d+ s"):
        client.predict("考研失败了怎么办", "retrieval", api_name="/chat")
    assert "12356" in client.predict("我想自杀", "retrieval", api_name="/chat")  # crisis reply is never limited
    other = Client(app[0], verbose=False)  # another session is not affected
    assert other.predict("考研失败了怎么办", "retrieval", api_name="/chat")


ANNOTATION_ENDPOINTS = ["rating_next", "save_rating", "label_next", "save_label", "annotate_progress"]


def test_annotation_endpoints_refuse_calls_without_login(app: tuple[str, Path]) -> None:
    info = httpx.get(app[0] + "/gradio_api/info", timeout=30).json()["named_endpoints"]
    present = [n for n in ANNOTATION_ENDPOINTS if f"/{n}" in info]
    if not present:
        pytest.skip("the app has no annotation API yet")
    for name in present:
        params = info[f"/{name}"]["parameters"]
        data = ["forged-token"] + [p.get("parameter_default") or "" for p in params[1:]]
        r = httpx.post(f"{app[0]}/gradio_api/run/{name}", json={"data": data}, timeout=30)
        body = r.text.lower()
        assert r.status_code >= 400 or "error" in body, (name, r.status_code, r.text[:200])
        assert any(w in body for w in ("login", "token", "session", "auth", "sign in")), (name, r.text[:200])
    if "/annotate_login" in info:
        r = httpx.post(
            f"{app[0]}/gradio_api/run/annotate_login", json={"data": ["alice", "wrong-password"]}, timeout=30
        )
        assert r.status_code >= 400 or "error" in r.text.lower()
        assert SECRET_PW not in r.text
        r = httpx.post(f"{app[0]}/gradio_api/run/annotate_login", json={"data": ["alice", SECRET_PW]}, timeout=30)
        token = r.json()["data"][0]
        assert isinstance(token, str) and len(token) >= 16  # the right password works; the token is no password
        progress = httpx.post(f"{app[0]}/gradio_api/run/annotate_progress", json={"data": [token]}, timeout=30)
        assert progress.status_code == 200 and "rating" in progress.text


@pytest.mark.browser
def test_script_in_model_output_is_rendered_inert(app: tuple[str, Path]) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(app[0] + "/")
        page.fill("#chat-input textarea", '我压力很大怎么办 <img src=y onerror="window.__xss=9">')
        page.click("#chat-send")
        page.wait_for_function("document.querySelector('#chat-info').innerText.includes('structure')", timeout=30_000)
        time.sleep(0.5)
        assert page.evaluate("window.__xss") is None and not dialogs
        history = page.locator("#chat-history")
        assert history.locator("script, img[onerror], svg[onload], a[href^='javascript']").count() == 0
        assert "试着每天散步" in history.inner_text()  # the chatbot drops the markup (sanitized), keeps the text
        highlight = page.locator("#chat-highlight")
        assert highlight.locator("script, img, svg[onload], a[href^='javascript']").count() == 0
        assert "<script>" in highlight.inner_text()  # the section view shows the text as written
        browser.close()


def test_secrets_are_never_logged_or_served(app: tuple[str, Path]) -> None:
    from gradio_client import Client

    url, log = app
    with pytest.raises(Exception):  # noqa: B017 - the closed endpoint fails; its error must not carry the key
        Client(url, verbose=False).predict("最近压力很大", "endpoint", api_name="/chat")
    pages = [httpx.get(url + p, timeout=30).text for p in ("/", "/config", "/gradio_api/info")]
    time.sleep(1)  # let the app flush its log
    logged = log.read_text(encoding="utf-8", errors="replace")
    assert "Running on" in logged or "127.0.0.1" in logged  # the log was captured
    for secret in (SECRET_KEY, SECRET_HF, SECRET_PW):
        assert secret not in logged and not any(secret in page for page in pages)


def test_unqueued_reply_serves_retrieval_only_and_caps_the_system_prompt(app: tuple[str, Path]) -> None:
    def run(*data: object) -> httpx.Response:
        return httpx.post(f"{app[0]}/gradio_api/run/reply", json={"data": list(data)}, timeout=30)

    slow = run("最近总是失眠，怎么办", "endpoint", "")
    assert slow.status_code >= 400 and "use the queued `chat` endpoint" in slow.text
    assert "12356" in run("我想自杀", "endpoint", "").text  # the crisis reply still comes first
    long_prompt = run("最近总是失眠，怎么办", "retrieval", "x" * 5000)
    assert long_prompt.status_code >= 400 and "5000 characters" in long_prompt.text


def test_the_api_lists_only_the_documented_endpoints(app: tuple[str, Path]) -> None:
    from app import PUBLIC_API

    url, _ = app
    named = httpx.get(f"{url}/gradio_api/info", timeout=30).json()["named_endpoints"]
    assert sorted(named) == sorted(f"/{name}" for name in PUBLIC_API)  # the page's own events stay out of it

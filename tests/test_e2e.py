"""End to end: a fresh `python app.py` (as the README starts it) driven through every tab in Chromium.

One page session walks the tabs in order: chat (a streamed, highlighted retrieval reply), a crisis message
(hotlines, no model), compare (retrieval against a loopback OpenAI-compatible server), browse, rating,
labelling and admin (a seeded annotation store), evaluation (a report made on the fly), and any later tab:
each checked and screenshotted to tests/artifacts/<tab>.png for the README. JavaScript errors fail the test.
Needs /usr/bin/chromium and fonts-wqy-microhei (CJK).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apprun import free_port, running_app
from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser
RATER = ("e2e_rater", "e2e-Passw0rd")
ADMIN = ("e2e_admin", "e2e-Adm1n-pw")
BACKBONES = """default: retrieval
backbones:
  retrieval: {type: retrieval, label: Retrieval}
  endpoint: {type: openai, label: Loopback endpoint, base_url: '${OPENAI_BASE_URL:-}', model: m}
"""


def slug(tab_label: str) -> str:
    """'Browse data 浏览数据' -> 'browse_data': the English words of a tab label."""
    words = re.findall(r"[A-Za-z][A-Za-z0-9]*", tab_label)
    return "_".join(w.lower() for w in words) or "tab"


def seed_store(tmp: Path) -> str:
    """An annotation store with a few rating and labelling items from the sample set; returns its URL."""
    from annotation.store import AnnotationStore
    from cbt.io import load_sample

    url = f"sqlite:///{tmp / 'annotation.sqlite3'}"
    recs = load_sample()[:4]
    with AnnotationStore(url) as store:
        store.import_rating_items(
            {"question_id": r.id, "question": r.question, "description": r.description, "response": r.answer,
             "backbone": "retrieval"} for r in recs
        )  # fmt: skip
        store.import_label_items(
            {"question_id": r.id, "question": r.question, "description": r.description} for r in recs
        )
    return url


def make_report(tmp: Path) -> None:
    """A small evaluation report (retrieval answers to 12 held-out sample questions) where the tab looks for it."""
    import json

    from cbt.backends.base import GenParams
    from cbt.backends.retrieval import RetrievalBackend
    from cbt.io import load_sample

    recs = load_sample()
    backend, preds = RetrievalBackend(recs[20:]), tmp / "pred.jsonl"
    with open(preds, "w", encoding="utf-8") as fh:
        for r in recs[:12]:
            out = backend.generate([{"role": "user", "content": f"{r.question}\n{r.description}"}], GenParams())
            fh.write(json.dumps({"id": r.id, "prediction": out, "backbone": "retrieval"}, ensure_ascii=False) + "\n")
    refs = ROOT / "cbt" / "data" / "sample_cbtqa.jsonl"
    subprocess.run(
        [sys.executable, "-m", "cbt", "report", "--predictions", str(preds), "--references", str(refs),
         "--out", str(tmp / "reports" / "e2e"), "--metrics", "bleu,chrf", "--n-boot", "0", "--allow-missing"],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def fresh_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium fonts-wqy-microhei)")
    tmp = tmp_path_factory.mktemp("e2e")
    (tmp / "backbones.yaml").write_text(BACKBONES, encoding="utf-8")
    make_report(tmp)
    port = free_port()
    with FakeOpenAI(latency=0.02) as server:
        env = os.environ | {
            "GRADIO_SERVER_PORT": str(port), "CBT_BACKBONES": str(tmp / "backbones.yaml"), "CBT_DATA_DIR": str(tmp),
            "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "x", "HF_HUB_OFFLINE": "1",
            "CBT_USERS": f"{RATER[0]}:{RATER[1]},{ADMIN[0]}:{ADMIN[1]}:admin", "PYTHONUNBUFFERED": "1",
            "CBT_ANNOTATION_DB": seed_store(tmp),
        }  # fmt: skip
        log = tmp / "app.log"
        with running_app(env, log) as base:
            yield base + "/", tmp


@pytest.fixture(scope="module")
def page(fresh_app: tuple[str, Path]) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        pg = browser.new_page(viewport={"width": 1600, "height": 1400}, locale="zh-CN")
        pg.js_errors = []
        pg.on("pageerror", lambda exc: pg.js_errors.append(str(exc)))
        pg.goto(fresh_app[0])
        pg.wait_for_selector("#chat-input textarea", timeout=60_000)
        yield pg
        browser.close()


def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_tab(page: object, label: str) -> None:
    page.get_by_role("tab", name=label, exact=True).click()
    page.wait_for_timeout(400)


def tab_labels(page: object) -> list[str]:
    return [t.strip() for t in page.get_by_role("tab").all_inner_texts() if t.strip()]


def wait_text(page: object, selector: str, text: str, timeout: int = 30_000) -> None:
    page.wait_for_function(
        "([s, t]) => { const e = document.querySelector(s); return e && e.innerText.includes(t); }",
        arg=[selector, text], timeout=timeout,
    )  # fmt: skip


def test_chat_tab(page: object) -> None:
    assert "not a substitute for professional care" in page.inner_text("#ai-notice")
    wait_text(page, "#chat-status", "Loopback endpoint")
    page.wait_for_function("!document.querySelector('#chat-status').innerText.match(/waiting|loading/)")
    page.fill("#chat-input textarea", "考研二战又失败了，我是不是一无是处？家里人嘴上不说，可我觉得他们很失望。")
    page.click("#chat-send")
    page.wait_for_selector("#chat-highlight .token.highlighted", timeout=30_000)
    wait_text(page, "#chat-info", "structure")
    assert page.locator("#chat-history").inner_text().count("一无是处") >= 1
    assert page.locator("#crisis-block").is_hidden()
    shot(page, "chat")


def test_crisis_message_gets_the_hotlines(page: object) -> None:
    page.fill("#chat-input textarea", "我真的撑不下去了，今晚就想结束自己的生命")
    page.click("#chat-send")
    page.wait_for_selector("#crisis-block:visible", timeout=30_000)
    block = page.inner_text("#crisis-block")
    assert "12356" in block and "400-161-9995" in block
    shot(page, "crisis")


def test_over_long_message_is_refused_in_the_ui(page: object) -> None:
    box = page.locator("#chat-input textarea")
    box.fill("字" * 2500)
    assert len(box.input_value()) <= 2000  # the textbox stops at the cap; the server refuses the rest (security)


def test_compare_tab(page: object) -> None:
    open_tab(page, "Compare 对比")
    page.fill("#cmp-question textarea", "总觉得同事都在背后议论我，怎么办？")
    page.fill("#cmp-description textarea", "开会发言时大家一笑，我就觉得是在笑我，回家以后反复想，晚上也睡不好。")
    page.get_by_label("Loopback endpoint").check()
    page.click("#cmp-run")
    page.wait_for_selector("#cmp-answer-1 .token.highlighted", timeout=30_000)
    assert "Retrieval" in page.inner_text("#cmp-title-0") and "Loopback" in page.inner_text("#cmp-title-1")
    shot(page, "compare")


def test_browse_tab(page: object) -> None:
    open_tab(page, "Browse data 浏览数据")
    page.wait_for_selector("#browse-answer .token.highlighted", timeout=30_000)
    assert page.input_value("#browse-question textarea")
    shot(page, "browse")


def needs_tab(page: object, label: str) -> None:
    """Every tab is part of the app: a missing one fails (waits for the tab bar to render it first)."""
    tab = page.get_by_role("tab", name=label, exact=True)
    tab.wait_for(state="visible", timeout=30_000)


def log_in(page: object, prefix: str, user: tuple[str, str]) -> None:
    page.fill(f"#{prefix}-username input, #{prefix}-username textarea", user[0])
    page.fill(f"#{prefix}-password input", user[1])
    page.click(f"#{prefix}-login-btn")


def test_rating_tab(page: object, fresh_app: tuple[str, Path]) -> None:
    needs_tab(page, "Rate answers 回答评分")
    open_tab(page, "Rate answers 回答评分")
    log_in(page, "rate", RATER)
    page.wait_for_selector("#rate-work:visible", timeout=30_000)
    assert page.input_value("#rate-question textarea") and page.input_value("#rate-response textarea")
    for metric in ("relevance", "structure", "helpfulness"):
        radios = page.locator(f"#rate-{metric} input[type=radio]")
        if radios.count():
            radios.last.check()
            wait_text(page, "#rate-status", "saved")
    shot(page, "rating")
    from annotation.store import AnnotationStore

    with AnnotationStore(f"sqlite:///{fresh_app[1] / 'annotation.sqlite3'}") as store:
        rows = [r for r in store.rating_rows() if r["rater"] == RATER[0]]
    assert rows and rows[0]["helpfulness"] == 2


def test_labelling_tab(page: object) -> None:
    needs_tab(page, "Label distortions 认知歪曲标注")
    open_tab(page, "Label distortions 认知歪曲标注")
    page.wait_for_selector("#label-work:visible", timeout=30_000)  # the login is shared across tabs
    assert page.input_value("#label-question textarea")
    page.locator("#label-distortions input[type=checkbox]").first.check()
    wait_text(page, "#label-status", "saved")
    shot(page, "labelling")


def test_admin_tab_is_for_admins_only(page: object) -> None:
    needs_tab(page, "Annotation admin 标注管理")
    open_tab(page, "Annotation admin 标注管理")
    page.wait_for_selector("#admin-denied:visible", timeout=30_000)  # still logged in as the rater
    page.locator("#admin-logout").click()
    page.wait_for_selector("#admin-login:visible", timeout=30_000)
    log_in(page, "admin", ADMIN)
    page.wait_for_selector("#admin-work:visible", timeout=30_000)
    wait_text(page, "#admin-progress", RATER[0])
    shot(page, "admin")


def test_evaluation_tab_shows_the_report(page: object) -> None:
    needs_tab(page, "Evaluation 评估")
    open_tab(page, "Evaluation 评估")
    wait_text(page, "#eval-report", "Table 4")
    assert "retrieval" in page.inner_text("#eval-table") and "BLEU" in page.inner_text("#eval-report")
    shot(page, "evaluation")


DONE = {"Chat 对话", "Compare 对比", "Browse data 浏览数据", "Rate answers 回答评分", "Label distortions 认知歪曲标注",
        "Annotation admin 标注管理", "Evaluation 评估"}  # fmt: skip


def test_every_other_tab_opens_without_errors(page: object) -> None:
    """Tabs added by other packages (evaluation, rating, labelling, admin): each opens, shows content, no error."""
    labels = tab_labels(page)
    assert {"Chat 对话", "Compare 对比", "Browse data 浏览数据"} <= set(labels), labels
    for label in [t for t in labels if t not in DONE]:
        open_tab(page, label)
        panel = page.locator("[role=tabpanel]:visible").first
        assert panel.inner_text().strip(), f"tab {label!r} is empty"
        assert page.locator(".toast-body.error:visible").count() == 0, f"tab {label!r} raised an error"
        shot(page, slug(label))


def test_rate_limit_message_in_the_chat_tab(page: object) -> None:
    """Run last: it spends this session's generation budget (10 a minute, bursts of 5)."""
    open_tab(page, "Chat 对话")
    for i in range(8):
        page.fill("#chat-input textarea", f"最近总是失眠，第{i}次问，怎么办？")
        page.click("#chat-send")
        page.wait_for_function(
            "n => document.querySelector('#chat-history').innerText.includes(n)"
            " || document.querySelector('#chat-info').innerText.includes('too many')",
            arg=f"第{i}次", timeout=30_000,
        )  # fmt: skip
        if "too many requests" in page.inner_text("#chat-info"):
            break
    assert "Warning: too many requests: please wait" in page.inner_text("#chat-info")
    page.fill("#chat-input textarea", "我不想活了")  # a crisis message is never rate-limited
    page.click("#chat-send")
    page.wait_for_selector("#crisis-block:visible", timeout=30_000)


def test_no_javascript_errors(page: object) -> None:
    assert page.js_errors == []

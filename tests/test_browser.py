"""The app in a real browser (Debian chromium via Playwright) from a fresh `python app.py`.

Screenshots go to tests/artifacts/. Needs /usr/bin/chromium and fonts-wqy-microhei (.ci/run installs them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apprun import free_port, running_app
from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser

BACKBONES = """default: retrieval
backbones:
  retrieval: {type: retrieval, label: Retrieval}
  endpoint: {type: openai, label: Loopback endpoint, base_url: '${OPENAI_BASE_URL:-}', model: m}
  broken: {type: hf, label: Not installed, model: /nonexistent/model}
"""


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium fonts-wqy-microhei)")
    tmp = tmp_path_factory.mktemp("app")
    (tmp / "backbones.yaml").write_text(BACKBONES, encoding="utf-8")
    port = free_port()
    with FakeOpenAI(latency=0.05) as server:
        env = os.environ | {
            "GRADIO_SERVER_PORT": str(port), "CBT_BACKBONES": str(tmp / "backbones.yaml"), "CBT_DATA_DIR": str(tmp),
            "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "x",
        }  # fmt: skip
        with running_app(env, tmp / "app.log", timeout_s=90) as base:
            yield base + "/", tmp


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield b
        b.close()


def open_page(browser: object, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(url)
    page.wait_for_selector("#chat-input textarea", timeout=30_000)
    return page


def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_chat_streams_a_highlighted_reply(browser: object, app_url: tuple[str, Path]) -> None:
    page = open_page(browser, app_url[0])
    assert "not a substitute for professional care" in page.inner_text("#ai-notice")
    page.fill("#chat-input textarea", "总觉得同事都在背后议论我，怎么办？开会时大家一笑，我就觉得是在笑我。")
    page.click("#chat-send")
    page.wait_for_selector("#chat-highlight .token.highlighted", timeout=30_000)
    page.wait_for_function("document.querySelector('#chat-info').innerText.includes('structure')", timeout=30_000)
    colours = page.eval_on_selector_all(
        "#chat-highlight .token.highlighted", "els => els.map(e => getComputedStyle(e).backgroundColor)"
    )
    assert len({c for c in colours if c not in ("rgba(0, 0, 0, 0)", "transparent")}) >= 3
    assert page.locator("#chat-history").inner_text().count("议论") >= 1
    assert page.locator("#crisis-block").is_hidden()
    shot(page, "chat")


def test_crisis_message_shows_the_hotlines_not_a_model_reply(browser: object, app_url: tuple[str, Path]) -> None:
    page = open_page(browser, app_url[0])
    page.fill("#chat-input textarea", "我真的不想活了，药都攒好了")
    page.click("#chat-send")
    page.wait_for_selector("#crisis-block:visible", timeout=30_000)
    block = page.inner_text("#crisis-block")
    for number in ("12356", "010-82951332", "400-161-9995"):
        assert number in block
    assert "人工智能" in page.inner_text("#chat-history")
    shot(page, "crisis")


def test_comparison_shows_each_backbone_and_saves_a_blind_vote(browser: object, app_url: tuple[str, Path]) -> None:
    url, data_dir = app_url
    page = open_page(browser, url)
    page.get_by_role("tab", name="Compare 对比").click()
    page.fill("#cmp-question textarea", "考研二战又失败了，我是不是一无是处？")
    page.fill("#cmp-description textarea", "家里人嘴上不说，可我觉得他们很失望，我也不知道接下来该做什么。")
    page.get_by_label("Loopback endpoint").check()
    page.click("#cmp-run")
    page.wait_for_selector("#cmp-answer-1 .token.highlighted", timeout=30_000)
    assert "Retrieval" in page.inner_text("#cmp-title-0") and "Loopback" in page.inner_text("#cmp-title-1")
    assert "structure" in page.inner_text("#cmp-meta-0") and "structure" in page.inner_text("#cmp-meta-1")
    shot(page, "compare")
    page.get_by_label("Blind A/B 盲评").check()
    page.click("#cmp-run")
    page.wait_for_function("document.querySelector('#cmp-title-0').innerText.includes('Answer A')", timeout=30_000)
    page.get_by_label("Answer A", exact=True).check()
    page.click("#cmp-vote-save")
    page.wait_for_function("document.querySelector('#cmp-vote-note').innerText.includes('Vote saved')", timeout=30_000)
    votes = [json.loads(line) for line in (data_dir / "ab_votes.jsonl").read_text().splitlines()]
    assert len(votes) == 1 and votes[0]["blind"] and votes[0]["winner"] in ("retrieval", "endpoint")
    shot(page, "compare_vote")


def test_browse_tab_shows_the_sample_set(browser: object, app_url: tuple[str, Path]) -> None:
    page = open_page(browser, app_url[0])
    page.get_by_role("tab", name="Browse data 浏览数据").click()
    page.wait_for_selector("#browse-answer .token.highlighted", timeout=30_000)
    assert page.input_value("#browse-question textarea")
    shot(page, "browse")

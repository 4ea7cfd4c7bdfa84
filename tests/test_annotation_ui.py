"""The annotation tabs' pure helpers, then the tabs in a real browser (Debian chromium via Playwright) over a real
SQLite store.

Two raters in two browser contexts rate and label, reload and resume at the right item, and never see each
other's answers; the admin exports and the downloaded file holds what the raters saved. Screenshots go to
tests/artifacts/ (rating.png, labelling.png, admin.png).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from annotation import ui
from annotation.export import LABEL_COLUMNS, dumps_csv
from cbt.taxonomy import DISTORTION_IDS
from tests.conftest import SHARED
from tests.test_browser import ARTIFACTS, CHROMIUM, free_port

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

RESPONSE = "听起来你很难过。你觉得大家在笑你，这是读心术。下次可以先问问同事。你已经做得很好了。"
USERS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "dana": "dana-pw-4", "erin": "erin-pw-5", "root": "root-pw-3"}
TIMEOUT = 20_000


def paper_paragraph(name: str) -> str:
    paper = SHARED / "seeds" / "cbt-llm-paper.txt"
    if not paper.is_file():
        pytest.skip(f"paper text not found at {paper}")
    text = paper.read_text(encoding="utf-8")
    appendix = text[text.index("## A. Human Evaluation Guidelines") :]
    para = next(line for line in appendix.splitlines() if line.lower().startswith(f"- **{name.lower()} metric:**"))
    return " ".join(para.split())


def test_the_rating_guidelines_quote_the_papers_appendix_a() -> None:
    g = ui.guidelines()["rating"]
    assert [m["id"] for m in g["metrics"]] == list(ui.METRICS)
    for m in g["metrics"]:
        para = paper_paragraph(m["en"])
        assert " ".join(m["description"]["en"].split()).rstrip(".") in para, m["id"]  # quoted up to the scores
        for level in m["levels"]:
            assert f"{level['score']} for" in para and level["en"].lower() in para, (m["id"], level)
        assert [c[1] for c in ui.score_choices(m["id"])] == [0, 1, 2]
        assert all(m["zh"] in ui.rating_guidelines_markdown() for m in g["metrics"])


def test_choices_helpers_and_views() -> None:
    assert [c[1] for c in ui.distortion_choices()] == [*DISTORTION_IDS, "none"]
    assert ui.normalize_distortions(["labeling", "none"], ["labeling"]) == ["none"]
    assert ui.normalize_distortions(["labeling", "none"], ["none"]) == ["labeling"]
    assert ui.normalize_distortions(["labeling", "mind_reading"], ["labeling"]) == ["labeling", "mind_reading"]
    item = {"item_id": "r-1", "question": "q", "description": "d", "response": RESPONSE, "position": 3, "total": 9,
            "saved": {"relevance": 1}, "backbone": "must-not-show"}  # fmt: skip
    view = ui.item_view(item)
    assert view.heading == "Item 条目 3 / 9" and view.pieces is None and view.saved == {"relevance": 1}
    assert "must-not-show" not in repr(view)
    pieces = ui.item_view(item, highlight=True).pieces
    assert "".join(p for p, _ in pieces) == RESPONSE and any(label for _, label in pieces)
    listing = [{"item_id": i, "position": n} for n, i in enumerate("cab", 1)]
    assert [ui.neighbour(listing, "a", 1), ui.neighbour(listing, "a", -1), ui.neighbour(listing, "b", 1)] == [
        "b",
        "c",
        None,
    ]
    assert ui.neighbour(listing, None, -1) == "b" and ui.neighbour([], None, 1) is None
    md = ui.agreement_markdown({"ratings": {"relevance": {"alpha_ordinal": 0.51234, "pairs": 2, "kappa": None}}})
    assert "| relevance | 0.512 | 2 | n/a |" in md


def test_the_download_has_the_clis_bytes(tmp_path: Path) -> None:
    rows = [{"item_id": "r-1", "question_id": "q1", "rater": "a", "distortions": ["labeling", "mind_reading"],
             "key_thought": "他们,都\n看不起我", "confidence": 2}]  # fmt: skip
    path = ui.export_file(rows, "labels", "csv", tmp_path)
    assert path.read_text(encoding="utf-8") == dumps_csv(rows, LABEL_COLUMNS)
    assert json.loads(ui.export_file(rows, "labels", "jsonl", tmp_path).read_text(encoding="utf-8")) == rows[0]
    with pytest.raises(ValueError, match="jsonl' or 'csv'"):
        ui.export_file(rows, "labels", "hf", tmp_path)


def test_page_callbacks_confirm_only_committed_saves(tmp_path: Path) -> None:
    import gradio as gr

    from annotation.store import AnnotationStore
    from annotation.tabs.labelling import LabellingPage
    from annotation.tabs.rating import RatingPage

    store = AnnotationStore(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    store.add_user("rita", "rita-pw")
    store.import_rating_items([{"question_id": "q1", "question": "问", "description": "述", "response": RESPONSE,
                                "backbone": "bb"}])  # fmt: skip
    store.import_label_items([{"question_id": "q1", "question": "问", "description": "述", "response": "AI的回答"}])
    with gr.Blocks():
        token = gr.BrowserState()
        rating, labelling = RatingPage(store, token), LabellingPage(store, token)
    tok = store.login("rita", "rita-pw").token
    item = store.rating_next(tok)["item_id"]
    note, progress = rating.saver("relevance")("forged", item, 2)
    assert note.startswith("✗ not saved") and "not logged in" in note and store.rating_rows() == []
    note, progress = rating.saver("relevance")(tok, item, 7)
    assert "relevance: must be one of 0, 1, 2, got 7" in note and store.rating_rows() == []
    note, progress = rating.saver("relevance")(tok, item, 2)
    assert note.startswith("✓ saved") and progress == "0 / 1 done · 0 skipped"
    assert store.rating_rows()[0]["relevance"] == 2
    out = rating.go(tok, None)  # resume: the partial item, its score restored, no backbone anywhere
    heading, *_, relevance = out[4:11]  # after the login box, work column, who-am-I and log-out
    assert "1 / 1" in heading and relevance == 2 and "bb" not in [str(v) for v in out]
    assert rating.go("forged", None)[0]["visible"] is True  # no session: the login box
    label_item = store.label_next(tok)["item_id"]
    boxes, note, _ = labelling.on_distortions(tok, label_item, ["labeling"])
    assert boxes == ["labeling"] and note.startswith("✓ saved")
    boxes, note, _ = labelling.on_distortions(tok, label_item, ["labeling", "none"])  # "none" ticked last
    assert boxes == ["none"] and store.label_get(tok, label_item)["saved"]["distortions"] == ["none"]
    assert "AI的回答" not in [str(v) for v in labelling.go(tok, None)]  # the answer stays on the server
    assert labelling.reveal(tok, label_item, True)["value"] == "AI的回答"
    comment = rating.text_saver("comment")  # typed text: calls stamped with the browser's clock
    assert comment(tok, item, "新的全文", 2000.5)[0].startswith("✓ saved")
    assert comment(tok, item, "旧", 1999.0) == (gr.update(), gr.update())  # an older text overtook it: dropped
    assert store.rating_rows()[0]["comment"] == "新的全文"
    store.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """The whole app (retrieval backbone only) on a free loopback port, over an injected fresh SQLite store."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install chromium fonts-wqy-microhei)")
    from annotation.store import AnnotationStore
    from app import build_app
    from cbt.backends.registry import BackendManager

    store = AnnotationStore(f"sqlite:///{tmp_path_factory.mktemp('ann') / 'annotation.sqlite3'}")
    store.add_user("alice", USERS["alice"])
    store.add_user("bob", USERS["bob"])
    store.add_user("dana", USERS["dana"])
    store.add_user("erin", USERS["erin"])
    store.add_user("root", USERS["root"], role="admin")
    store.import_rating_items(
        {"question_id": f"q{i}", "question": f"问题{i}：同事是不是在笑我？", "description": f"描述{i}",
         "response": f"{RESPONSE}（{i}）", "backbone": "secret-backbone-x"}
        for i in range(4)
    )  # fmt: skip
    store.import_label_items(
        {"question_id": f"q{i}", "question": f"标注问题{i}", "description": f"描述{i}", "response": f"AI回答原文{i}"}
        for i in range(3)
    )
    tmp = tmp_path_factory.mktemp("app")
    (tmp / "backbones.yaml").write_text("default: retrieval\nbackbones:\n  retrieval: {type: retrieval}\n")
    demo = build_app(BackendManager.from_config(tmp / "backbones.yaml").start(), store)  # the app's own wiring
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    yield f"http://127.0.0.1:{port}/", store
    demo.close()
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
        b = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield b
        b.close()


def log_in(context: object, url: str, tab: str, prefix: str, user: str) -> object:
    page = context.new_page()
    page.set_viewport_size({"width": 1280, "height": 1600})
    page.goto(url)
    page.get_by_role("tab", name=tab).click()
    page.fill(f"#{prefix}-username textarea", user)
    page.fill(f"#{prefix}-password input", USERS[user])
    page.click(f"#{prefix}-login-btn")
    page.wait_for_selector(f"#{prefix}-who:has-text('{user}')", timeout=TIMEOUT)
    return page


def wait_until(predicate: Callable[[], bool], seen: Callable[[], object], seconds: float = TIMEOUT / 1000) -> None:
    """Poll the store until what the page said is on disk (the page's status follows the store's return)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for the store; it holds {seen()!r}"
        time.sleep(0.1)


def wait_text(page: object, selector: str, text: str) -> None:
    page.wait_for_selector(f"{selector}:has-text('{text}')", timeout=TIMEOUT)


def pick(page: object, metric: str, score: int) -> None:
    """Click one 0-2 radio and wait for the confirmation that only a committed save produces."""
    page.locator(f"#rate-{metric} label").nth(score).click()
    wait_text(page, "#rate-status", f"{metric} = {score}")


def checked(page: object, elem: str) -> list[str]:
    return page.eval_on_selector_all(f"#{elem} input:checked", "els => els.map(e => e.parentElement.innerText)")


@pytest.mark.browser
def test_two_raters_rate_reload_resume_and_stay_apart(browser: object, served: tuple[str, object]) -> None:
    url, store = served
    alice_ctx, bob_ctx = browser.new_context(), browser.new_context()
    alice = log_in(alice_ctx, url, "Rate answers 回答评分", "rate", "alice")
    wait_text(alice, "#rate-heading", "1 / 4")
    assert "secret-backbone-x" not in alice.content()  # the backbone never reaches the browser
    assert alice.locator("#rate-highlight").is_hidden()  # section highlighting is off by default
    first_q = alice.input_value("#rate-question textarea")
    for metric, score in (("relevance", 2), ("structure", 1), ("helpfulness", 2)):
        pick(alice, metric, score)
    wait_text(alice, "#rate-progress", "1 / 4 done")
    alice.locator("#rate-comment textarea").press_sequentially("alice的私人备注")  # typed, as a rater does
    alice.click("#rate-heading")  # saves while typing are best effort; leaving the box always saves the whole text
    wait_until(
        lambda: any(r["comment"] == "alice的私人备注" for r in store.rating_rows()),
        lambda: [r["comment"] for r in store.rating_rows()],
    )
    alice.click("#rate-next")
    wait_text(alice, "#rate-heading", "2 / 4")
    second_q = alice.input_value("#rate-question textarea")
    pick(alice, "relevance", 0)  # item 2 left partial
    shot(alice, "rating")

    alice.reload()  # the login survives a reload, and the tab resumes at the first unfinished item
    alice.get_by_role("tab", name="Rate answers 回答评分").click()
    wait_text(alice, "#rate-heading", "2 / 4")
    assert alice.input_value("#rate-question textarea") == second_q
    assert checked(alice, "rate-relevance") == ["0 · 不相关 Irrelevant"] and checked(alice, "rate-structure") == []
    alice.click("#rate-prev")
    wait_text(alice, "#rate-heading", "1 / 4")
    assert alice.input_value("#rate-comment textarea") == "alice的私人备注"

    bob = log_in(bob_ctx, url, "Rate answers 回答评分", "rate", "bob")
    wait_text(bob, "#rate-heading", "1 / 4")
    for i in range(1, 5):  # bob walks his whole (differently shuffled) list: none of alice's answers shows
        if i > 1:
            bob.click("#rate-next")
        wait_text(bob, "#rate-heading", f"{i} / 4")
        assert checked(bob, "rate-relevance") == [] and bob.input_value("#rate-comment textarea") == ""
        assert "alice的私人备注" not in bob.content()
        if bob.input_value("#rate-question textarea") == first_q:
            pick(bob, "relevance", 1)
    rows = {(r["rater"], r["question_id"]): r for r in store.rating_rows() if r["rater"] in ("alice", "bob")}
    assert len(rows) == 3 and {r for r, _ in rows} == {"alice", "bob"}  # alice: 2 items, bob: 1
    alice_first = next(r for (who, _), r in rows.items() if who == "alice" and r["helpfulness"] is not None)
    assert (alice_first["relevance"], alice_first["structure"], alice_first["comment"]) == (2, 1, "alice的私人备注")
    alice_ctx.close()
    bob_ctx.close()


@pytest.mark.browser
def test_labelling_hides_the_answer_keeps_none_exclusive_and_resumes(
    browser: object, served: tuple[str, object]
) -> None:
    url, store = served
    ctx = browser.new_context()
    page = log_in(ctx, url, "Label distortions 认知歪曲标注", "label", "bob")
    wait_text(page, "#label-heading", "1 / 3")
    assert page.locator("#label-answer").is_hidden() and "AI回答原文" not in page.content()
    page.locator("#label-distortions").get_by_label("读心术 Mind reading").check()
    wait_text(page, "#label-status", "distortions")
    page.locator("#label-distortions").get_by_label("无认知歪曲 (none)").check()  # "none" clears the types
    page.wait_for_function("document.querySelectorAll('#label-distortions input:checked').length === 1")
    assert checked(page, "label-distortions") == ["无认知歪曲 (none)"]
    page.fill("#label-key-thought textarea", "同事笑一定是在笑我")
    page.locator("#label-confidence label").nth(2).click()
    wait_text(page, "#label-status", "confidence = 3")
    page.check("#label-show-answer input")
    wait_text(page, "#label-answer", "")
    assert page.input_value("#label-answer textarea").startswith("AI回答原文")
    shot(page, "labelling")
    page.reload()
    page.get_by_role("tab", name="Label distortions 认知歪曲标注").click()
    wait_text(page, "#label-heading", "2 / 3")  # item 1 is complete: resume at item 2
    labels = [r for r in store.label_rows() if r["rater"] == "bob"]
    assert len(labels) == 1 and labels[0]["distortions"] == [] and labels[0]["confidence"] == 3
    assert labels[0]["key_thought"] == "同事笑一定是在笑我"
    ctx.close()


@pytest.mark.browser
def test_admin_sees_progress_and_downloads_the_export(browser: object, served: tuple[str, object]) -> None:
    url, store = served
    erin = store.login("erin", USERS["erin"]).token  # rows of her own, so this test stands alone
    store.save_rating(erin, store.rating_next(erin)["item_id"], relevance=2, structure=2, helpfulness=1)
    store.save_label(erin, store.label_next(erin)["item_id"], distortions=["labeling"], confidence=2)
    ctx = browser.new_context(accept_downloads=True)
    rater = log_in(ctx, url, "Annotation admin 标注管理", "admin", "alice")
    wait_text(rater, "#admin-denied", "admin")
    assert rater.locator("#admin-work").is_hidden()
    rater.click("#admin-logout")
    rater.wait_for_selector("#admin-username textarea", timeout=TIMEOUT)
    rater.fill("#admin-username textarea", "root")
    rater.fill("#admin-password input", USERS["root"])
    rater.click("#admin-login-btn")
    wait_text(rater, "#admin-progress", "erin")
    rater.click("#admin-export-ratings")
    wait_text(rater, "#admin-note", "ratings rows")
    with rater.expect_download(timeout=TIMEOUT) as info:
        rater.locator("#admin-download a").first.click()
    rows = [json.loads(line) for line in Path(info.value.path()).read_text(encoding="utf-8").splitlines()]
    assert rows == store.export_ratings(store.login("root", USERS["root"]).token)
    assert {r["rater"] for r in rows} >= {"erin"} and all(r["backbone"] == "secret-backbone-x" for r in rows)
    shot(rater, "admin")
    rater.locator("#admin-format").get_by_label("csv").check()
    rater.click("#admin-export-labels")
    wait_text(rater, "#admin-note", "labels rows → labels.csv")
    with rater.expect_download(timeout=TIMEOUT) as info:
        rater.locator("#admin-download a").first.click()
    admin_token = store.login("root", USERS["root"]).token
    assert Path(info.value.path()).read_text(encoding="utf-8") == dumps_csv(
        store.export_labels(admin_token), LABEL_COLUMNS
    )
    rater.click("#admin-backup")
    wait_text(rater, "#admin-note", "Backup written")
    with rater.expect_download(timeout=TIMEOUT) as info:
        rater.locator("#admin-download a").first.click()
    with closing(sqlite3.connect(info.value.path())) as copy:
        assert copy.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == len(store.rating_rows())
    ctx.close()


@pytest.mark.browser
def test_skip_moves_on_and_sections_can_be_highlighted(browser: object, served: tuple[str, object]) -> None:
    url, store = served
    ctx = browser.new_context()
    page = log_in(ctx, url, "Rate answers 回答评分", "rate", "dana")
    wait_text(page, "#rate-heading", "1 / 4")
    page.get_by_text("Settings 设置").last.click()
    page.check("#rate-show-sections input")
    page.wait_for_selector("#rate-highlight .token.highlighted", timeout=TIMEOUT)
    assert page.locator("#rate-highlight").inner_text().count("读心术") >= 1
    page.click("#rate-skip")
    wait_text(page, "#rate-heading", "2 / 4")
    wait_text(page, "#rate-progress", "0 / 4 done · 1 skipped")
    page.reload()  # a skipped item is not where the rater resumes
    page.get_by_role("tab", name="Rate answers 回答评分").click()
    wait_text(page, "#rate-heading", "2 / 4")
    page.click("#rate-prev")
    wait_text(page, "#rate-heading", "1 / 4 · skipped")
    assert [r["skipped"] for r in store.rating_rows() if r["rater"] == "dana"] == [True]
    ctx.close()


@pytest.mark.browser
def test_failed_logins_are_refused_then_throttled(browser: object, served: tuple[str, object]) -> None:
    url, _ = served
    page = browser.new_context().new_page()
    page.goto(url)
    page.get_by_role("tab", name="Rate answers 回答评分").click()
    page.fill("#rate-username textarea", "carol")
    for _ in range(5):
        page.fill("#rate-password input", "wrong")
        page.click("#rate-login-btn")
        page.wait_for_function("document.querySelector('#rate-password input').value === ''", timeout=TIMEOUT)
        wait_text(page, "#rate-login-msg", "wrong username or password")
    page.fill("#rate-password input", "wrong")
    page.click("#rate-login-btn")
    wait_text(page, "#rate-login-msg", "too many failed logins for carol")
    assert page.locator("#rate-work").is_hidden()


def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

"""The annotation API over real HTTP on loopback: one unqueued POST per call, errors carry the store's message."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apprun import free_port

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ENDPOINTS = {"annotate_login", "rating_next", "save_rating", "label_next", "save_label", "annotate_progress"}


class Api:
    """POST {"data": [...]} to /gradio_api/run/<name>; returns (status, value or error message)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def __call__(self, name: str, *data: object) -> tuple[int, object]:
        req = urllib.request.Request(
            f"{self.base}gradio_api/run/{name}", json.dumps({"data": list(data)}).encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())["data"][0]
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read()).get("error")

    def ok(self, name: str, *data: object) -> object:
        status, value = self(name, *data)
        assert status == 200, f"{name}: {value}"
        return value


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, object]]:
    import gradio as gr

    from annotation.store import AnnotationStore
    from annotation.tabs import add_annotation_api

    store = AnnotationStore(f"sqlite:///{tmp_path_factory.mktemp('api') / 'annotation.sqlite3'}")
    store.load_users("rita:rita-pw,sam:sam-pw,boss:boss-pw:admin")
    store.import_rating_items(
        {
            "question_id": f"q{i}",
            "question": f"问题{i}",
            "description": "描述",
            "response": "回答",
            "backbone": "hidden-bb",
        }
        for i in range(3)
    )
    store.import_label_items({"question_id": f"q{i}", "question": f"问{i}", "description": "述"} for i in range(2))
    with gr.Blocks() as demo:
        add_annotation_api(store)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    yield Api(f"http://127.0.0.1:{port}/"), store
    demo.close()
    store.close()


def admin_rows(store: object) -> list[dict]:
    return store.export_ratings(store.login("boss", "boss-pw").token)


def test_endpoints_are_named_and_unqueued(api: tuple[Api, object]) -> None:
    client, _ = api
    with urllib.request.urlopen(f"{client.base}gradio_api/info", timeout=30) as resp:
        named = {name.lstrip("/") for name in json.loads(resp.read())["named_endpoints"]}
    assert named >= ENDPOINTS
    with urllib.request.urlopen(f"{client.base}config", timeout=30) as resp:
        deps = json.loads(resp.read())["dependencies"]
    assert all(d["queue"] is False for d in deps if d["api_name"] in ENDPOINTS)


def test_save_without_login_is_refused_and_changes_nothing(api: tuple[Api, object]) -> None:
    client, store = api
    before = admin_rows(store)
    item = store.rating_next(store.login("rita", "rita-pw").token)
    status, error = client("save_rating", "", item["item_id"], 2, None, None, None, None, None)
    assert status != 200 and "not logged in" in error
    status, error = client("save_rating", "forged-token", item["item_id"], 2, None, None, None, None, None)
    assert status != 200 and "not logged in" in error
    status, error = client("save_rating", "forged-token", "", 9, "", "", "", "", "")  # login is checked first
    assert status != 200 and "not logged in" in error
    status, error = client("save_label", "forged-token", "", "", "", "", "")
    assert status != 200 and "not logged in" in error
    status, error = client("annotate_login", "rita", "not-her-password")
    assert status != 200 and error == "wrong username or password"
    assert admin_rows(store) == before


def test_a_logged_in_rater_saves_and_reads_back_only_their_own(api: tuple[Api, object]) -> None:
    client, store = api
    token = client.ok("annotate_login", "sam", "sam-pw")
    item = client.ok("rating_next", token)
    assert set(item) == {"item_id", "question", "description", "response", "position", "total", "saved"}
    assert item["position"] == 1 and item["total"] == 3 and "backbone" not in item
    saved = client.ok("save_rating", token, item["item_id"], 2, None, None, "清楚", None, None)
    assert saved["relevance"] == 2 and saved["comment"] == "清楚" and saved["structure"] is None
    saved = client.ok("save_rating", token, item["item_id"], None, 1, 0, None, True, None)  # null = unchanged
    assert (saved["relevance"], saved["structure"], saved["helpfulness"], saved["flag"]) == (2, 1, 0, True)
    assert client.ok("annotate_progress", token)["rating"] == {"done": 1, "skipped": 0, "total": 3}
    nxt = client.ok("rating_next", token)
    assert nxt["item_id"] != item["item_id"] and nxt["position"] == 2
    other = client.ok("annotate_login", "rita", "rita-pw")
    assert client.ok("rating_next", other)["saved"] == {}  # sam's scores are not rita's
    assert client.ok("annotate_progress", other)["rating"]["done"] == 0
    mine = [r for r in admin_rows(store) if r["item_id"] == item["item_id"]]
    assert [r["rater"] for r in mine] == ["sam"]


def test_out_of_range_and_oversized_input_get_a_clear_error_and_change_nothing(api: tuple[Api, object]) -> None:
    client, store = api
    token = client.ok("annotate_login", "rita", "rita-pw")
    item = client.ok("rating_next", token)
    before = admin_rows(store)
    cases = [
        ((item["item_id"], 3, None, None, None, None, None), "relevance: must be one of 0, 1, 2, got 3"),
        ((item["item_id"], None, -1, None, None, None, None), "structure: must be one of 0, 1, 2, got -1"),
        ((item["item_id"], None, None, None, "x" * 2001, None, None), "comment: at most 2000 characters"),
        (("no-such-item", 1, None, None, None, None, None), "item_id: unknown rating item 'no-such-item'"),
    ]
    for args, message in cases:
        status, error = client("save_rating", token, *args)
        assert status != 200 and message in error, (args[:3], error)
    assert admin_rows(store) == before
    label = client.ok("label_next", token)
    status, error = client("save_label", token, label["item_id"], ["none", "labeling"], None, None, None)
    assert status != 200 and "'none' cannot be combined" in error
    status, error = client("save_label", token, label["item_id"], ["mind_reading"], None, 4, None)
    assert status != 200 and "confidence: must be one of 1, 2, 3, got 4" in error


def test_a_double_post_leaves_one_row(api: tuple[Api, object]) -> None:
    client, store = api
    token = client.ok("annotate_login", "rita", "rita-pw")
    item = client.ok("rating_next", token)
    for _ in range(2):
        client.ok("save_rating", token, item["item_id"], 1, 1, 1, None, None, None)
    rows = [r for r in admin_rows(store) if r["item_id"] == item["item_id"] and r["rater"] == "rita"]
    assert len(rows) == 1 and (rows[0]["relevance"], rows[0]["structure"], rows[0]["helpfulness"]) == (1, 1, 1)
    label = client.ok("label_next", token)
    for _ in range(2):
        client.ok("save_label", token, label["item_id"], ["mind_reading", "labeling"], "他们都看不起我", 2, None)
    labels = [r for r in store.export_labels(store.login("boss", "boss-pw").token) if r["rater"] == "rita"]
    assert len(labels) == 1 and labels[0]["distortions"] == ["mind_reading", "labeling"]
    assert client.ok("annotate_progress", token)["labelling"]["done"] == 1


def test_the_app_builds_without_raters_and_says_how_to_add_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import build_app
    from cbt.backends.registry import BackendManager

    for var in ("CBT_USERS", "CBT_USERS_FILE", "CBT_ANNOTATION_DB"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CBT_DATA_DIR", str(tmp_path))
    (tmp_path / "backbones.yaml").write_text("default: retrieval\nbackbones:\n  retrieval: {type: retrieval}\n")
    demo = build_app(BackendManager.from_config(tmp_path / "backbones.yaml"))
    config = json.dumps(demo.get_config_file(), ensure_ascii=False, default=str)
    assert "python -m cbt annotate add-user" in config and "CBT_USERS=" in config
    assert (tmp_path / "annotation.sqlite3").is_file()  # the default store opened in the data directory
    assert {d.get("api_name") for d in demo.get_config_file()["dependencies"]} >= ENDPOINTS


def test_hub_sign_in_is_offered_only_on_a_space_with_oauth_listing_raters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradio as gr

    from annotation.store import AnnotationStore
    from annotation.tabs import create_rating_tab
    from annotation.tabs.login import hub_login_enabled

    def login_buttons() -> int:
        with gr.Blocks() as demo, gr.Tabs():
            create_rating_tab(store)
        return sum(isinstance(block, gr.LoginButton) for block in demo.blocks.values())

    for name in ("SYSTEM", "SPACE_ID", "OAUTH_CLIENT_ID", "CBT_HF_RATERS"):
        monkeypatch.delenv(name, raising=False)
    store = AnnotationStore(f"sqlite:///{tmp_path}/a.sqlite3")
    assert not hub_login_enabled() and login_buttons() == 0  # local runs: passwords only
    import gradio.oauth

    oauth_env = {"OAUTH_CLIENT_ID": "client-id", "OAUTH_CLIENT_SECRET": "secret", "OAUTH_SCOPES": "openid profile"}
    for name, value in (oauth_env | {"OPENID_PROVIDER_URL": "http://127.0.0.1:9"}).items():
        monkeypatch.setattr(gradio.oauth, name, value)  # what a Space with hf_oauth sets (read at import)
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "me/cbt-studio")
    monkeypatch.setenv("OAUTH_CLIENT_ID", "client-id")
    assert not hub_login_enabled()  # a Space with OAuth but nobody listed
    monkeypatch.setenv("CBT_HF_RATERS", "carol")
    assert hub_login_enabled() and login_buttons() == 1
    store.close()

"""The Space packaging: README front matter against requirements.txt, the upload list, and `push-space` end to end
against a loopback Hub (a real HTTP server speaking the create-repo, preupload, LFS, commit, hardware and secrets
calls huggingface_hub makes)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from cbt.space import SpaceError, check_front_matter, pinned_version, read_front_matter, space_files

ROOT = Path(__file__).resolve().parents[1]
HF_COLOURS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
TOKEN = "hf_testtoken_DoNotPrint_123"
SECRET = "sk-secret-value-DoNotPrint-456"


# ---------------------------------------------------------------- front matter


def test_readme_front_matter_is_a_valid_gradio_space_on_the_pinned_gradio() -> None:
    meta = read_front_matter(ROOT / "README.md")
    assert check_front_matter(meta, ROOT) == []
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert meta["sdk_version"] == pinned_version(ROOT / "requirements.txt", "gradio")
    assert meta["python_version"] in ("3.10", "3.11", "3.12")
    assert {meta["colorFrom"], meta["colorTo"]} <= HF_COLOURS
    assert meta["license"] == "other" and "gemma" in meta["license_link"]  # the adapter derives from Gemma
    assert meta["suggested_hardware"] == "cpu-basic" and meta["suggested_storage"] in ("small", "medium", "large")
    assert len(meta["short_description"]) <= 60 and "mental-health" in meta["tags"]


def make_checkout(root: Path, readme_meta: dict | None = None) -> Path:
    """A small app checkout with files that must and must not travel."""
    meta = readme_meta or read_front_matter(ROOT / "README.md")
    files = {
        "README.md": "---\n" + yaml.safe_dump(meta, allow_unicode=True) + "---\n\n# App\n",
        "requirements.txt": (ROOT / "requirements.txt").read_text(encoding="utf-8"),
        "app.py": "print('hi')\n",
        "cbt/core.py": "X = 1\n",
        "cbt/__pycache__/core.cpython-311.pyc": "junk",
        "models/mini/adapter/adapter_config.json": '{"r": 8}',
        "models/mini/train_summary.json": "{}",
        "models/mini/checkpoint-10/optimizer.pt": "big",
        "models/base/model.safetensors": "weights",
        "data/annotation.sqlite3": "db",
        "outputs/run/log.txt": "x",
        "tests/artifacts/chat.png": "png",
        ".env": "OPENAI_API_KEY=sk-1",
        "notes [draft].md": "brackets are literal",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    # binary: must go through LFS (the fake Hub says so for content with NUL bytes)
    (root / "models/mini/adapter/adapter_model.safetensors").write_bytes(bytes(range(256)) * 64)
    return root


EXPECTED = [
    "README.md", "app.py", "cbt/core.py", "models/mini/adapter/adapter_config.json",
    "models/mini/adapter/adapter_model.safetensors", "models/mini/train_summary.json", "notes [draft].md",
    "requirements.txt",
]  # fmt: skip


def test_upload_list_keeps_the_app_and_adapter_and_drops_data_caches_and_secrets(tmp_path: Path) -> None:
    root = make_checkout(tmp_path)
    assert space_files(root) == EXPECTED
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / ".gitignore").write_text("notes*\n")
    assert space_files(root) == [".gitignore", *[f for f in EXPECTED if not f.startswith("notes")]]


def test_real_checkout_upload_list() -> None:
    files = space_files(ROOT)
    assert {"app.py", "requirements.txt", "README.md", "models/cbt-mini/adapter/adapter_model.safetensors"} <= set(
        files
    )
    assert not [f for f in files if f.startswith(("tests/artifacts/", "data/", "outputs/", ".git/"))]
    assert not [f for f in files if "checkpoint-" in f or f.endswith((".pyc", ".sqlite3"))]
    assert sum((ROOT / f).stat().st_size for f in files) < 60e6


def test_front_matter_problems_are_named(tmp_path: Path) -> None:
    meta = read_front_matter(ROOT / "README.md") | {"sdk_version": "5.0.0", "python_version": 3.1}
    make_checkout(tmp_path, meta)
    (tmp_path / "app.py").unlink()
    problems = "; ".join(check_front_matter(read_front_matter(tmp_path / "README.md"), tmp_path))
    assert "sdk_version '5.0.0' differs from requirements.txt's gradio==" in problems
    assert "python_version must be a quoted string" in problems and "app_file 'app.py' is not a file" in problems
    bad = tmp_path / "bad.md"
    bad.write_text("---\ntitle: x\nsdk: [gradio\n---\n")
    with pytest.raises(SpaceError, match=r"bad.md:\d+: front matter is not valid YAML"):
        read_front_matter(bad)
    bad.write_text("# no front matter\n")
    with pytest.raises(SpaceError, match=r"bad.md:1: no YAML front matter"):
        read_front_matter(bad)


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    return subprocess.run(
        [sys.executable, "-m", "cbt", "push-space", *args], cwd=ROOT, env=base | env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_dry_run_lists_files_and_front_matter_offline(tmp_path: Path) -> None:
    root = make_checkout(tmp_path)
    out = run_cli(["--repo-id", "me/cbt", "--dry-run", "--root", str(root)], {"HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    assert "sdk_version: 6.31.0" in out.stdout and "Dry run: nothing uploaded" in out.stdout
    listed = [line.split()[-1] for line in out.stdout.splitlines() if line.startswith("  ") and line.split()]
    assert "models/mini/adapter/adapter_model.safetensors" in listed and ".env" not in out.stdout
    bad = run_cli(["--repo-id", "not a repo", "--dry-run"], {})
    assert bad.returncode == 2 and "USER/NAME" in bad.stderr


# ---------------------------------------------------------------- a loopback Hub


class FakeHub:
    """Records every call; LFS for binary content, regular git blobs for text, as the real Hub decides."""

    def __init__(self, fail_create: bool = False) -> None:
        self.calls: list[tuple[str, str, dict | bytes]] = []
        self.lfs: dict[str, bytes] = {}
        self.commits: list[list[dict]] = []
        self.fail_create = fail_create
        self.auth: set[str] = set()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def paths(self, method: str) -> list[str]:
        return [p for m, p, _ in self.calls if m == method]

    def body(self, suffix: str) -> dict:
        return next(b for _, p, b in self.calls if p.endswith(suffix))

    def route(self, method: str, path: str, raw: bytes) -> tuple[int, object]:
        if method == "PUT" and path.startswith("/lfs-upload/"):
            self.lfs[path.rsplit("/", 1)[1]] = raw
            return 200, {}
        body = json.loads(raw) if raw and not path.endswith("/commit/main") else raw
        self.calls.append((method, path, body))
        if path == "/api/repos/create":
            if self.fail_create:
                return 401, {"error": "Invalid credentials in Authorization header"}
            return 200, {"url": f"{self.url}/spaces/{body['organization']}/{body['name']}", "name": body["name"]}
        if path == "/api/validate-yaml":
            yaml.safe_load(body["content"].split("---")[1])
            return 200, {"errors": [], "warnings": []}
        if path.endswith("/preupload/main"):
            files = [
                {"path": f["path"], "uploadMode": "lfs" if b"\0" in base64.b64decode(f["sample"]) else "regular",
                 "shouldIgnore": False, "oid": None}
                for f in body["files"]
            ]  # fmt: skip
            return 200, {"files": files}
        if path.endswith(".git/info/lfs/objects/batch"):
            href = f"{self.url}/lfs-upload/"
            objs = [{"oid": o["oid"], "size": o["size"], "actions": {"upload": {"href": href + o["oid"]}}}
                    for o in body["objects"]]  # fmt: skip
            return 200, {"transfer": "basic", "objects": objs}
        if path.endswith("/commit/main"):
            self.commits.append([json.loads(line) for line in raw.splitlines() if line.strip()])
            repo = path.removeprefix("/api/").removesuffix("/commit/main")  # spaces/USER/NAME
            return 200, {"commitUrl": f"{self.url}/{repo}/commit/abc", "commitOid": "a" * 40}
        if path.endswith("/hardware"):
            return 200, {"stage": "BUILDING", "hardware": {"current": None, "requested": body["flavor"]}}
        if path.endswith(("/secrets", "/variables")):
            return 200, {}
        return 404, {"error": f"fake hub: no route {method} {path}"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hub.auth.add(self.headers.get("Authorization", ""))
                status, payload = hub.route(self.command, self.path.split("?")[0], raw)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _serve

        return Handler


@pytest.fixture
def hub_env() -> Iterator[tuple[FakeHub, dict[str, str]]]:
    with FakeHub() as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_XET": "1", "OPENAI_API_KEY": SECRET}
        env |= {"HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        env |= {"HF_HUB_OFFLINE": "0"}  # CI runs with the hub offline; this test's hub is on loopback
        yield hub, env


def test_push_creates_the_space_uploads_exactly_the_list_and_sets_hardware(
    tmp_path: Path, hub_env: tuple[FakeHub, dict[str, str]]
) -> None:
    hub, env = hub_env
    root = make_checkout(tmp_path)
    args = ["--repo-id", "me/cbt-studio", "--private", "--hardware", "cpu-basic", "--storage", "small"]
    out = run_cli([*args, "--secret", "OPENAI_API_KEY", "--root", str(root)], env)
    assert out.returncode == 0, out.stderr
    create = hub.body("/api/repos/create")
    assert (create["type"], create["sdk"], create["visibility"], create["name"]) == (
        "space",
        "gradio",
        "private",
        "cbt-studio",
    )
    assert hub.auth - {""} == {f"Bearer {TOKEN}"}
    assert "sdk_version: 6.31.0" in hub.body("/api/validate-yaml")["content"]
    (commit,) = hub.commits
    got: dict[str, bytes] = {}
    for op in commit:
        v = op["value"]
        if op["key"] == "file":
            got[v["path"]] = base64.b64decode(v["content"])
        elif op["key"] == "lfsFile":
            got[v["path"]] = hub.lfs[v["oid"]]
            assert hashlib.sha256(got[v["path"]]).hexdigest() == v["oid"]
    assert sorted(got) == EXPECTED
    assert all(got[name] == (root / name).read_bytes() for name in EXPECTED)
    assert any(op["key"] == "lfsFile" for op in commit)  # the binary adapter went through LFS
    assert hub.body("/hardware") == {"flavor": "cpu-basic"}
    assert hub.body("/secrets") == {"key": "OPENAI_API_KEY", "value": SECRET}
    assert hub.body("/variables")["key"] == "CBT_TRUST_PROXY"
    assert "Hardware requested: cpu-basic" in out.stdout and "Secret OPENAI_API_KEY: set" in out.stdout
    assert TOKEN not in out.stdout + out.stderr and SECRET not in out.stdout + out.stderr


def test_push_without_token_or_with_a_rejected_token_fails_in_one_line(tmp_path: Path) -> None:
    root = make_checkout(tmp_path)
    out = run_cli(["--repo-id", "me/x", "--root", str(root)], {})
    assert out.returncode == 2 and "set HF_TOKEN" in out.stderr
    with FakeHub(fail_create=True) as hub:
        out = run_cli(["--repo-id", "me/x", "--root", str(root)], {"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN})
    assert out.returncode == 1 and "upload to spaces/me/x failed" in out.stderr
    assert TOKEN not in out.stdout + out.stderr and not hub.commits


def test_push_refuses_a_pin_mismatch_before_any_network(tmp_path: Path) -> None:
    meta = read_front_matter(ROOT / "README.md") | {"sdk_version": "6.0.0"}
    root = make_checkout(tmp_path, meta)
    out = run_cli(["--repo-id", "me/x", "--root", str(root)], {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": TOKEN})
    assert out.returncode == 2 and "differs from requirements.txt's gradio==6.31.0" in out.stderr


def test_copied_checkout_without_git_matches(tmp_path: Path) -> None:
    dst = tmp_path / "copy"
    shutil.copytree(make_checkout(tmp_path / "src"), dst)
    assert space_files(dst) == EXPECTED

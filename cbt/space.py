"""`python -m cbt push-space`: publish this checkout as a Gradio Space on the Hugging Face Hub.

    python -m cbt push-space --repo-id USER/NAME --dry-run          # offline: the files and the front matter
    HF_TOKEN=hf_... python -m cbt push-space --repo-id USER/NAME [--private] [--hardware cpu-basic] \\
        [--storage small] [--secret OPENAI_API_KEY --secret CBT_USERS]

The Space's configuration is README.md's YAML front matter; its sdk_version must equal requirements.txt's gradio
pin. Files: what git tracks or would track (never what .gitignore hides), minus SPACE_IGNORE below (tests'
artifacts, data, outputs, caches, databases, secrets), and under models/ only adapters and small summaries.
The token comes from HF_TOKEN and is never printed; --secret copies an environment variable's value into the
Space's secrets without printing it. HF_ENDPOINT selects another Hub (the tests use a loopback one).
No .gitattributes is shipped or kept in the repository: the Hub starts a Space with its own LFS rules and stores
binary files (the adapter, images) through LFS/Xet on upload, while LFS rules here would turn the adapter into
an LFS pointer in this git repository wherever git-lfs is installed.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

# The ".spaceignore": gitignore-like fnmatch patterns on paths relative to the repository root ('*' crosses '/').
SPACE_IGNORE = [
    ".git/*", ".github/*", ".ci/*", ".venv/*", "venv/*", "*/__pycache__/*", "__pycache__/*", "*.pyc",
    ".pytest_cache/*", ".ruff_cache/*", "*.egg-info/*",
    "tests/artifacts/*", "data/*", "outputs/*", "runs/*", "wandb/*",
    "*.sqlite3", "*.sqlite3-*", "*.sqlite", "*.db", "*.db-journal", "*.db-wal",
    ".env", "*.env", ".env.*", "*.pem", "*.key", ".netrc", "*token*.txt",
    "*.log", "*.tmp", ".DS_Store",
]  # fmt: skip
# Under models/ only these travel: LoRA adapters (a few MB) and the training summary; never checkpoints or bases.
MODEL_KEEP = ["models/*/adapter/*", "models/*/train_summary.json", "models/*/loss_curve.png"]
MAX_FILE_BYTES = 50 * 1024 * 1024
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)---[ \t]*(\r?\n|\Z)", re.S)


class SpaceError(ValueError):
    """The checkout is not a valid Space (bad front matter, pin mismatch, missing file)."""


def read_front_matter(readme: Path) -> dict[str, Any]:
    """README.md's leading YAML block as a dict; SpaceError names the file and line when it is missing or bad."""
    text = readme.read_text(encoding="utf-8")
    m = _FRONT.match(text)
    if not m:
        raise SpaceError(f"{readme}:1: no YAML front matter (the file must start with a '---' line)")
    try:
        meta = yaml.safe_load(m.group(1))
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", 0) + 2
        raise SpaceError(f"{readme}:{line}: front matter is not valid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise SpaceError(f"{readme}:2: front matter must be a mapping of keys to values")
    return meta


def pinned_version(requirements: Path, package: str) -> str | None:
    """The exact `package==X` (or `package[extra]==X`) pin in a requirements file, or None when not pinned exactly.

    >>> import tempfile; f = Path(tempfile.mkdtemp()) / "r.txt"; _ = f.write_text("gradio[oauth]==6.31.0  # pin")
    >>> pinned_version(f, "gradio")
    '6.31.0'
    """
    pat = re.compile(rf"^\s*{re.escape(package)}\s*(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)", re.I)  # extras allowed
    for line in requirements.read_text(encoding="utf-8").splitlines():
        if m := pat.match(line):
            return m.group(1)
    return None


def check_front_matter(meta: dict[str, Any], root: Path = ROOT) -> list[str]:
    """Problems that would stop the Space from building or running as tested; empty when it is fine."""
    problems = []
    if meta.get("sdk") != "gradio":
        problems.append(f"sdk is {meta.get('sdk')!r}, expected 'gradio'")
    pin = pinned_version(root / "requirements.txt", "gradio")
    if str(meta.get("sdk_version")) != str(pin):
        problems.append(f"sdk_version {meta.get('sdk_version')!r} differs from requirements.txt's gradio=={pin}")
    app_file = meta.get("app_file")
    if not app_file or not (root / str(app_file)).is_file():
        problems.append(f"app_file {app_file!r} is not a file in {root}")
    if not isinstance(meta.get("python_version"), str):
        problems.append('python_version must be a quoted string such as "3.11" (3.10 would read as 3.1)')
    for key in ("title", "license"):
        if not meta.get(key):
            problems.append(f"{key} is missing")
    if len(str(meta.get("short_description", ""))) > 60:
        problems.append("short_description is longer than 60 characters")
    return problems


def candidate_files(root: Path) -> list[str]:
    """Files git tracks or would track (respecting .gitignore); every file when `root` is not a git checkout."""
    if (root / ".git").exists():
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root, capture_output=True, check=True,
        ).stdout  # fmt: skip
        names = {n for n in out.decode("utf-8").split("\0") if n}
        return sorted(n for n in names if (root / n).is_file())  # deleted but still tracked files drop out
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def space_files(root: Path = ROOT) -> list[str]:
    """The exact list push-space uploads (paths relative to `root`)."""
    from huggingface_hub.utils import filter_repo_objects

    kept = filter_repo_objects(candidate_files(root), ignore_patterns=SPACE_IGNORE)
    out = []
    for name in kept:
        if name.startswith("models/") and not any(fnmatch.fnmatch(name, p) for p in MODEL_KEEP):
            continue
        if (root / name).stat().st_size > MAX_FILE_BYTES:
            continue
        out.append(name)
    return out


def describe(root: Path, files: Sequence[str], meta: dict[str, Any]) -> str:
    """What will be uploaded: the front matter, then one line per file with its size."""
    total = sum((root / f).stat().st_size for f in files)
    lines = ["Front matter (README.md):", yaml.safe_dump(meta, allow_unicode=True, sort_keys=False).rstrip()]
    lines.append(f"Files ({len(files)}, {total / 1e6:.1f} MB):")
    lines += [f"  {(root / f).stat().st_size:>10,}  {f}" for f in files]
    return "\n".join(lines)


def push(api: Any, repo_id: str, root: Path, files: Sequence[str], args: argparse.Namespace) -> str:
    """Create (or reuse) the Space, upload `files` in one commit, then apply hardware, storage and secrets."""
    url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=args.private or None, exist_ok=True)
    print(f"Space: {url}")
    info = api.upload_folder(
        repo_id=repo_id, repo_type="space", folder_path=str(root),
        allow_patterns=[glob.escape(f) for f in files], ignore_patterns=SPACE_IGNORE,
        commit_message=args.message,
    )  # fmt: skip
    print(f"Committed {len(files)} files: {getattr(info, 'commit_url', info)}")
    # Spaces sit behind a proxy: the limiter should key clients by X-Forwarded-For (cbt/limits.py).
    api.add_space_variable(repo_id, "CBT_TRUST_PROXY", "1")
    for name in args.secret:
        api.add_space_secret(repo_id, name, os.environ[name])
        print(f"Secret {name}: set (value not shown)")
    if args.hardware:
        runtime = api.request_space_hardware(repo_id, args.hardware)
        print(f"Hardware requested: {getattr(runtime, 'requested_hardware', args.hardware)}")
    if args.storage:
        if hasattr(api, "request_space_storage"):
            api.request_space_storage(repo_id, args.storage)
            print(f"Persistent storage requested: {args.storage}")
        else:  # huggingface_hub 1.x dropped storage tiers for volumes
            print(f"Storage: this huggingface_hub has no storage tiers; README suggests '{args.storage}' "
                  "(attach a volume in the Space settings to keep CBT_DATA_DIR across restarts)")  # fmt: skip
    return str(url)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cbt push-space", description=__doc__.split("\n\n")[0])
    p.add_argument("--repo-id", required=True, help="USER/NAME of the Space")
    p.add_argument("--private", action="store_true", help="create the Space private")
    p.add_argument("--dry-run", action="store_true", help="list the files and front matter; no network")
    p.add_argument("--hardware", help="request this hardware (e.g. cpu-basic, cpu-upgrade, t4-small)")
    p.add_argument("--storage", choices=["small", "medium", "large"], help="request persistent storage")
    p.add_argument("--secret", action="append", default=[], metavar="ENV_NAME", help="copy $ENV_NAME to a secret")
    p.add_argument("--message", default="Update the Space from CBT-LLM Studio", help="commit message")
    p.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None, api: Any = None) -> int:
    """Entry point; `api` lets a caller hand in a HfApi (or a stand-in) instead of building one from HF_TOKEN."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    root = args.root.resolve()
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", args.repo_id):
        print(f"error: --repo-id must look like USER/NAME, got {args.repo_id!r}", file=sys.stderr)
        return 2
    try:
        meta = read_front_matter(root / "README.md")
    except (OSError, SpaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = check_front_matter(meta, root)
    if problems:
        print("error: README.md front matter: " + "; ".join(problems), file=sys.stderr)
        return 2
    missing = [n for n in args.secret if not os.environ.get(n)]
    if missing:
        print(f"error: --secret names unset environment variables: {', '.join(missing)}", file=sys.stderr)
        return 2
    files = space_files(root)
    print(describe(root, files, meta))
    if args.dry_run:
        print(f"Dry run: nothing uploaded to spaces/{args.repo_id}")
        return 0
    if api is None:
        token = os.environ.get("HF_TOKEN")
        if not token:
            print("error: set HF_TOKEN to a write token (https://huggingface.co/settings/tokens)", file=sys.stderr)
            return 2
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    try:
        push(api, args.repo_id, root, files, args)
    except Exception as exc:  # HTTP and auth failures: one line, the token never in it
        print(f"error: upload to spaces/{args.repo_id} failed: {type(exc).__name__}: {exc}"[:500], file=sys.stderr)
        return 1
    return 0

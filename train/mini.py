"""Prepare CBT-mini's base model: `python -m cbt prepare-mini [--out DIR]` (see cbt/backends/gemma_base.py).

The app does this by itself, in the background, the first time it starts; this command does it ahead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cbt.backends.gemma_base import DEFAULT_DIR, prepare_base

__all__ = ["DEFAULT_DIR", "main", "prepare_base"]


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m cbt prepare-mini", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(DEFAULT_DIR))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.stdout.write(str(prepare_base(args.out)) + "\n")
    return 0

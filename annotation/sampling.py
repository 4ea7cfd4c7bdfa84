"""The seeded random sample of test-split items for distortion labelling (Table 3's ground truth).

Items are ranked by SHA-256 of (seed, id), so the same N and seed pick the same items on any machine and in
any input order; a larger N extends a smaller one's sample.

>>> ids = [f"q{i}" for i in range(10)]
>>> sample_ids(ids, 3, seed=0) == sample_ids(list(reversed(ids)), 3, seed=0)
True
>>> sample_ids(ids, 3, seed=0) == sample_ids(ids, 4, seed=0)[:3]
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from annotation.rows import AnnotationError


def _rank(seed: int, item_id: str) -> bytes:
    return hashlib.sha256(f"{seed}\0{item_id}".encode()).digest()


def sample_ids(ids: Sequence[str], n: int, seed: int = 0) -> list[str]:
    """N distinct ids in the sample's order; a clear error when N is not between 1 and len(ids)."""
    unique = sorted(set(ids))
    if len(unique) != len(ids):
        raise AnnotationError("ids: the input holds duplicate ids; sample a file with unique ids")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise AnnotationError(f"n: must be a positive whole number, got {n!r}")
    if n > len(unique):
        raise AnnotationError(f"n: asked for {n} items but only {len(unique)} are available")
    return sorted(unique, key=lambda i: _rank(seed, i))[:n]

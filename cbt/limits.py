"""Abuse limits for generation: a message-length cap and per-session / per-client token-bucket rate limits.

Policy (mental-health software: safety before limits):
1. The crisis check runs first, on every message, before either limit. A crisis message always gets the fixed
   crisis reply, even when it is over-long or its sender is rate-limited: that reply costs no model call.
   Messages longer than `CRISIS_SCAN_CHARS` are scanned on their head and tail only (bounded CPU per request).
2. Then the length cap (`MAX_MESSAGE_CHARS`): a longer message is refused with a message saying both lengths.
3. Then the rate limit: each generation takes one token from the caller's session bucket and from its client
   (IP address) bucket; an empty bucket refuses the call and says when to retry. Nothing is queued or slept.

Sizes come from the environment so a deployment can tune them without code: CBT_MAX_MESSAGE_CHARS,
CBT_RATE_SESSION (e.g. "10/min, burst 5" is `10:5`), CBT_RATE_CLIENT (`60:30`); `0` turns a limit off.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_MESSAGE_CHARS = 2000
CRISIS_SCAN_CHARS = 20_000
DEFAULT_SESSION_RATE = "10:5"  # 10 generations a minute, bursts of 5
DEFAULT_CLIENT_RATE = "60:30"  # per IP address: a shared NAT may hold several people


class InputTooLong(ValueError):
    """The message is over the cap; the text says by how much."""


class RateLimited(ValueError):
    """Too many generations; `retry_after` says how many seconds until one more is allowed."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def max_message_chars() -> int:
    """The cap in force: CBT_MAX_MESSAGE_CHARS, else MAX_MESSAGE_CHARS."""
    return int(os.environ.get("CBT_MAX_MESSAGE_CHARS") or MAX_MESSAGE_CHARS)


def check_length(text: str, max_chars: int | None = None) -> str:
    """`text` unchanged when within the cap, else InputTooLong naming both lengths.

    >>> check_length("你好", 5)
    '你好'
    >>> check_length("x" * 6, 5)
    Traceback (most recent call last):
    ...
    cbt.limits.InputTooLong: message too long: 6 characters (at most 5); please shorten it
    """
    cap = max_message_chars() if max_chars is None else max_chars
    if len(text) > cap:
        raise InputTooLong(f"message too long: {len(text)} characters (at most {cap}); please shorten it")
    return text


def crisis_scan_text(text: str, limit: int = CRISIS_SCAN_CHARS) -> str:
    """What the crisis check reads: the whole text, or its head and tail when longer than `limit`.

    >>> crisis_scan_text("abcdef", 4)
    'ab\\nef'
    """
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n" + text[-half:]


def parse_rate(spec: str) -> tuple[float, float]:
    """'PER_MINUTE:BURST' (or 'PER_MINUTE', burst = per minute) -> (per_minute, burst); 0 means no limit.

    >>> parse_rate("10:5")
    (10.0, 5.0)
    >>> parse_rate("30")
    (30.0, 30.0)
    """
    head, _, tail = spec.strip().partition(":")
    try:
        per_minute = float(head)
        burst = float(tail) if tail else per_minute
    except ValueError:
        raise ValueError(f"rate limit '{spec}': expected PER_MINUTE or PER_MINUTE:BURST, e.g. 10:5") from None
    if per_minute < 0 or burst < 0 or (per_minute > 0 and burst < 1):
        raise ValueError(f"rate limit '{spec}': rates must be >= 0 and the burst >= 1")
    return per_minute, burst


@dataclass
class _Bucket:
    level: float
    stamp: float


class KeyedBuckets:
    """One token bucket per key (session or client), thread-safe, holding at most `max_keys` idle buckets.

    `take(key)` returns 0.0 and spends a token when one is there, else the seconds until one will be.

    >>> clock = iter([0.0, 0.0, 0.0, 6.0]).__next__
    >>> b = KeyedBuckets(per_minute=10, burst=2, clock=clock)
    >>> [b.take("s"), b.take("s"), b.take("s"), b.take("s")]
    [0.0, 0.0, 6.0, 0.0]
    """

    def __init__(
        self, per_minute: float, burst: float, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.pop(key, None) or _Bucket(self.burst, now)
        bucket.level = min(self.burst, bucket.level + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        self._buckets[key] = bucket  # most recently used last
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)  # an evicted key starts again with a full bucket
        return bucket

    def wait_time(self, key: str) -> float:
        """Seconds until `key` may take a token (0.0: now); spends nothing."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            bucket = self._refilled(key, self.clock())
            return 0.0 if bucket.level >= 1 else (1 - bucket.level) / self.rate

    def take(self, key: str) -> float:
        if self.rate <= 0:
            return 0.0
        with self._lock:
            bucket = self._refilled(key, self.clock())
            if bucket.level >= 1:
                bucket.level -= 1
                return 0.0
            return (1 - bucket.level) / self.rate


class GenerationLimiter:
    """Both limits at once: a call is allowed only when its session and its client each have a token."""

    def __init__(self, session: KeyedBuckets, client: KeyedBuckets) -> None:
        self.session = session
        self.client = client

    @classmethod
    def from_env(cls, clock: Callable[[], float] = time.monotonic) -> GenerationLimiter:
        """Limits from CBT_RATE_SESSION / CBT_RATE_CLIENT (see the module docstring)."""
        s_rate, s_burst = parse_rate(os.environ.get("CBT_RATE_SESSION") or DEFAULT_SESSION_RATE)
        c_rate, c_burst = parse_rate(os.environ.get("CBT_RATE_CLIENT") or DEFAULT_CLIENT_RATE)
        return cls(KeyedBuckets(s_rate, s_burst, clock), KeyedBuckets(c_rate, c_burst, clock))

    def check(self, session: str, client: str) -> None:
        """Spend one token of each, or raise RateLimited with the wait in the message. A refused call spends
        nothing, except when two calls of one caller race between the look and the take (one token at most)."""
        wait = max(self.session.wait_time(f"s:{session}"), self.client.wait_time(f"c:{client}"))
        if wait <= 0:
            wait = max(self.session.take(f"s:{session}"), self.client.take(f"c:{client}"))
        if wait > 0:
            raise RateLimited(f"too many requests: please wait {math.ceil(wait)} s before asking again", wait)

    def guard(self, session: str, client: str) -> Callable[[], None]:
        """A no-argument check bound to one caller, for `cbt.chat.respond(allow=...)`."""
        return lambda: self.check(session, client)


def request_keys(request: object | None) -> tuple[str, str]:
    """(session, client) keys from a gradio Request (duck-typed: cbt/ does not import gradio).

    The client is the peer address. Behind N trusted reverse proxies (a Hugging Face Space: 1) set
    CBT_TRUST_PROXY=N to use the N-th address from the right of X-Forwarded-For instead: proxies append the
    address they saw, so the entries to the left of theirs are the caller's to forge.
    """
    if request is None:
        return "local", "local"
    client = getattr(getattr(request, "client", None), "host", None) or "unknown"
    hops = int(os.environ.get("CBT_TRUST_PROXY") or 0)
    if hops > 0:
        headers = getattr(request, "headers", None) or {}
        forwarded = headers.get("x-forwarded-for", "") if hasattr(headers, "get") else ""
        chain = [a.strip() for a in forwarded.split(",") if a.strip()]
        if chain:
            client = chain[-hops] if len(chain) >= hops else chain[0]
    session = getattr(request, "session_hash", None) or f"client:{client}"  # plain HTTP calls carry no session
    return str(session), str(client)


_shared: GenerationLimiter | None = None
_shared_lock = threading.Lock()


def shared_limiter() -> GenerationLimiter:
    """The one limiter the chat tab, the comparison tab and the API share, so no door bypasses another."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = GenerationLimiter.from_env()
        return _shared

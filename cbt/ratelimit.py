"""Async token buckets for requests-per-minute and tokens-per-minute limits."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """Refills `per_minute` units a minute, holds at most a minute's worth; `acquire` waits for room.

    >>> import asyncio
    >>> b = TokenBucket(600)
    >>> asyncio.run(b.acquire(10)) is None
    True
    """

    def __init__(self, per_minute: float | None) -> None:
        self.rate = (per_minute or 0) / 60.0
        self.capacity = float(per_minute or 0)
        self.level = self.capacity
        self.stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self, amount: float = 1.0) -> None:
        if self.rate <= 0:
            return
        amount = min(amount, self.capacity)
        async with self._lock:
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.level >= amount:
                    self.level -= amount
                    return
                await asyncio.sleep((amount - self.level) / self.rate)

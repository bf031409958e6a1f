"""Time, injectable: the HTTP layer's rate limiter, retry back-off, Retry-After handling and the
robots.txt cache read time and sleep through a :class:`Clock`, so tests can run them on a fake
clock without sleeping. (The per-response deadline is enforced by a real timer, see http.py.)"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


class Clock:
    """The real clock."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (for HTTP dates)."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals)."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=timezone.utc)


class FakeClock(Clock):
    """A clock for tests: ``sleep`` advances time instantly and records how long was asked."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = float(start)
        self._mono = 1000.0
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def time(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if seconds > 0:
                self._now += seconds
                self._mono += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            self._mono += seconds


SYSTEM_CLOCK = Clock()

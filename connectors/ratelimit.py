"""Per-host rate limiting: a token bucket per host name (GCRA formulation).

Each host gets ``burst`` requests at once and then one request every ``interval`` seconds.
``acquire(host)`` reserves a slot under a lock and sleeps (on the injectable clock) outside it,
so threads sharing one limiter queue fairly. robots.txt ``Crawl-delay`` raises a host's interval
through :meth:`HostRateLimiter.set_interval`.
"""

from __future__ import annotations

import threading
from typing import Mapping

from .clock import SYSTEM_CLOCK, Clock


class HostRateLimiter:
    def __init__(
        self,
        interval: float = 1.0,
        burst: int = 1,
        host_intervals: Mapping[str, float] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if interval < 0:
            raise ValueError("interval must be >= 0")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self.interval = float(interval)
        self.burst = int(burst)
        self._intervals = {k.lower(): float(v) for k, v in (host_intervals or {}).items()}
        self._floors: dict[str, float] = {}
        self._tat: dict[str, float] = {}  # theoretical arrival time of the next request
        self._clock = clock
        self._lock = threading.Lock()

    def interval_for(self, host: str) -> float:
        host = host.lower()
        base = self._intervals.get(host, self.interval)
        return max(base, self._floors.get(host, 0.0))

    def set_interval(self, host: str, seconds: float) -> None:
        """Raise ``host``'s interval to at least ``seconds`` (e.g. robots.txt Crawl-delay)."""
        with self._lock:
            self._floors[host.lower()] = max(0.0, float(seconds))

    def reserve(self, host: str) -> float:
        """Reserve the next slot for ``host``; return how long to wait before using it."""
        host = host.lower()
        with self._lock:
            interval = self.interval_for(host)
            if interval <= 0:
                return 0.0
            now = self._clock.monotonic()
            tat = max(self._tat.get(host, now), now)
            allowance = (self.burst - 1) * interval
            wait = max(0.0, tat - now - allowance)
            self._tat[host] = tat + interval
            return wait

    def acquire(self, host: str) -> float:
        """Wait until a request to ``host`` is allowed; return the seconds waited."""
        wait = self.reserve(host)
        if wait > 0:
            self._clock.sleep(wait)
        return wait

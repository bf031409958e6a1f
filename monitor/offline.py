"""A guard that makes network use from this process fail loudly (the victim's hashing is offline)."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from typing import Iterator


class NetworkForbidden(RuntimeError):
    """Raised when code tries to open a network connection while offline mode is on."""


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise NetworkForbidden("network access is disabled while hashing: nothing leaves this computer")


@contextmanager
def no_network() -> Iterator[None]:
    """Within this block any DNS lookup or socket connection raises NetworkForbidden."""
    saved = (socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo, socket.create_connection)
    socket.socket.connect = _refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = _refuse  # type: ignore[method-assign]
    socket.getaddrinfo = _refuse  # type: ignore[assignment]
    socket.create_connection = _refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo, socket.create_connection = saved  # type: ignore[method-assign]

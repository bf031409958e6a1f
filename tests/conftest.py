"""Shared fixtures. Database tests take `engine` (or `settings`, `database_url`) and so run twice:
on SQLite and on PostgreSQL at 127.0.0.1:5432.

PostgreSQL tests are skipped with the reason when the server is unreachable, except when the
`CI` environment variable is set: then they fail, so CI cannot pass without running them.
Each test gets its own throwaway database: a SQLite file in its tmp_path, or a schema of its
own in this session's PostgreSQL database ncii_test_<random>, which is dropped at the end.
"""

from __future__ import annotations

import itertools
import os
import secrets
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import pytest

PG_ADMIN_DSN = os.environ.get("NCII_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PG_URL_BASE = os.environ.get("NCII_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


# --- cheap secret hashing in tests ---------------------------------------------------------------

@pytest.fixture(autouse=True)
def _fast_secret_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at minimum cost, so creating cases in tests is fast (test_crypto checks the real one)."""
    from argon2 import PasswordHasher

    from monitor import crypto

    monkeypatch.setattr(crypto, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    monkeypatch.setattr(crypto, "_dummy_hash", None)


# --- PostgreSQL ----------------------------------------------------------------------------------

class _Postgres:
    """This session's throwaway database; each test gets its own schema in it.

    Schemas rather than databases per test: DROP DATABASE forces a checkpoint (seconds each),
    DROP SCHEMA does not.
    """

    def __init__(self) -> None:
        import psycopg

        self._admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
        self.database = f"ncii_test_{secrets.token_hex(4)}"
        self._admin.execute(f'CREATE DATABASE "{self.database}"')
        self._conn = psycopg.connect(PG_ADMIN_DSN.replace("dbname=postgres", f"dbname={self.database}"),
                                     autocommit=True, connect_timeout=3)
        self._counter = itertools.count(1)

    def create_schema(self) -> tuple[str, str]:
        """A new empty schema: (its name, a database URL whose search_path is that schema)."""
        name = f"t{next(self._counter)}"
        self._conn.execute(f'CREATE SCHEMA "{name}"')
        # synchronous_commit=off: throwaway data, so skip waiting for each commit's fsync.
        options = quote(f"-csearch_path={name} -csynchronous_commit=off")
        return name, f"{PG_URL_BASE}/{self.database}?options={options}"

    def drop_schema(self, name: str) -> None:
        self._conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')

    def close(self) -> None:
        self._conn.close()
        self._admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self._admin.close()


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required when CI is set: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available ({PG_ADMIN_DSN}): {reason}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[_Postgres]:
    """The session's PostgreSQL database; skips (or fails, with CI set) when the server is absent."""
    try:
        pg = _Postgres()
    except Exception as e:  # psycopg.OperationalError and friends: no server, refused, no auth
        _unavailable(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        raise  # not reached
    try:
        yield pg
    finally:
        pg.close()


# --- per-test databases --------------------------------------------------------------------------

@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """"sqlite" or "postgresql"."""
    return request.param


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """NCII_DATA_DIR for this test (the SQLite file and the key file go here)."""
    return tmp_path / "data"


@pytest.fixture
def empty_database_url(backend: str, data_dir: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a new, empty database (no tables); on PostgreSQL an empty schema of its own."""
    if backend == "sqlite":
        yield f"sqlite:///{data_dir / 'ncii.db'}"
        return
    pg: _Postgres = request.getfixturevalue("postgres")
    schema, url = pg.create_schema()
    yield url
    pg.drop_schema(schema)


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """URL of this test's database (empty: the application upgrades it when it opens it)."""
    return empty_database_url


@pytest.fixture
def env(database_url: str, data_dir: Path) -> dict[str, str]:
    """The environment variables that point the application at this test's database."""
    return {"NCII_DATA_DIR": str(data_dir), "NCII_DATABASE_URL": database_url, "NCII_ACTOR": "test:advocate"}


@pytest.fixture
def settings(env: dict[str, str]):
    """Settings for this test's database (key file created in data_dir on first use)."""
    from monitor.settings import Settings

    return Settings.load(env)


@pytest.fixture
def engine(settings):
    """An engine on this test's database, upgraded, with the data key attached."""
    from monitor import db

    eng = db.open_database(settings)
    yield eng
    eng.dispose()


# --- network guard for the monitor's tests (opt-in) -----------------------------------------------

def _is_loopback(address: object) -> bool:
    import ipaddress

    if isinstance(address, (str, bytes)):
        return True  # AF_UNIX path (multiprocessing's forkserver, database sockets)
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode()
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch):
    """Fail the test on any attempt to reach (or look up) anything but 127.0.0.0/8, ::1 or a local
    socket; the attempt raises before anything is sent. The same idea as tests/connectors/conftest.py,
    for tests outside that folder: `pytestmark = pytest.mark.usefixtures("loopback_only")`."""
    import socket

    attempts: list[str] = []

    class NetworkViolation(BaseException):  # not an Exception: no `except Exception` swallows it
        pass

    def guard(name, real, addr_of):
        def wrapper(*args, **kwargs):
            address = addr_of(*args, **kwargs)
            if not _is_loopback(address):
                attempts.append(f"{name} {address!r}")
                raise NetworkViolation(f"test tried to reach a non-loopback address: {name} {address!r}")
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(socket.socket, "connect", guard("connect", socket.socket.connect, lambda self, a: a))
    monkeypatch.setattr(socket.socket, "connect_ex", guard("connect_ex", socket.socket.connect_ex, lambda self, a: a))
    monkeypatch.setattr(socket, "create_connection",
                        guard("create_connection", socket.create_connection, lambda a, *_, **__: a))
    monkeypatch.setattr(socket, "getaddrinfo",
                        guard("getaddrinfo", socket.getaddrinfo, lambda h, *_, **__: (h,) if h is not None else ""))
    monkeypatch.setattr(socket, "gethostbyname", guard("gethostbyname", socket.gethostbyname, lambda h: (h,)))
    yield attempts
    assert not attempts, f"non-loopback network access attempted: {attempts}"


#: The same guard for a child process: put the folder holding this file (as sitecustomize.py) first
#: on the child's PYTHONPATH (see loopback_sitecustomize).
CHILD_NETWORK_GUARD = '''
import ipaddress, os, socket, sys
def _ok(a):
    if isinstance(a, (str, bytes)):
        return True
    if not isinstance(a, tuple) or not a:
        return False
    h = a[0].decode() if isinstance(a[0], bytes) else str(a[0])
    if h == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(h.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
def _wrap(name, real, addr):
    def w(*args, **kw):
        a = addr(*args, **kw)
        if not _ok(a):
            sys.stderr.write("NETWORK VIOLATION: %s %r\\n" % (name, a)); sys.stderr.flush()
            os._exit(99)
        return real(*args, **kw)
    return w
socket.socket.connect = _wrap("connect", socket.socket.connect, lambda s, a: a)
socket.socket.connect_ex = _wrap("connect_ex", socket.socket.connect_ex, lambda s, a: a)
socket.create_connection = _wrap("create_connection", socket.create_connection, lambda a, *x, **k: a)
socket.getaddrinfo = _wrap("getaddrinfo", socket.getaddrinfo, lambda h, *x, **k: (h,) if h is not None else "")
socket.gethostbyname = _wrap("gethostbyname", socket.gethostbyname, lambda h: (h,))
'''


@pytest.fixture
def loopback_sitecustomize(tmp_path: Path) -> Path:
    """A folder with a sitecustomize.py that makes a child Python process exit 99 (printing
    NETWORK VIOLATION) on any non-loopback connection or name lookup."""
    folder = tmp_path / "netguard"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(CHILD_NETWORK_GUARD)
    return folder

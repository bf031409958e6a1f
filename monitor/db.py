"""Database engines, sessions and schema upgrades (Alembic, configured in code: no alembic.ini).

SQLite: WAL (readers do not block the writer), foreign keys on, a busy timeout, synchronous=FULL
(nothing committed is lost on power failure), and write transactions that start with
BEGIN IMMEDIATE so a read-then-write never fails half way with "database is locked".
PostgreSQL: psycopg 3 (postgresql+psycopg://), pre-ping so a restarted server is reconnected.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from monitor import audit as _audit  # noqa: F401  registers the ORM guard that keeps audit_log append-only
from monitor import changes as _changes  # noqa: F401  registers after-commit delivery of hash changes
from monitor.crypto import attach_keyring
from monitor.settings import Settings, sqlite_path

SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10
#: Any fixed number: PostgreSQL advisory lock held while migrating, so two starting processes
#: do not both try to create the tables.
_MIGRATION_LOCK = 0x6E636969  # "ncii"
_WRITE = "ncii_write"


class DatabaseUnavailable(Exception):
    """The database cannot be reached or opened; the message names it (without password)."""


class SchemaTooNew(Exception):
    """The database was upgraded by a newer version of this program than the one running."""


def make_engine(url: str) -> Engine:
    """Create an engine with this project's connection settings (does not connect yet)."""
    path = sqlite_path(url)
    if path is not None:
        _prepare_sqlite_file(path)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    if url.startswith("sqlite"):
        raise DatabaseUnavailable("in-memory SQLite is not supported: each connection would see its own empty database")
    # Without a connect timeout an unreachable server would hang the CLI forever.
    connect_args = {} if "connect_timeout" in url else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _prepare_sqlite_file(path: Path) -> None:
    # Create the file (and folder) owner-only before SQLite does, because SQLite creates it with
    # the umask (often world-readable) and gives its -wal/-shm files the same permissions.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        # Take transaction control away from the sqlite3 module so BEGIN is ours (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def open_database(settings: Settings, *, upgrade_schema: bool = True, keys: bool = True) -> Engine:
    """Engine for the configured database, with the data keys attached and the schema upgraded.

    keys=False skips loading (or creating) the key file, for commands that touch no personal data.
    """
    try:
        engine = make_engine(settings.database_url)
    except OSError as e:  # cannot create the SQLite folder or file
        raise DatabaseUnavailable(f"cannot open database {settings.display_url}: {e.strerror}") from None
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (OperationalError, DBAPIError) as e:
        engine.dispose()
        raise DatabaseUnavailable(f"cannot open database {settings.display_url}: {_reason(e)}") from None
    if keys:
        try:
            attach_keyring(engine, settings.keyring())
        except Exception:
            engine.dispose()
            raise
    if upgrade_schema:
        upgrade(engine)
    return engine


def _reason(e: DBAPIError) -> str:
    text_ = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
    return text_[:300]


def session(engine: Engine, *, write: bool = False) -> Session:
    """A new Session; write=True serialises it with other writers from its first statement."""
    bind = engine.execution_options(**{_WRITE: True}) if write else engine
    return Session(bind=bind, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine, *, write: bool = True) -> Iterator[Session]:
    """A session in one transaction: committed if the block succeeds, rolled back if it raises."""
    s = session(engine, write=write)
    try:
        with s.begin():
            yield s
    finally:
        s.close()


# --- migrations ------------------------------------------------------------------------------------

def alembic_config() -> Config:
    """Alembic configuration pointing at the migrations shipped inside the package."""
    cfg = Config()
    cfg.set_main_option("script_location", "monitor:migrations")
    return cfg


def head_revision() -> str:
    """The newest schema revision this program knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Run the migrations up to `revision` in one transaction; returns (before, after)."""
    script = ScriptDirectory.from_config(alembic_config())
    with engine.execution_options(**{_WRITE: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        before = MigrationContext.configure(conn).get_current_revision()
        if before is not None and not _known(script, before):
            raise SchemaTooNew(
                f"the database is at schema revision {before!r}, which this version of ncii does not know "
                f"(newest known: {script.get_current_head()!r}): upgrade ncii before using this database")
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        after = MigrationContext.configure(conn).get_current_revision()
    return before, after

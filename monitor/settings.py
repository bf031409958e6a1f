"""Settings from the environment, with defaults that need no configuration (embedded SQLite).

| variable | meaning | default |
|---|---|---|
| NCII_DATA_DIR | folder for the SQLite database and the key file | platformdirs user data dir of "ncii-monitor" |
| NCII_DATABASE_URL | SQLAlchemy URL (sqlite:///..., postgresql://...) | sqlite:///<data dir>/ncii.db |
| NCII_SECRET_KEY | data key(s): base64 of 32 bytes, or "2:KEY,1:KEY" when rotating | read from the key file |
| NCII_KEY_FILE | where the key file is (created 0600 on first use) | ncii.key beside the SQLite file, else in the data dir |
| NCII_PDQ_MIN_QUALITY | PDQ hashes below this quality are not registered for matching | 50 |

Later issues add SMTP, webhook and connector settings here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import platformdirs
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

if TYPE_CHECKING:
    from monitor.crypto import KeyRing

APP_NAME = "ncii-monitor"
DB_FILE_NAME = "ncii.db"
KEY_FILE_NAME = "ncii.key"
#: Meta's PDQ documentation and HMA treat quality below 50 as too featureless to match on.
DEFAULT_PDQ_MIN_QUALITY = 50


class SettingsError(Exception):
    """The configuration is unusable; the message says which setting and how to fix it."""


@dataclass(frozen=True)
class Settings:
    """Everything configurable, resolved once at start-up."""

    data_dir: Path
    database_url: str = field(repr=False)  # may hold a password; use display_url
    key_file: Path
    secret_key: str | None = field(default=None, repr=False)
    pdq_min_quality: int = DEFAULT_PDQ_MIN_QUALITY

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read settings from `environ` (default os.environ); creates nothing on disk."""
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("NCII_DATA_DIR") or platformdirs.user_data_dir(APP_NAME)).expanduser()
        url = normalize_database_url(env.get("NCII_DATABASE_URL") or f"sqlite:///{data_dir / DB_FILE_NAME}")
        sqlite_file = sqlite_path(url)
        default_key_dir = sqlite_file.parent if sqlite_file is not None else data_dir
        key_file = Path(env.get("NCII_KEY_FILE") or default_key_dir / KEY_FILE_NAME).expanduser()
        return cls(
            data_dir=data_dir,
            database_url=url,
            key_file=key_file,
            secret_key=env.get("NCII_SECRET_KEY") or None,
            pdq_min_quality=_quality(env.get("NCII_PDQ_MIN_QUALITY")),
        )

    @property
    def display_url(self) -> str:
        """The database URL with any password masked, for messages and logs."""
        return make_url(self.database_url).render_as_string(hide_password=True)

    def keyring(self) -> "KeyRing":
        """The data keys: from NCII_SECRET_KEY, else the key file (created on first use)."""
        from monitor import keyfile  # late: keyfile imports SettingsError from here

        if self.secret_key is not None:
            return keyfile.keyring_from_text(self.secret_key, "NCII_SECRET_KEY")
        return keyfile.load_or_create(self.key_file)


def normalize_database_url(url: str) -> str:
    """Check the URL parses and pick psycopg 3 for PostgreSQL (SQLAlchemy would pick psycopg2)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SettingsError("NCII_DATABASE_URL is not a database URL (e.g. sqlite:///path/ncii.db, "
                            "postgresql://user@host/dbname)") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise SettingsError(f"NCII_DATABASE_URL: unsupported database {parsed.get_backend_name()!r} "
                            "(use SQLite or PostgreSQL)")
    return parsed.render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or None for in-memory SQLite and other databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def _quality(text: str | None) -> int:
    if text is None or text.strip() == "":
        return DEFAULT_PDQ_MIN_QUALITY
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 100:
        raise SettingsError(f"NCII_PDQ_MIN_QUALITY must be a whole number from 0 to 100, got {text!r}")
    return value

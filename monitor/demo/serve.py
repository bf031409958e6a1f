"""The demo behind `ncii serve` when nothing is configured: the scripted demo's data, its loopback
site kept up (so previews can be fetched), and two demo accounts with random passwords.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from sqlalchemy import func, select

from monitor import accounts, casework, db
from monitor.demo.run import run_demo
from monitor.demo.site import LoopbackSite
from monitor.models import Case, Match, ReviewStatus, Source, User
from monitor.settings import DB_FILE_NAME, Settings

DEMO_ADMIN = "demo-admin"
DEMO_ADVOCATE = "demo-advocate"


@dataclass
class DemoServe:
    """What `ncii serve` needs to serve the demo: its settings, the running site, the accounts."""

    settings: Settings
    site: LoopbackSite
    case_reference: str
    case_secret: str | None
    passwords: dict[str, str]
    pending: int  # matches awaiting review


def wants_demo(settings: Settings, env: Mapping[str, str] | None = None) -> bool:
    """True on the embedded default with nothing set up: no NCII_DATABASE_URL, and the default
    database (if any) has no staff account, no case and no source yet."""
    env = os.environ if env is None else env
    if (env.get("NCII_DATABASE_URL") or "").strip():
        return False
    path = settings.data_dir / DB_FILE_NAME
    if not path.exists():
        return True
    engine = db.open_database(settings)
    try:
        with db.session(engine) as s:
            used = [s.scalar(select(func.count()).select_from(t)) for t in (User, Case, Source)]
        return not any(used)
    finally:
        engine.dispose()


def demo_settings(base: Path) -> Settings:
    """The settings the scripted demo uses for its own database (loopback fetching allowed)."""
    configured = Settings.load()
    data_dir = base / "data"
    return dataclasses.replace(
        configured, data_dir=data_dir, database_url=f"sqlite:///{data_dir / DB_FILE_NAME}",
        key_file=data_dir / "ncii.key", secret_key=None,
        monitor=dataclasses.replace(configured.monitor, allow_loopback=True, http_min_interval=0.0, concurrency=2))


def prepare(base: Path, say: Callable[[str], None] = lambda _m: None) -> DemoServe:
    """Run the scripted demo into `base` (fresh each time, the site kept up) and add demo accounts."""
    site = LoopbackSite()
    try:
        result = run_demo(base, say=say, site=site)
        settings = demo_settings(base)
        engine = db.open_database(settings)
        passwords = {DEMO_ADMIN: accounts.new_password(), DEMO_ADVOCATE: accounts.new_password()}
        try:
            with db.transaction(engine) as s:
                accounts.create_user(s, DEMO_ADMIN, "admin", passwords[DEMO_ADMIN], actor="demo")
                accounts.create_user(s, DEMO_ADVOCATE, "advocate", passwords[DEMO_ADVOCATE], actor="demo")
                case = s.scalar(select(Case).where(Case.reference == result.case_reference))
                casework.assign(s, case, DEMO_ADVOCATE, actor="demo")
                pending = s.scalar(select(func.count()).select_from(Match).where(
                    Match.case_id == case.id, Match.review_status == ReviewStatus.PENDING.value))
        finally:
            engine.dispose()
    except BaseException:
        site.close()
        raise
    return DemoServe(settings=settings, site=site, case_reference=result.case_reference,
                     case_secret=result.case_secret or None, passwords=passwords,
                     pending=pending)

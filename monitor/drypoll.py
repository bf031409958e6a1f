"""A source polled once without recording anything: what the monitor would fetch next, or why it
cannot (`ncii source test` and the web app's "test" button share it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.engine import Engine

from connectors.base import Candidate
from connectors.errors import ConnectorError
from monitor import db, sources
from monitor.models import SourceCandidate
from monitor.pipeline import http_client, key_digest
from monitor.settings import MonitorSettings


@dataclass
class DryPoll:
    """What one dry poll listed; `error` is set when the source failed part-way (what came before stays)."""

    pages: int = 0
    listed: int = 0
    new: list[Candidate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: ConnectorError | None = None


def dry_poll(engine: Engine, name: str, monitor: MonitorSettings, *, max_items: int,
             max_pages: int | None = None) -> DryPoll:
    """Poll source `name` from its stored cursor through the real client; fetch no pictures, write nothing.

    Raises what `sources.get_source` / `sources.connector_settings` raise for an unknown source or
    invalid stored settings; a failure of the source itself is returned in `error`.
    """
    with db.session(engine) as s:
        source = sources.get_source(s, name)
        connector, conn_settings = sources.connector_settings(s, source)
        cursor, source_id = source.cursor, source.id
    result = DryPoll()
    http = http_client(monitor)
    try:
        for page in connector.poll(conn_settings, cursor, http):
            result.pages += 1
            result.notes.extend(str(n) for n in page.notes)
            result.listed += len(page.candidates)
            digests = {key_digest(c.key): c for c in page.candidates}
            with db.session(engine) as s:
                seen = set(s.scalars(select(SourceCandidate.key_sha256).where(
                    SourceCandidate.source_id == source_id,
                    SourceCandidate.key_sha256.in_(list(digests)[:10000]))))
            result.new.extend(c for d, c in digests.items() if d not in seen)
            if result.listed >= max_items or (max_pages is not None and result.pages >= max_pages):
                result.notes.append(f"stopped after {result.pages} page(s) / {result.listed} item(s)")
                break
    except ConnectorError as e:
        result.error = e
    finally:
        http.close()
    return result

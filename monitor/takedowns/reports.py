"""Takedown figures per platform and notice type: how many, how fast, how many within the deadline.

Time to removal = removed_at - sent_at of a first notice or re-upload follow-up (escalation steps
are counted with the notice they escalate). Median and 90th percentile use the nearest-rank
method on the removed notices; the share within the deadline is over the notices whose deadline
has passed or that were removed. Open = sent and not yet removed (or refused/expired but still
online); overdue = open past the deadline.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.models import NoticeKind, NoticeState, TakedownNotice, utcnow

COLUMNS = ("platform", "notice_type", "notices", "sent", "removed", "median_hours", "p90_hours",
           "within_deadline_share", "open", "overdue")


@dataclass
class Row:
    """One platform and notice type."""

    platform: str
    notice_type: str
    notices: int = 0
    sent: int = 0
    removed: int = 0
    median_hours: float | None = None
    p90_hours: float | None = None
    within_deadline_share: float | None = None
    open: int = 0
    overdue: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def takedown_report(session: Session, *, now: dt.datetime | None = None,
                    case_ids: Iterable[int] | None = None) -> list[Row]:
    """The report rows, sorted by platform and notice type (only the given cases' notices when given)."""
    now = now or utcnow()
    q = select(TakedownNotice).where(TakedownNotice.kind.in_([NoticeKind.NOTICE.value, NoticeKind.REUPLOAD.value]))
    if case_ids is not None:
        q = q.where(TakedownNotice.case_id.in_(list(case_ids)))
    notices = session.scalars(q).all()
    groups: dict[tuple[str, str], list[TakedownNotice]] = {}
    for n in notices:
        groups.setdefault((n.platform, n.notice_type), []).append(n)
    rows = []
    for (platform, ntype), items in sorted(groups.items()):
        row = Row(platform=platform, notice_type=ntype, notices=len(items))
        hours: list[float] = []
        due = within = 0
        for n in items:
            if n.sent_at is None:
                continue
            row.sent += 1
            if n.state == NoticeState.REMOVED.value and n.removed_at is not None:
                row.removed += 1
                hours.append((n.removed_at - n.sent_at).total_seconds() / 3600)
            else:
                row.open += 1
                if n.deadline_at is not None and n.deadline_at < now:
                    row.overdue += 1
            if n.deadline_at is not None and (n.deadline_at < now or n.removed_at is not None):
                due += 1
                if n.removed_at is not None and n.removed_at <= n.deadline_at:
                    within += 1
        row.median_hours = _round(percentile(hours, 50))
        row.p90_hours = _round(percentile(hours, 90))
        row.within_deadline_share = round(within / due, 3) if due else None
        rows.append(row)
    return rows


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def to_csv(rows: list[Row]) -> str:
    """The rows as CSV with a header line, safe to open in a spreadsheet."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    for r in rows:
        d = r.to_dict()
        w.writerow([_spreadsheet_cell(d[c]) for c in COLUMNS])
    return buf.getvalue()


def _spreadsheet_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (= + - @, tab, CR) gets a leading ' (OWASP's
    advice on CSV injection); numbers stay numbers, None becomes an empty cell."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value

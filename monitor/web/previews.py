"""Previews of matched media, fetched on demand and never stored.

The server fetches the picture through the connectors' safe HTTP client (SSRF guard, size caps),
decodes it with the project's safe decoder, and returns a small re-encoded JPEG: blurred and
downscaled unless the user has deliberately revealed it (an audited POST; valid a few minutes).
So unblurred bytes never reach a browser before the reveal. A case flagged as involving a minor
never has a preview fetched or shown. Local-scan media (file:// URLs) are read from disk only for
admins, and only if the file is still there.
"""

from __future__ import annotations

import datetime as dt
import io
from urllib.parse import unquote, urlsplit

from PIL import Image, ImageFilter
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.errors import ConnectorError
from hashes.decode import decode_image, read_image_file
from hashes.errors import HashingError
from monitor import audit
from monitor.models import Media, MediaSighting, PreviewReveal, Role, User, utcnow

REVEAL_FOR = dt.timedelta(minutes=5)
BLURRED_SIDE = 240
REVEALED_SIDE = 1024
MAX_PREVIEW_BYTES = 25 * 1024 * 1024
MINOR_NOTICE = ("This case involves a minor: no preview is ever fetched or shown. Report the material to NCMEC "
                "(CyberTipline) or the IWF as docs/web.md describes; the monitor stores no media.")


class PreviewUnavailable(Exception):
    """No preview can be shown; the message says why (safe to show)."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


def reveal(session: Session, user: User, match_id: int, case_id: int, actor: str) -> PreviewReveal:
    """Record a deliberate reveal of a match's preview by `user` (audited); valid for REVEAL_FOR."""
    now = utcnow()
    row = PreviewReveal(user_id=user.id, match_id=match_id, revealed_at=now, expires_at=now + REVEAL_FOR)
    session.add(row)
    session.flush()
    audit.append(session, "match.preview_revealed", actor, case_id, {"match_id": match_id})
    return row


def is_revealed(session: Session, user: User, match_id: int) -> bool:
    """True while `user`'s reveal of this match's preview lasts."""
    return session.scalar(select(PreviewReveal.id).where(PreviewReveal.user_id == user.id,
                                                         PreviewReveal.match_id == match_id,
                                                         PreviewReveal.expires_at > utcnow()).limit(1)) is not None


def media_urls(session: Session, media_id: int) -> list[str]:
    """Where the media can be fetched: its first URL, then other places it was seen (not gone)."""
    media = session.get(Media, media_id)
    urls = [media.url] if media is not None and media.url else []
    urls += [u for u in session.scalars(select(MediaSighting.url).where(MediaSighting.media_id == media_id,
                                                                         MediaSighting.gone_at.is_(None))
                                        .order_by(MediaSighting.id).limit(5)) if u not in urls]
    return urls


def fetch_bytes(urls: list[str], user: User, http) -> bytes:  # noqa: ANN001
    """The picture's bytes from the first URL that works; PreviewUnavailable otherwise."""
    problems = []
    for url in urls:
        if url.startswith("file://"):
            if user.role != Role.ADMIN:
                problems.append("local-scan media are shown to admins only")
                continue
            try:
                return read_image_file(unquote(urlsplit(url).path))
            except HashingError as e:
                problems.append(f"the scanned file is no longer readable ({e.problem})")
                continue
        if http is None:
            problems.append("fetching is not available in this process")
            continue
        try:
            return http.get(url, expect="image", max_bytes=MAX_PREVIEW_BYTES).content
        except ConnectorError as e:
            problems.append(f"{getattr(e, 'code', 'fetch-error')}: the picture could not be fetched")
    raise PreviewUnavailable("no preview: " + ("; ".join(dict.fromkeys(problems)) or "no address is known"))


def render_preview(data: bytes, *, revealed: bool) -> bytes:
    """A JPEG of the picture: heavily blurred and small, or (revealed) plain and downscaled."""
    try:
        decoded = decode_image(data, source="preview")
    except HashingError as e:
        raise PreviewUnavailable(f"no preview: the fetched file is not a usable picture ({e.code})") from None
    im = Image.fromarray(decoded.rgb)
    side = REVEALED_SIDE if revealed else BLURRED_SIDE
    im.thumbnail((side, side))
    if not revealed:
        # Pixelate, then blur: nothing recognisable survives, the layout still shows.
        w, h = im.size
        im = im.resize((max(1, w // 16), max(1, h // 16)), Image.BILINEAR).resize((w, h), Image.BILINEAR)
        im = im.filter(ImageFilter.GaussianBlur(radius=max(4, side // 30)))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=80)
    return out.getvalue()

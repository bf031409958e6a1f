"""Lemmy communities, through the HTTP API v3.

Docs: https://join-lemmy.org/docs/contributors/04-api.html (the API, rate limits),
https://join-lemmy.org/api/ (``GET /api/v3/post/list`` with ``community_name``, ``sort=New``,
``page``/``page_cursor``; ``PostView.post`` with ``url``, ``thumbnail_url``, ``url_content_type``,
``published``, ``deleted``, ``removed``, ``nsfw``).

A source is a community: ``https://HOST/c/NAME`` (``/c/NAME@other.host`` for a federated one as
seen from HOST). New posts are listed newest first; each poll reads back to the newest post it
handled (mark: ``published`` and post id) and hands the run out oldest first.
Cursor ``{"new": mark}``. Pictures: the post URL when it is an image, and its thumbnail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator
from urllib.parse import unquote, urlsplit

from .base import Candidate, Cursor, MediaType, Page, SourceSettings
from .errors import SourceSettingsError
from .http import HttpClient
from .platform import (Api, Mark, PlatformConnector, PlatformSettings, epoch, http_url, id_of,
                       mapping, mark_from, parse_time, require_list, run_pages, text_of, walk_back)

_COMMUNITY = re.compile(r"^[A-Za-z0-9_]{1,100}(@[A-Za-z0-9.-]{1,253}(:\d{1,5})?)?$")
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".avif", ".heic")
_VIDEO_EXT = (".mp4", ".webm", ".mov", ".m4v")


@dataclass(frozen=True)
class LemmySettings(PlatformSettings):
    community: str = ""
    access_token: str = field(default="", repr=False)
    include_thumbnails: bool = True
    include_video: bool = True
    limit: int = 50

    kind: ClassVar[str] = "lemmy"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"access_token"})
    primary_secret: ClassVar[str] = "access_token"
    HELP = {
        **PlatformSettings.HELP,
        "community": "the community, NAME or NAME@host (read from https://HOST/c/NAME)",
        "access_token": "a login JWT for instances that require sign-in (secret)",
        "include_thumbnails": "also take the thumbnail Lemmy made of a linked page or picture",
        "include_video": "record video links as video candidates",
        "api_base": "the API root (default https://HOST/api/v3 from the URL)",
        "limit": "posts per API page (at most 50)",
    }

    def validate(self) -> None:
        super().validate()
        self.require_http_url()
        if not _COMMUNITY.match(self.community):
            raise self.problem("community", f"not a community name: {self.community!r} (use "
                                            "https://HOST/c/NAME)")
        if not 1 <= self.limit <= 50:
            raise self.problem("limit", "must be between 1 and 50")
        if self.use_watch_terms:
            raise self.problem("use_watch_terms", "not supported for Lemmy communities yet")

    @property
    def base(self) -> str:
        if self.api_base:
            return self.api_base.rstrip("/")
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/api/v3"


def parse_community_url(url: str) -> str:
    parts = urlsplit(url.strip())
    segs = [unquote(s) for s in parts.path.split("/") if s]
    if parts.scheme in ("http", "https") and len(segs) >= 2 and segs[0] in ("c", "m"):
        return segs[1].lstrip("!")
    raise ValueError(f"use https://HOST/c/NAME (got {url!r})")


class LemmyConnector(PlatformConnector):
    kind = "lemmy"
    title = "Lemmy communities (new posts) through the API v3"
    settings_class = LemmySettings

    def settings_from_url(self, url: str, **options: Any) -> SourceSettings:
        data: dict[str, Any] = {"url": url.strip(), **options}
        if "community" not in options:
            try:
                data["community"] = parse_community_url(url)
            except ValueError as exc:
                raise SourceSettingsError("url", str(exc), self.kind) from None
        return self.settings_from_dict(data)

    def url_score(self, url: str) -> int:
        try:
            parse_community_url(url)
            path = urlsplit(url).path
        except ValueError:
            return 0
        return 50 if path.startswith("/c/") else 0

    def poll(self, settings: SourceSettings, cursor: Cursor | None,
             http: HttpClient) -> Iterator[Page]:
        self.check_settings(settings)
        assert isinstance(settings, LemmySettings)
        s = settings
        state: dict[str, Any] = dict(cursor or {})
        headers = {"Authorization": f"Bearer {s.access_token}"} if s.access_token else {}
        host = urlsplit(s.base).hostname or s.base
        api = Api(http, s, what=f"Lemmy instance {host}", headers=headers,
                  auth_hint=": add a token with `ncii source credentials`")
        url = f"{s.base}/post/list"

        def fetch(token: str | None) -> tuple[list[tuple[Mark, Any]], str | None]:
            params: dict[str, Any] = {"community_name": s.community, "sort": "New",
                                      "limit": s.limit, "type_": "All"}
            page = 1
            if token and token.startswith("cursor:"):
                params["page_cursor"] = token[7:]
            elif token and token.startswith("page:"):
                page = int(token[5:])
                params["page"] = page
            data, _ = api.get(url, params)
            out = []
            for view in require_list(data, "posts", url):
                post = mapping(mapping(view).get("post"))
                pid = id_of(post.get("id"))
                when = epoch(post.get("published"))
                if pid is not None and when is not None:
                    out.append(((when, pid.rjust(12, "0")), post))
            nxt = text_of(mapping(data).get("next_page"))
            if nxt:
                return out, f"cursor:{nxt}"
            return out, (f"page:{page + 1}" if len(out) >= s.limit else None)

        mark = mark_from(state.get("new"))
        run = walk_back(fetch, mark, s.first_pages if mark is None else s.max_pages)
        notes: list[str] = []
        if not run.reached:
            notes.append(f"more new posts than {s.max_pages} pages: older ones were skipped")
        origin = urlsplit(s.url)
        yield from run_pages(run, lambda post: self._candidates(
            s, post, host, f"{origin.scheme}://{origin.netloc}"), s.page_size, state, "new", notes)

    def _candidates(self, s: LemmySettings, post: Any, host: str,
                    origin: str) -> list[Candidate]:
        post = mapping(post)
        if post.get("deleted") or post.get("removed"):
            return []
        pid = id_of(post.get("id")) or ""
        page_url = http_url(post.get("ap_id")) or f"{origin}/post/{pid}"
        posted = parse_time(post.get("published"))
        extra = {"post_id": pid, "nsfw": bool(post.get("nsfw"))}
        out: list[Candidate] = []
        url = http_url(post.get("url"))
        declared = str(post.get("url_content_type") or "").lower()
        if url:
            path = urlsplit(url).path.lower()
            if declared.startswith("image/") or path.endswith(_IMAGE_EXT):
                out.append(Candidate(url, page_url, self.kind, posted, media_type=MediaType.IMAGE,
                                     key=f"lemmy:{host}:post:{pid}:url", extra=extra))
            elif s.include_video and (declared.startswith("video/") or path.endswith(_VIDEO_EXT)):
                out.append(Candidate(url, page_url, self.kind, posted, media_type=MediaType.VIDEO,
                                     key=f"lemmy:{host}:post:{pid}:url", extra=extra))
        thumb = http_url(post.get("thumbnail_url"))
        if s.include_thumbnails and thumb and thumb != url:
            out.append(Candidate(thumb, page_url, self.kind, posted, media_type=MediaType.IMAGE,
                                 key=f"lemmy:{host}:post:{pid}:thumb", extra=extra))
        return out

"""Bluesky / AT Protocol, through XRPC on the public AppView (and a PDS for signed-in calls).

Docs: https://docs.bsky.app/docs/api/app-bsky-feed-get-author-feed (``filter=posts_with_media``,
no sign-in), https://docs.bsky.app/docs/api/app-bsky-feed-search-posts (search: the public
AppView refuses it without a session since 2025, so search sources need an app password),
https://docs.bsky.app/docs/api/com-atproto-server-create-session and -refresh-session,
https://docs.bsky.app/docs/advanced-guides/rate-limits (RateLimit-* headers),
https://atproto.com/specs/xrpc, and the embed lexicons app.bsky.embed.images /
app.bsky.embed.recordWithMedia / app.bsky.embed.video.

Two kinds of source: an account (``https://bsky.app/profile/HANDLE``: its posts with media) and a
search (``--search TERM`` and/or the watch terms of active cases). Both lists are newest first
with an opaque backwards ``cursor``, so each poll reads back to the newest post it handled before
(the mark: ``indexedAt`` and ``uri``) and hands the run out oldest first (connectors.platform).
Cursor: ``{"author": mark}`` or ``{"q": mark, "t<term id>": mark, ...}``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .base import Candidate, Cursor, MediaType, Page, SourceSettings
from .errors import AuthRequired, HttpStatus, SourceFormatError, SourceSettingsError
from .http import HttpClient
from .platform import (Api, Mark, PlatformConnector, PlatformSettings, TokenCache, epoch, http_url,
                       id_of, items, mapping, mark_from, parse_time, require_list, run_pages,
                       text_of, walk_back)

PUBLIC_APPVIEW = "https://public.api.bsky.app"
DEFAULT_PDS = "https://bsky.social"
_HANDLE = re.compile(r"^(did:[a-z]+:[A-Za-z0-9._:%-]{1,200}|[A-Za-z0-9][A-Za-z0-9.-]{0,252})$")
_SESSIONS = TokenCache()
SESSION_SECONDS = 90 * 60  # access JWTs live about two hours; renew well before


@dataclass(frozen=True)
class BlueskySettings(PlatformSettings):
    mode: str = ""
    actor: str = ""
    query: str = field(default="", repr=False)
    identifier: str = ""
    app_password: str = field(default="", repr=False)
    pds_base: str = ""
    include_video: bool = True
    limit: int = 50

    kind: ClassVar[str] = "bluesky"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"app_password", "query"})
    primary_secret: ClassVar[str] = "app_password"
    HELP = {
        **PlatformSettings.HELP,
        "mode": "author (an account's posts with media) or search (read from the URL/--search)",
        "actor": "the account's handle or DID (read from https://bsky.app/profile/HANDLE)",
        "query": "a search query (kept encrypted like a credential; --search TERM)",
        "identifier": "the handle or e-mail of the account whose app password signs in "
                      "(needed for search)",
        "app_password": "an app password (Settings > Privacy and security > App passwords), "
                        "secret: --token-file/--token-env/--ask-token",
        "pds_base": f"the server that signs in and answers signed-in calls (default {DEFAULT_PDS})",
        "api_base": f"the AppView for public calls (default {PUBLIC_APPVIEW})",
        "include_video": "record video embeds as video candidates",
        "limit": "posts per API page (at most 100)",
    }

    def validate(self) -> None:
        super().validate()
        if self.mode not in ("author", "search"):
            raise self.problem("mode", "must be author (https://bsky.app/profile/HANDLE) or "
                                       "search (--search TERM or --watch-terms)")
        if self.mode == "author" and not _HANDLE.match(self.actor):
            raise self.problem("actor", f"not a handle or DID: {self.actor!r}")
        if self.mode == "search" and not (self.query.strip() or self.use_watch_terms):
            raise self.problem("query", "a search source needs --search TERM or --watch-terms")
        if self.pds_base:
            self.require_http_url("pds_base", "PDS URL")
        if not 1 <= self.limit <= 100:
            raise self.problem("limit", "must be between 1 and 100")

    @property
    def appview(self) -> str:
        return (self.api_base or PUBLIC_APPVIEW).rstrip("/")

    @property
    def pds(self) -> str:
        return (self.pds_base or DEFAULT_PDS).rstrip("/")


def parse_profile_url(url: str) -> str:
    """The handle or DID of a ``https://bsky.app/profile/HANDLE`` URL; ValueError otherwise."""
    parts = urlsplit(url.strip())
    segs = [unquote(s) for s in parts.path.split("/") if s]
    if parts.scheme in ("http", "https") and len(segs) >= 2 and segs[0] == "profile":
        return segs[1].lstrip("@")
    raise ValueError(f"use https://bsky.app/profile/HANDLE or --search TERM (got {url!r})")


class BlueskyConnector(PlatformConnector):
    kind = "bluesky"
    title = "Bluesky / AT Protocol (an account's posts with media, or a search)"
    settings_class = BlueskySettings

    def settings_from_url(self, url: str, **options: Any) -> SourceSettings:
        data: dict[str, Any] = {"url": (url or "").strip() or "https://bsky.app/search", **options}
        if "mode" not in options:
            if data.get("query") or str(data.get("use_watch_terms", "")).lower() in ("1", "true",
                                                                                    "yes", "on"):
                data["mode"] = "search"
            else:
                try:
                    data["actor"] = parse_profile_url(data["url"])
                except ValueError as exc:
                    q = parse_qs(urlsplit(data["url"]).query).get("q")
                    if not q:
                        raise SourceSettingsError("url", str(exc), self.kind) from None
                    data["query"] = q[0]
                    data["url"] = "https://bsky.app/search"  # the query is kept encrypted
                    data["mode"] = "search"
                else:
                    data["mode"] = "author"
        return self.settings_from_dict(data)

    def url_score(self, url: str) -> int:
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            return 0
        return 90 if host in ("bsky.app", "www.bsky.app") else 0

    def poll(self, settings: SourceSettings, cursor: Cursor | None,
             http: HttpClient) -> Iterator[Page]:
        self.check_settings(settings)
        assert isinstance(settings, BlueskySettings)
        s = settings
        state: dict[str, Any] = dict(cursor or {})
        api = Api(http, s, what="Bluesky", auth_hint=": add an app password with "
                                                      "`ncii source credentials`")
        if s.mode == "author":
            yield from self._author(api, s, state)
            return
        searches = s.searches(s.query)
        if not searches:
            yield Page((), state, ("no watch terms of active cases to search for",))
            return
        session = _Session(api, s)
        keep = {key for key, _, _ in searches}
        for key in [k for k in state if k not in keep]:
            del state[key]  # a removed term's mark: forget it
        for key, term, case_id in searches:
            last = None
            for page in self._search(api, s, session, state, key, term, case_id):
                last = page
                yield page
            if last is not None:
                state = dict(last.cursor)

    # -- the two listings ---------------------------------------------------------------------

    def _author(self, api: Api, s: BlueskySettings, state: dict[str, Any]) -> Iterator[Page]:
        url = f"{s.appview}/xrpc/app.bsky.feed.getAuthorFeed"

        def fetch(token: str | None) -> tuple[list[tuple[Mark, Any]], str | None]:
            data, _ = api.get(url, {"actor": s.actor, "filter": "posts_with_media",
                                    "limit": s.limit, "cursor": token})
            out = []
            for item in require_list(data, "feed", url):
                item = mapping(item)
                post = mapping(item.get("post"))
                reason = mapping(item.get("reason"))
                m = _mark(post, reason.get("indexedAt"))
                if m is not None:
                    out.append((m, (post, None)))
            return out, text_of(mapping(data).get("cursor"))

        yield from self._run(s, state, "author", fetch)

    def _search(self, api: Api, s: BlueskySettings, session: "_Session", state: dict[str, Any],
                key: str, term: str, case_id: int | None) -> Iterator[Page]:
        url = f"{s.pds}/xrpc/app.bsky.feed.searchPosts"

        def fetch(token: str | None) -> tuple[list[tuple[Mark, Any]], str | None]:
            data = session.get(url, {"q": term, "sort": "latest", "limit": s.limit,
                                     "cursor": token})
            out = []
            for post in require_list(data, "posts", url):
                post = mapping(post)
                m = _mark(post)
                if m is not None:
                    out.append((m, (post, case_id)))
            return out, text_of(mapping(data).get("cursor"))

        yield from self._run(s, state, key, fetch)

    def _run(self, s: BlueskySettings, state: dict[str, Any], key: str, fetch) -> Iterator[Page]:
        mark = mark_from(state.get(key))
        run = walk_back(fetch, mark, s.first_pages if mark is None else s.max_pages)
        notes: list[str] = []
        if not run.reached:
            notes.append(f"more new posts than {s.max_pages} pages: older ones were skipped")
        yield from run_pages(run, lambda item: self._candidates(s, *item), s.page_size, state,
                             key, notes)

    # -- posts --------------------------------------------------------------------------------

    def _candidates(self, s: BlueskySettings, post: Any, case_id: int | None) -> list[Candidate]:
        post = mapping(post)
        uri = text_of(post.get("uri"))
        if not uri:
            return []
        author = mapping(post.get("author"))
        did = id_of(author.get("did")) or id_of(author.get("handle")) or ""
        rkey = uri.rsplit("/", 1)[-1]
        page_url = f"https://bsky.app/profile/{quote(did, safe=':')}/post/{quote(rkey, safe='')}"
        posted = parse_time(mapping(post.get("record")).get("createdAt")) or parse_time(
            post.get("indexedAt"))
        extra: dict[str, Any] = {"uri": uri}
        if case_id is not None:
            extra["case_id"] = case_id
        out = []
        for i, (url, media_type) in enumerate(embed_media(post.get("embed"), s.include_video)):
            out.append(Candidate(media_url=url, page_url=page_url, source_kind=self.kind,
                                 posted_at=posted, media_type=media_type,
                                 key=f"bluesky:{uri}#{i}", extra=extra))
        return out


def embed_media(embed: Any, include_video: bool = True) -> list[tuple[str, MediaType]]:
    """(URL, type) of the pictures (full size) and videos of a post's embed view."""
    embed = mapping(embed)
    kind = str(embed.get("$type") or "")
    if kind.startswith("app.bsky.embed.recordWithMedia"):
        return embed_media(embed.get("media"), include_video)
    if kind.startswith("app.bsky.embed.images"):
        out = []
        for image in items(embed.get("images")):
            image = mapping(image)
            url = http_url(image.get("fullsize")) or http_url(image.get("thumb"))
            if url:
                out.append((url, MediaType.IMAGE))
        return out
    if kind.startswith("app.bsky.embed.video") and include_video:
        url = http_url(embed.get("playlist"))
        return [(url, MediaType.VIDEO)] if url else []
    return []


def _mark(post: Any, indexed: Any = None) -> Mark | None:
    post = mapping(post)
    uri = text_of(post.get("uri"))
    when = epoch(indexed) if indexed is not None else None
    if when is None:
        when = epoch(post.get("indexedAt"))
    if not uri or when is None:
        return None  # a deleted or blocked post (#notFoundPost, #blockedPost): nothing to take
    return when, uri


class _Session:
    """An app-password session for one poll: created on first use (cached in memory for the
    process), refreshed or re-created once when the server says the token expired."""

    def __init__(self, api: Api, s: BlueskySettings) -> None:
        self.api = api
        self.s = s
        self.key = (s.pds, s.identifier)

    def get(self, url: str, params: dict[str, Any]) -> Any:
        token = self._token()
        try:
            data, _ = self.api.get(url, params, headers={"Authorization": f"Bearer {token}"})
            return data
        except (AuthRequired, HttpStatus) as exc:
            if isinstance(exc, HttpStatus) and exc.status != 400:
                raise
            # ExpiredToken comes back as 400 (XRPC) or 401: renew once, then give up.
            refresh = (_SESSIONS.get(self.key) or {}).get("refresh")
            _SESSIONS.drop(self.key)
            token = self._token(refresh_from=token, refresh=refresh)
            data, _ = self.api.get(url, params, headers={"Authorization": f"Bearer {token}"})
            return data

    def _token(self, refresh_from: str | None = None, refresh: str | None = None) -> str:
        cached = _SESSIONS.get(self.key)
        if cached and cached.get("access") != refresh_from:
            return cached["access"]
        if not (self.s.identifier and self.s.app_password):
            raise AuthRequired(f"{self.s.pds}/xrpc/app.bsky.feed.searchPosts",
                               "Bluesky search needs a session: set identifier and add an app "
                               "password with `ncii source credentials`")
        data = None
        if refresh_from is not None and refresh:
            try:
                data, _ = self.api.post(f"{self.s.pds}/xrpc/com.atproto.server.refreshSession",
                                        json_body={}, headers={"Authorization": f"Bearer {refresh}"})
            except (AuthRequired, HttpStatus):
                data = None
        if data is None:
            try:
                data, _ = self.api.post(f"{self.s.pds}/xrpc/com.atproto.server.createSession",
                                        json_body={"identifier": self.s.identifier,
                                                   "password": self.s.app_password})
            except HttpStatus as exc:
                if exc.status in (400, 401):
                    raise AuthRequired(exc.url, f"HTTP {exc.status}: Bluesky refused the app "
                                                "password; renew it with `ncii source "
                                                "credentials`") from None
                raise
        access = text_of(mapping(data).get("accessJwt"), 10000)
        if not access:
            raise SourceFormatError(f"{self.s.pds}/xrpc/com.atproto.server.createSession",
                                    "no accessJwt in the session response")
        token = {"access": access, "refresh": text_of(mapping(data).get("refreshJwt"), 10000)}
        _SESSIONS.put(self.key, token, time.time() + SESSION_SECONDS)
        return access

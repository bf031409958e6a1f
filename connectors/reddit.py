"""Reddit, through the Data API with OAuth2 application credentials.

Docs: https://support.reddithelp.com/hc/en-us/articles/16160319875092-Reddit-Data-API-Wiki
(OAuth, rate limits, X-Ratelimit-Used/Remaining/Reset, the User-Agent rule),
https://redditinc.com/policies/data-api-terms (the terms), https://www.reddit.com/dev/api/
(``/r/NAME/new``, ``/r/NAME/search``, listings with ``after``/``before``, ``raw_json=1``),
https://github.com/reddit-archive/reddit/wiki/OAuth2 (the ``client_credentials`` grant).

A source is a subreddit (``https://www.reddit.com/r/NAME``): its new posts, and/or searches in it
(``--search TERM``, the watch terms of active cases with ``--watch-terms``). Listings are newest
first; each poll reads back to the newest post it handled (mark: ``created_utc`` and fullname,
which survives deleted posts, unlike ``before=``) and hands the run out oldest first.
Cursor ``{"new": mark, "q": mark, "t<term id>": mark}``.

Media: a post's image URL, its ``preview`` source, galleries (``gallery_data.items`` in order,
each ``media_id`` looked up in ``media_metadata``: undocumented, so read defensively),
crossposts (the original's media), and Reddit videos (recorded as video candidates). Every
request asks ``raw_json=1``; URLs that still arrive HTML-escaped are unescaped.
"""

from __future__ import annotations

import base64
import html
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator
from urllib.parse import quote, unquote, urlsplit

from .base import Candidate, Cursor, MediaType, Page, SourceSettings
from .errors import AuthRequired, HttpStatus, SourceFormatError, SourceSettingsError
from .http import HttpClient, _version
from .platform import (Api, Mark, PlatformConnector, PlatformSettings, TokenCache, http_url, id_of,
                       items, mapping, mark_from, parse_time, require_list, run_pages, text_of,
                       walk_back)

API_BASE = "https://oauth.reddit.com"
TOKEN_URL = "https://www.reddit.com/api/v1/access_token"
_SUB = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}$")
_USER = re.compile(r"^[A-Za-z0-9_-]{3,20}$")
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".avif", ".heic")
_TOKENS = TokenCache()


@dataclass(frozen=True)
class RedditSettings(PlatformSettings):
    subreddit: str = ""
    include_new: bool = True
    query: str = field(default="", repr=False)
    client_id: str = field(default="", repr=False)
    client_secret: str = field(default="", repr=False)
    username: str = ""
    token_url: str = ""
    include_video: bool = True
    limit: int = 100

    kind: ClassVar[str] = "reddit"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"client_id", "client_secret", "query"})
    primary_secret: ClassVar[str] = "client_secret"
    HELP = {
        **PlatformSettings.HELP,
        "subreddit": "the subreddit (read from https://www.reddit.com/r/NAME)",
        "include_new": "poll the subreddit's new posts (off: searches only)",
        "query": "search within the subreddit (kept encrypted; --search TERM)",
        "client_id": "the OAuth app's client id (https://www.reddit.com/prefs/apps, a 'script' "
                     "or 'web' app; secret: --secret-file client_id=PATH or --secret-env)",
        "client_secret": "the OAuth app's secret (--token-file/--token-env/--ask-token)",
        "username": "the Reddit account that registered the app, for the User-Agent Reddit "
                    "requires: <platform>:<app id>:<version> (by /u/<username>)",
        "token_url": f"the OAuth token endpoint (default {TOKEN_URL})",
        "api_base": f"the OAuth API server (default {API_BASE})",
        "include_video": "record Reddit videos as video candidates",
        "limit": "posts per listing page (at most 100)",
    }

    def validate(self) -> None:
        super().validate()
        if not _SUB.match(self.subreddit):
            raise self.problem("subreddit", f"not a subreddit name: {self.subreddit!r} (use "
                                            "https://www.reddit.com/r/NAME)")
        if self.username and not _USER.match(self.username):
            raise self.problem("username", f"not a Reddit user name: {self.username!r}")
        if self.token_url:
            self.require_http_url("token_url", "token URL")
        if not 1 <= self.limit <= 100:
            raise self.problem("limit", "must be between 1 and 100")
        if not (self.include_new or self.query or self.use_watch_terms):
            raise self.problem("include_new", "with include_new off a source needs --search TERM "
                                              "or --watch-terms")

    @property
    def base(self) -> str:
        return (self.api_base or API_BASE).rstrip("/")

    @property
    def token_endpoint(self) -> str:
        return self.token_url or TOKEN_URL

    @property
    def agent(self) -> str | None:
        if not self.username:
            return None
        return f"python:ncii-monitor:{_version()} (by /u/{self.username})"


def parse_subreddit_url(url: str) -> str:
    parts = urlsplit(url.strip())
    segs = [unquote(s) for s in parts.path.split("/") if s]
    if parts.scheme in ("http", "https") and len(segs) >= 2 and segs[0].lower() == "r":
        return segs[1]
    raise ValueError(f"use https://www.reddit.com/r/NAME (got {url!r})")


class RedditConnector(PlatformConnector):
    kind = "reddit"
    title = "Reddit subreddits (new posts, searches) through the Data API"
    settings_class = RedditSettings

    def settings_from_url(self, url: str, **options: Any) -> SourceSettings:
        data: dict[str, Any] = {"url": url.strip(), **options}
        if "subreddit" not in options:
            try:
                data["subreddit"] = parse_subreddit_url(url)
            except ValueError as exc:
                raise SourceSettingsError("url", str(exc), self.kind) from None
        return self.settings_from_dict(data)

    def url_score(self, url: str) -> int:
        try:
            host = (urlsplit(url).hostname or "").lower()
            parse_subreddit_url(url)
        except ValueError:
            return 0
        return 90 if host == "reddit.com" or host.endswith(".reddit.com") else 0

    def poll(self, settings: SourceSettings, cursor: Cursor | None,
             http: HttpClient) -> Iterator[Page]:
        self.check_settings(settings)
        assert isinstance(settings, RedditSettings)
        s = settings
        state: dict[str, Any] = dict(cursor or {})
        api = Api(http, s, what="Reddit", user_agent=s.agent,
                  auth_hint=": add the app's client id and secret with `ncii source credentials`")
        session = _OAuth(api, s)
        sub = quote(s.subreddit, safe="")
        listings: list[tuple[str, str, dict[str, Any], int | None]] = []
        if s.include_new:
            listings.append(("new", f"{s.base}/r/{sub}/new", {}, None))
        for key, term, case_id in s.searches(s.query):
            listings.append((key, f"{s.base}/r/{sub}/search",
                             {"q": term, "restrict_sr": "1", "sort": "new", "t": "all"}, case_id))
        if not listings:
            yield Page((), state, ("no watch terms of active cases to search for",))
            return
        keep = {key for key, _, _, _ in listings}
        for key in [k for k in state if k not in keep]:
            del state[key]
        for key, url, params, case_id in listings:
            last = None
            for page in self._listing(api, session, s, state, key, url, params, case_id):
                last = page
                yield page
            if last is not None:
                state = dict(last.cursor)

    def _listing(self, api: Api, session: "_OAuth", s: RedditSettings, state: dict[str, Any],
                 key: str, url: str, params: dict[str, Any], case_id: int | None) -> Iterator[Page]:
        def fetch(token: str | None) -> tuple[list[tuple[Mark, Any]], str | None]:
            data = session.get(url, {**params, "limit": s.limit, "raw_json": "1",
                                     "after": token})
            listing = mapping(mapping(data).get("data"))
            if not listing:
                raise SourceFormatError(url, "expected a Listing object")
            out = []
            for child in require_list(listing, "children", url):
                post = mapping(mapping(child).get("data"))
                name = id_of(post.get("name"))
                created = post.get("created_utc")
                if name and isinstance(created, (int, float)) and not isinstance(created, bool):
                    out.append(((float(created), name), (post, case_id)))
            return out, id_of(listing.get("after"))

        mark = mark_from(state.get(key))
        run = walk_back(fetch, mark, s.first_pages if mark is None else s.max_pages)
        notes: list[str] = []
        if not run.reached:
            notes.append(f"more new posts than {s.max_pages} pages: older ones were skipped")
        yield from run_pages(run, lambda item: self._candidates(s, *item, notes=notes),
                             s.page_size, state, key, notes)

    def _candidates(self, s: RedditSettings, post: Any, case_id: int | None, *,
                    notes: list[str]) -> list[Candidate]:
        post = mapping(post)
        name = id_of(post.get("name")) or ""
        if post.get("removed_by_category") or post.get("removed"):
            return []  # removed or deleted: nothing is served any more
        permalink = text_of(post.get("permalink"))
        page_url = f"https://www.reddit.com{permalink}" if permalink and permalink.startswith(
            "/") else http_url(post.get("url"))
        posted = parse_time(post.get("created_utc"))
        extra: dict[str, Any] = {"post": name, "over_18": bool(post.get("over_18"))}
        if case_id is not None:
            extra["case_id"] = case_id
        parents = items(post.get("crosspost_parent_list"))
        src = mapping(parents[0]) if parents else post
        if parents:
            extra["crosspost_of"] = id_of(src.get("name")) or ""
        found = post_media(src, s.include_video)
        if not found and src is not post:
            found = post_media(post, s.include_video)
        if not found and post.get("is_gallery"):
            notes.append(f"post {name}: a gallery without readable media")
        return [Candidate(media_url=url, page_url=page_url, source_kind=self.kind,
                          posted_at=posted, media_type=media_type, key=f"reddit:{name}:{tag}",
                          extra=extra)
                for url, media_type, tag in found]


def _unescape(url: str | None) -> str | None:
    # raw_json=1 should give raw URLs; a proxy or an older API may still send &amp;
    return html.unescape(url) if url and "&" in url else url


def _looks_like_image(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    return parts.path.lower().endswith(_IMAGE_EXT) or host in ("i.redd.it", "i.imgur.com")


def post_media(post: Any, include_video: bool = True) -> list[tuple[str, MediaType, str]]:
    """(URL, type, key tag) of a post's media: gallery items in order, else the video, else the
    image URL and its preview source."""
    post = mapping(post)
    out: list[tuple[str, MediaType, str]] = []
    if post.get("is_gallery") or post.get("gallery_data"):
        meta = mapping(post.get("media_metadata"))
        for i, item in enumerate(items(mapping(post.get("gallery_data")).get("items"))):
            mid = id_of(mapping(item).get("media_id"))
            m = mapping(meta.get(mid)) if mid else {}
            if not m or m.get("status", "valid") != "valid":
                continue
            source = mapping(m.get("s"))
            kind = str(m.get("e") or "")
            if kind == "Image":
                url, media_type = _unescape(http_url(source.get("u"))), MediaType.IMAGE
            elif kind == "AnimatedImage":
                url, media_type = _unescape(http_url(source.get("gif"))), MediaType.IMAGE
                if url is None and include_video:
                    url, media_type = _unescape(http_url(source.get("mp4"))), MediaType.VIDEO
            elif kind == "RedditVideo" and include_video:
                url, media_type = _unescape(http_url(m.get("hlsUrl") or m.get("dashUrl"))), \
                    MediaType.VIDEO
            else:
                continue
            if url:
                out.append((url, media_type, f"g{i}:{mid}"))
        return out
    video = mapping(mapping(post.get("secure_media") or post.get("media")).get("reddit_video"))
    if post.get("is_video") and video:
        url = _unescape(http_url(video.get("fallback_url")))
        if url and include_video:
            out.append((url, MediaType.VIDEO, "video"))
        return out
    url = _unescape(http_url(post.get("url_overridden_by_dest") or post.get("url")))
    if url and (post.get("post_hint") == "image" or _looks_like_image(url)):
        out.append((url, MediaType.IMAGE, "url"))
    images = items(mapping(post.get("preview")).get("images"))
    if images:
        source = _unescape(http_url(mapping(mapping(images[0]).get("source")).get("url")))
        if source and all(source != u for u, _, _ in out):
            out.append((source, MediaType.IMAGE, "preview"))
    return out


class _OAuth:
    """An application-only OAuth token (client_credentials), cached in memory until it expires,
    fetched again once when the API says it no longer works."""

    def __init__(self, api: Api, s: RedditSettings) -> None:
        self.api = api
        self.s = s
        self.key = (s.token_endpoint, s.client_id)

    def get(self, url: str, params: dict[str, Any]) -> Any:
        try:
            data, _ = self.api.get(url, params, headers={"Authorization": f"bearer {self._token()}"})
        except AuthRequired:
            _TOKENS.drop(self.key)  # expired or revoked: one fresh token, then give up
            data, _ = self.api.get(url, params, headers={"Authorization": f"bearer {self._token()}"})
        return data

    def _token(self) -> str:
        cached = _TOKENS.get(self.key)
        if cached:
            return cached["access"]
        if not (self.s.client_id and self.s.client_secret):
            raise AuthRequired(self.s.token_endpoint, "Reddit's Data API needs an OAuth app: add "
                                                      "its client id and secret with `ncii source "
                                                      "credentials`")
        basic = base64.b64encode(f"{self.s.client_id}:{self.s.client_secret}".encode()).decode()
        try:
            data, _ = self.api.post(self.s.token_endpoint,
                                    form={"grant_type": "client_credentials"},
                                    headers={"Authorization": f"Basic {basic}"})
        except HttpStatus as exc:
            if exc.status in (400, 401):
                raise AuthRequired(exc.url, f"HTTP {exc.status}: Reddit refused the client id "
                                            "and secret; renew them with `ncii source "
                                            "credentials`") from None
            raise
        access = text_of(mapping(data).get("access_token"), 10000)
        if not access:
            raise AuthRequired(self.s.token_endpoint, "Reddit gave no access token for these "
                                                      "credentials")
        expires = mapping(data).get("expires_in")
        life = float(expires) if isinstance(expires, (int, float)) and expires > 0 else 3600.0
        _TOKENS.put(self.key, {"access": access}, time.time() + max(60.0, life - 60.0))
        return access

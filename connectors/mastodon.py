"""Mastodon and compatible ActivityPub servers, through the client API (v1).

Docs: https://docs.joinmastodon.org/methods/timelines/ (public, hashtag timelines),
https://docs.joinmastodon.org/methods/accounts/#statuses and #lookup (account statuses),
https://docs.joinmastodon.org/api/guidelines/#pagination (max_id/since_id/min_id, Link),
https://docs.joinmastodon.org/entities/MediaAttachment/ (url, preview_url, remote_url),
https://docs.joinmastodon.org/api/rate-limits/ (X-RateLimit-*).

A source is one timeline: ``https://HOST/tags/NAME`` (hashtag), ``https://HOST/@user`` (an
account; ``@user@other.host`` for a remote one), ``https://HOST/public/local`` (the local
timeline) or ``https://HOST/public`` (the federated one). Every request asks ``only_media``.

Cursor ``{"min_id": newest status id handled, "account_id"?: resolved id}``. The first poll
reads back ``first_pages`` pages from the newest (``max_id`` paging, Link ``rel="next"``);
later polls read forward with ``min_id`` (Link ``rel="prev"``), one committed page per API
page, so a crash part way loses and repeats nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .base import Candidate, Cursor, MediaType, Page, SourceSettings
from .errors import SourceFormatError, SourceSettingsError
from .http import HttpClient, Response
from .platform import (Api, PlatformConnector, PlatformSettings, http_url, id_of, items, mapping,
                       parse_time, require_list)

_TAG = re.compile(r"^[\w]{1,100}$", re.UNICODE)
_ACCT = re.compile(r"^[A-Za-z0-9_.-]{1,64}(@[A-Za-z0-9.-]{1,253}(:\d{1,5})?)?$")
TIMELINES = ("tag", "account", "local", "public")


def _id_order(value: str) -> tuple[int, str]:
    # Mastodon ids are numeric strings that grow over time; compare them as numbers.
    return (len(value), value) if value.isdigit() else (0, value)


@dataclass(frozen=True)
class MastodonSettings(PlatformSettings):
    """``timeline``: tag, account, local or public; ``target``: the tag or account."""

    timeline: str = ""
    target: str = ""
    access_token: str = field(default="", repr=False)
    include_video: bool = True
    limit: int = 40

    kind: ClassVar[str] = "mastodon"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"access_token"})
    primary_secret: ClassVar[str] = "access_token"
    HELP = {
        **PlatformSettings.HELP,
        "timeline": "tag, account, local or public (read from the URL)",
        "target": "the hashtag or account (read from the URL)",
        "access_token": "an access token (read scope) for servers whose timelines need sign-in "
                        "(secret: give it with --token-file/--token-env/--ask-token)",
        "include_video": "record videos and GIFs (gifv) as video candidates",
        "limit": "statuses per API page (Mastodon allows 40)",
    }

    def validate(self) -> None:
        super().validate()
        self.require_http_url()
        if self.timeline not in TIMELINES:
            raise self.problem("timeline", f"must be one of {', '.join(TIMELINES)}; use a URL "
                                           "like https://HOST/tags/NAME, https://HOST/@user or "
                                           "https://HOST/public/local")
        if self.timeline == "tag" and not _TAG.match(self.target):
            raise self.problem("target", f"not a hashtag: {self.target!r}")
        if self.timeline == "account" and not _ACCT.match(self.target):
            raise self.problem("target", f"not an account name: {self.target!r}")
        if not 1 <= self.limit <= 80:
            raise self.problem("limit", "must be between 1 and 80")
        if self.use_watch_terms:
            raise self.problem("use_watch_terms", "Mastodon full-text search is sign-in only and "
                                                  "covers opted-in posts only; add hashtag "
                                                  "sources instead")

    @property
    def base(self) -> str:
        if self.api_base:
            return self.api_base.rstrip("/")
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


def parse_timeline_url(url: str) -> tuple[str, str]:
    """(timeline, target) from a Mastodon web URL; ValueError naming the problem."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    segs = [unquote(s) for s in parts.path.split("/") if s]
    if len(segs) >= 2 and segs[0] == "tags":
        return "tag", segs[1].lstrip("#")
    if segs and segs[0].startswith("@") and len(segs[0]) > 1:
        return "account", segs[0][1:]
    if len(segs) >= 2 and segs[0] == "users":
        return "account", segs[1]
    if segs[:2] == ["public", "local"]:
        return "local", ""
    if segs == ["public"]:
        return "public", ""
    raise ValueError("use https://HOST/tags/NAME, https://HOST/@user, https://HOST/public/local "
                     f"or https://HOST/public (got {url!r})")


class MastodonConnector(PlatformConnector):
    kind = "mastodon"
    title = "Mastodon / ActivityPub timelines (hashtag, account, local, public)"
    settings_class = MastodonSettings

    def settings_from_url(self, url: str, **options: Any) -> SourceSettings:
        data: dict[str, Any] = {"url": url.strip(), **options}
        if "timeline" not in options:
            try:
                data["timeline"], data["target"] = parse_timeline_url(url)
            except ValueError as exc:
                raise SourceSettingsError("url", str(exc), self.kind) from None
        return self.settings_from_dict(data)

    def url_score(self, url: str) -> int:
        try:
            parse_timeline_url(url)
        except ValueError:
            return 0
        path = urlsplit(url).path
        return 60 if "/tags/" in path or "/@" in path or path.startswith("/public") else 30

    def poll(self, settings: SourceSettings, cursor: Cursor | None,
             http: HttpClient) -> Iterator[Page]:
        self.check_settings(settings)
        assert isinstance(settings, MastodonSettings)
        s = settings
        host = urlsplit(s.base).hostname or s.base
        headers = {"Authorization": f"Bearer {s.access_token}"} if s.access_token else {}
        api = Api(http, s, what=f"Mastodon server {host}", headers=headers,
                  auth_hint=" (since Mastodon 4.5 servers may make timelines sign-in only): add "
                            "an access token with `ncii source credentials`")
        state: dict[str, Any] = dict(cursor or {})
        endpoint = self._endpoint(api, s, state)
        params = {"only_media": "true", "limit": s.limit}
        min_id = id_of(state.get("min_id"))
        if min_id is None:
            yield from self._first(api, s, endpoint, params, state)
            return
        yielded = False
        for _ in range(s.max_pages):
            data, response = api.get(endpoint, {**params, "min_id": min_id})
            statuses = self._statuses(data, endpoint)
            if not statuses:
                break
            newest = max((sid for sid, _ in statuses), key=_id_order)
            newer = _link_param(response, "prev", "min_id") or newest
            if _id_order(newer) <= _id_order(min_id):
                break  # a server that does not move forward: stop rather than loop
            min_id = max(newest, newer, key=_id_order)
            state["min_id"] = min_id
            candidates, notes = self._candidates(s, host, statuses)
            yield Page(tuple(candidates), dict(state), tuple(notes))
            yielded = True
            if len(statuses) < s.limit:
                break
        if not yielded:
            yield Page((), dict(state))

    # -- internals ------------------------------------------------------------------------------

    def _endpoint(self, api: Api, s: MastodonSettings, state: dict[str, Any]) -> str:
        if s.timeline == "tag":
            return f"{s.base}/api/v1/timelines/tag/{quote(s.target, safe='')}"
        if s.timeline in ("local", "public"):
            suffix = "?local=true" if s.timeline == "local" else ""
            return f"{s.base}/api/v1/timelines/public{suffix}"
        account_id = id_of(state.get("account_id"))
        if account_id is None:
            data, _ = api.get(f"{s.base}/api/v1/accounts/lookup", {"acct": s.target})
            account_id = id_of(mapping(data).get("id"))
            if account_id is None:
                raise SourceFormatError(f"{s.base}/api/v1/accounts/lookup",
                                        "the account lookup returned no account id")
            state["account_id"] = account_id
        return f"{s.base}/api/v1/accounts/{quote(account_id, safe='')}/statuses"

    def _first(self, api: Api, s: MastodonSettings, endpoint: str, params: dict[str, Any],
               state: dict[str, Any]) -> Iterator[Page]:
        """The first poll: the newest ``first_pages`` pages, handed out oldest first."""
        collected: list[tuple[str, Any]] = []
        max_id: str | None = None
        for _ in range(s.first_pages):
            data, response = api.get(endpoint, {**params, "max_id": max_id})
            statuses = self._statuses(data, endpoint)
            if not statuses:
                break
            collected.extend(statuses)
            oldest = min((sid for sid, _ in statuses), key=_id_order)
            older = _link_param(response, "next", "max_id") or oldest
            if max_id is not None and _id_order(older) >= _id_order(max_id):
                break
            max_id = older
            if len(statuses) < s.limit:
                break
        collected.sort(key=lambda t: _id_order(t[0]))
        unique = list({sid: st for sid, st in collected}.items())
        if not unique:
            yield Page((), dict(state))
            return
        for start in range(0, len(unique), s.page_size):
            chunk = unique[start:start + s.page_size]
            state["min_id"] = chunk[-1][0]
            candidates, notes = self._candidates(s, urlsplit(s.base).hostname or "", chunk)
            yield Page(tuple(candidates), dict(state), tuple(notes))

    @staticmethod
    def _statuses(data: Any, where: str) -> list[tuple[str, Any]]:
        out = []
        for status in require_list(data, None, where):
            sid = id_of(mapping(status).get("id"))
            if sid is not None:
                out.append((sid, status))
        return out

    def _candidates(self, s: MastodonSettings, host: str,
                    statuses: list[tuple[str, Any]]) -> tuple[list[Candidate], list[str]]:
        out: list[Candidate] = []
        notes: list[str] = []
        for sid, status in sorted(statuses, key=lambda t: _id_order(t[0])):
            src = mapping(mapping(status).get("reblog")) or mapping(status)
            page_url = http_url(src.get("url")) or http_url(src.get("uri"))
            posted = parse_time(src.get("created_at"))
            for att in items(src.get("media_attachments")):
                att = mapping(att)
                kind = att.get("type")
                if kind == "image":
                    media_type = MediaType.IMAGE
                elif kind in ("gifv", "video") and s.include_video:
                    media_type = MediaType.VIDEO
                else:
                    continue
                url = http_url(att.get("url")) or http_url(att.get("remote_url"))
                if url is None and media_type is MediaType.IMAGE:
                    url = http_url(att.get("preview_url"))
                if url is None:
                    notes.append(f"status {sid}: a {kind} attachment without a usable URL")
                    continue
                att_id = id_of(att.get("id")) or url
                out.append(Candidate(
                    media_url=url, page_url=page_url, source_kind=self.kind, posted_at=posted,
                    media_type=media_type, key=f"mastodon:{host}:media:{att_id}",
                    extra={"status_id": sid, "sensitive": bool(src.get("sensitive"))}))
        return out, notes


def _link_param(response: Response, rel: str, name: str) -> str | None:
    """The ``name`` query parameter of the Link header's ``rel`` URL (never followed itself)."""
    link = response.links.get(rel)
    if not link:
        return None
    try:
        values = parse_qs(urlsplit(link).query).get(name)
    except ValueError:
        return None
    return id_of(values[0]) if values else None

"""The registry of connector kinds.

``CONNECTORS`` maps a kind (``"rss"``) to the connector instance that handles it;
``get_connector(kind)`` looks one up; ``connector_for_url(url)`` picks the kind that recognises
a URL best (for "add a source by its URL"). A new connector module adds one line to
``_BUILTIN`` (or calls :func:`register` for a plug-in).
"""

from __future__ import annotations

from .base import Connector, SourceSettings
from .errors import SourceSettingsError, UnknownConnector
from .folder import FolderConnector
from .gallery import GalleryConnector
from .rss import RssConnector
from .sitemap import SitemapConnector
from .warc import WarcConnector
from .mastodon import MastodonConnector
from .bluesky import BlueskyConnector
from .reddit import RedditConnector
from .lemmy import LemmyConnector

_BUILTIN: tuple[type[Connector], ...] = (
    RssConnector,
    SitemapConnector,
    GalleryConnector,
    FolderConnector,
    WarcConnector,
    MastodonConnector,
    BlueskyConnector,
    RedditConnector,
    LemmyConnector,
)

CONNECTORS: dict[str, Connector] = {}


def register(connector: type[Connector] | Connector, *, replace: bool = False) -> Connector:
    """Add a connector (class or instance) under its ``kind``; returns the instance."""
    instance = connector() if isinstance(connector, type) else connector
    kind = getattr(instance, "kind", None)
    valid = isinstance(kind, str) and kind.replace("-", "").replace("_", "").isalnum()
    if not valid:
        raise ValueError(f"connector {instance!r} has no valid kind")
    if kind in CONNECTORS and not replace and type(CONNECTORS[kind]) is not type(instance):
        raise ValueError(f"a connector of kind {kind!r} is already registered")
    CONNECTORS[kind] = instance
    return instance


for _cls in _BUILTIN:
    register(_cls)


def get_connector(kind: str) -> Connector:
    try:
        return CONNECTORS[kind]
    except KeyError:
        known = ", ".join(sorted(CONNECTORS))
        raise UnknownConnector(f"no connector of kind {kind!r}; known kinds: {known}") from None


def connector_for_url(url: str) -> Connector:
    """The connector that recognises ``url`` best. Raises :class:`SourceSettingsError` when
    none does (then the person names the kind explicitly)."""
    scored = sorted(
        ((c.url_score(url), c.kind, c) for c in CONNECTORS.values()),
        key=lambda t: (-t[0], t[1]),
    )
    if not scored or scored[0][0] <= 0:
        raise SourceSettingsError(
            "url", f"no connector recognises {url!r}; name the kind explicitly "
            f"({', '.join(sorted(CONNECTORS))})"
        )
    return scored[0][2]


def settings_for_url(url: str, kind: str | None = None, **options: object) -> SourceSettings:
    """Settings for a source named by URL, with the kind given or guessed."""
    connector = get_connector(kind) if kind else connector_for_url(url)
    return connector.settings_from_url(url, **options)

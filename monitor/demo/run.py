"""The demo: a victim hashes pictures offline, an advocate registers them, the monitor polls a
small web site (on this computer's loopback interface only) through its real connectors and
pipeline, and shows the matches a person would review and the alerts it would send.

Every step goes through the real code (hashing, the hash file, the registry, the sources, the
connectors' safe HTTP client, the fetch/hash/match pipeline, the recorder, the alert outbox);
only the pictures are synthetic and the "internet" is a local site that exists while the demo
runs. Alerts go to a dry-run sink (printed) unless asked to use the configured channels.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hashes.batch import hash_paths
from hashes.compute import HashOptions
from hashes.errors import HashingError
from hashes.hashfile import HashFileWriter, make_header, read_hash_file
from monitor import __version__, alerts, db, registry, sources
from monitor.demo import pictures as P
from monitor.demo.site import LoopbackSite, Route, gallery_page, image_type, rss_feed
from monitor.fetcher import Workers
from monitor.matching import Matcher
from monitor.pipeline import Pipeline, http_client
from monitor.scheduler import MonitorService, OnceReport
from monitor.settings import Settings

ACTOR = "demo"
VICTIM_SEEDS = (101, 102, 103)
UNRELATED_SEEDS = tuple(range(200, 212))

#: What the "internet" holds: (file name, victim picture index, how it was altered, how, where).
ALTERED = (
    ("repost-small.jpg", 0, "downscaled and recompressed", P.recompressed, "feed"),
    ("repost-mirrored.jpg", 1, "mirrored", P.mirrored, "feed"),
    ("repost-screenshot.png", 2, "screenshot inside a phone app", P.phone_screenshot, "feed"),
    ("repost-captioned.jpg", 0, "caption drawn over it", P.captioned, "gallery"),
    ("repost-cropped.jpg", 1, "cropped by 10%", lambda im: P.cropped(im, 0.10), "gallery"),
)
#: Also shown in the gallery, byte for byte the same as in the feed: fetched, never hashed twice.
REPEATED = "repost-small.jpg"


@dataclass
class DemoResult:
    """What the demo did and found."""

    case_reference: str
    data_dir: Path
    hash_file_bytes: int
    registered: int
    site_url: str = ""
    planted: list[dict] = field(default_factory=list)
    sources: list[dict] = field(default_factory=list)
    once: OnceReport = field(default_factory=OnceReport)
    alerts: list[dict] = field(default_factory=list)
    alert_delivery: list[str] = field(default_factory=list)
    takedown: dict = field(default_factory=dict)  # issue 8: the notice drafted, sent and tracked
    case_secret: str = field(default="", repr=False)  # issue 7: for `ncii serve`'s self-service demo

    @property
    def matches(self) -> list[dict]:
        """Every match the pass reported, with the picture's file name (for the table)."""
        out = []
        for r in self.once.sources:
            for m in r.match_list:
                out.append(dict(m, file=m["url"].rsplit("/", 1)[-1], source=r.source))
        return out

    def as_dict(self) -> dict[str, Any]:
        """The JSON printed by `ncii demo --json`."""
        found = {m["file"] for m in self.matches}
        return {"case": self.case_reference, "data_dir": str(self.data_dir), "registered_hashes": self.registered,
                "hash_file_bytes": self.hash_file_bytes, "site": self.site_url, "planted": self.planted,
                "planted_found": sum(1 for p in self.planted if p["file"] in found),
                "unrelated": len(UNRELATED_SEEDS), "sources": self.sources, "pass": self.once.to_dict(),
                "matches": self.matches, "alerts": self.alerts, "alert_delivery": self.alert_delivery,
                "takedown": self.takedown}


def _build_site(site: LoopbackSite, originals: list, planted: list[dict]) -> tuple[str, str]:
    feed_items: list[tuple[str, str, str]] = []
    gallery: list[tuple[str, str]] = []
    blobs: dict[str, bytes] = {}
    for name, idx, how, alter, where in ALTERED:
        img = alter(originals[idx])
        blobs[name] = P.png_bytes(img) if name.endswith(".png") else P.jpeg_bytes(img, 80)
        path = f"/media/{where}/{name}"
        site.add(path, Route(blobs[name], image_type(name)))
        planted.append({"file": name, "copy_of": f"private-{idx + 1}.jpg", "alteration": how, "url": site.url(path)})
        if where == "feed":
            feed_items.append((f"/posts/{name}.html", site.url(path), "new upload"))
        else:
            gallery.append((site.url(path), "photo"))
    for i, seed in enumerate(UNRELATED_SEEDS):
        name = f"unrelated-{seed}.jpg"
        where = "feed" if i % 2 == 0 else "gallery"
        path = f"/media/{where}/{name}"
        site.add(path, Route(P.jpeg_bytes(P.picture(seed), 85), "image/jpeg"))
        if where == "feed":
            feed_items.append((f"/posts/{name}.html", site.url(path), "holiday picture"))
        else:
            gallery.append((site.url(path), "photo"))
    # The same bytes at a second address: recorded as a second sighting of one media item.
    site.add(f"/media/gallery/{REPEATED}", Route(blobs[REPEATED], "image/jpeg"))
    gallery.append((site.url(f"/media/gallery/{REPEATED}"), "photo"))
    feed_url = site.add("/feed.xml", Route(rss_feed(site.url(""), "A board that reposts pictures", feed_items),
                                           "application/rss+xml"))
    gallery_url = site.add("/gallery.html", Route(gallery_page("Gallery", gallery), "text/html; charset=utf-8"))
    return feed_url, gallery_url


def run_demo(base: Path, say: Callable[[str], None] = lambda _m: None, jobs: int | None = None,
             send_alerts: bool = False, show_alert: Callable[[dict], None] | None = None,
             site: LoopbackSite | None = None) -> DemoResult:
    """Run the whole demo in `base` (wiped first) with its own SQLite database and key.

    send_alerts=True delivers the alerts through the configured channels (NCII_SMTP_*,
    NCII_WEBHOOK_*) when there are any; otherwise they go to a dry-run sink.
    """
    if base.exists():
        shutil.rmtree(base)
    victim_dir, data_dir = base / "victim-device", base / "data"
    for d in (victim_dir, data_dir):
        d.mkdir(parents=True)

    say("1. On the victim's own computer: three private pictures are hashed offline.")
    originals = [P.picture(seed) for seed in VICTIM_SEEDS]
    for i, img in enumerate(originals):
        (victim_dir / f"private-{i + 1}.jpg").write_bytes(P.jpeg_bytes(img, 92))
    buf = io.StringIO()
    writer = HashFileWriter(buf, "jsonl", make_header(HashOptions().algorithms, "register", f"ncii {__version__}"))
    for path, result in hash_paths(sorted(victim_dir.iterdir()), HashOptions(regions="register"), jobs=jobs):
        if isinstance(result, HashingError):
            raise result
        writer.write(result)
    writer.close()
    hash_text = buf.getvalue()
    say(f"   hash file: {len(hash_text):,} bytes of hashes, no pictures and no file names.")

    say("2. An advocate opens a case and registers the hash file.")
    configured = Settings.load()
    settings = dataclasses.replace(
        configured, data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'ncii.db'}",
        key_file=data_dir / "ncii.key", secret_key=None,
        # The demo's "internet" is on the loopback interface, which the SSRF guard refuses
        # unless allowed; and it is our own site, so no politeness delay between requests.
        monitor=dataclasses.replace(configured.monitor, allow_loopback=True, http_min_interval=0.0,
                                    hash_workers=jobs, concurrency=2))
    engine = db.open_database(settings)
    service = None
    keep_site = site is not None  # `ncii serve` keeps the site up so previews can be fetched
    site = site or LoopbackSite()
    try:
        with db.transaction(engine) as s:
            case = registry.create_case(s, jurisdiction="GB", label="demo case", actor=ACTOR)
            summary = registry.register_hash_file(s, case.reference, read_hash_file(hash_text), actor=ACTOR)
        say(f"   case {case.reference}: {summary.added} hashes registered.")

        planted: list[dict] = []
        feed_url, gallery_url = _build_site(site, originals, planted)
        say(f"3. Online (a local site at {site.url('/')}, only on this computer): a feed and a gallery page show "
            f"{len(ALTERED)} altered copies among {len(UNRELATED_SEEDS)} unrelated pictures.")

        say("4. The advocate adds both pages as sources, by their URLs.")
        added = []
        with db.transaction(engine) as s:
            for url, kind, name in ((feed_url, "auto", "demo-feed"), (gallery_url, "gallery", "demo-gallery")):
                added.append(sources.add_source(s, url, kind=kind, name=name, interval=15 * 60, actor=ACTOR).to_dict())
        for a in added:
            say(f"   source {a['name']} ({a['kind']}): {a['url']}")

        say("5. One monitor pass: fetch what is new, hash it, match it, record matches and queue alerts.")
        channels = alerts.channels_from_settings(configured) if send_alerts else []
        dry = alerts.DryRunChannel(printer=show_alert)
        pipeline = Pipeline(engine, Matcher(engine), http_client(settings.monitor),
                            Workers(fetch_threads=4, hash_processes=jobs), settings=settings.monitor, actor=ACTOR)
        service = MonitorService(engine, settings, pipeline=pipeline, channels=channels or [dry])
        once = service.once(every=True)
        delivered = dry.sent if not channels else []
        for r in once.sources:
            say(f"   {r.source}: {r.listed} listed, {r.hashed} hashed, {r.reused} already known, "
                f"{r.new_matches} new match(es)" + (f", FAILED: {r.error['message']}" if r.error else ""))
        say(f"6. Alerts: {once.alerts.sent} " + ("sent" if channels else "written to the dry-run sink (set "
            "NCII_SMTP_* or NCII_WEBHOOK_* and pass --send-alerts to deliver them)") + ".")
        from monitor.demo.takedown import run_takedown_demo  # issue 8

        takedown = run_takedown_demo(engine, settings, site, case.reference, say)
    finally:
        if service is not None:
            service.shutdown()
        if not keep_site:
            site.close()
        engine.dispose()
    return DemoResult(case.reference, data_dir, len(hash_text.encode()), summary.added, site_url=site.url("/"),
                      planted=planted, sources=added, once=once, alerts=delivered,
                      alert_delivery=[c.name for c in (channels or [dry])], takedown=takedown,
                      case_secret=case.secret)

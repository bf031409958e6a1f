"""Throughput and memory of the whole monitor pipeline against hashing the same images from disk.

    python benchmarks/pipeline.py [--quick] [--jobs N] [--fetchers N]

A local web site (its own process, on 127.0.0.1 only) serves a sitemap listing N images
(10,000; 1,000 with --quick): JPEGs of mixed sizes (longest side 300-1200 px, quality 70-92)
made once from the shared photos (random crops) into a cache folder under /tmp, 4 % of the URLs
being byte-for-byte duplicates of others. Then:

* hash-only   hashes.batch.hash_paths over the same N files, the monitor's hash set
              (HashOptions(regions="query")), --jobs processes (default: every core)
* pipeline    one poll of a sitemap source through monitor.pipeline: fetch over HTTP with the
              safe client, SHA-256, exact dedup, hashing on --jobs processes, matching against a
              registry (3 cases), recording media/sightings/candidates/matches/alerts in SQLite,
              one transaction per page of 100

Both are timed after their worker processes are up. Reported: images/second and images/second
per core for each, their ratio (target >= 0.8), and the peak resident memory of the whole
process tree sampled every 0.2 s with psutil, per quarter of the pipeline run (flat = bounded
work in flight). The last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing import get_context
from pathlib import Path

from _common import CACHE, machine, photo_paths, print_json  # noqa: E402  (also puts the repo on sys.path)

DUPLICATE_SHARE = 0.04
IMAGES_PER_PAGE_ENTRY = 10


# --- the images -----------------------------------------------------------------------------------

def _make_one(args: tuple[int, str, str]) -> None:
    from PIL import Image

    index, src, dst = args
    rng = random.Random(index)
    im = Image.open(src).convert("RGB")
    w, h = im.size
    f = rng.uniform(0.6, 1.0)
    cw, ch = int(w * f), int(h * f)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    im = im.crop((x, y, x + cw, y + ch))
    longest = rng.randint(300, 1200)
    scale = longest / max(cw, ch)
    im = im.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=rng.randint(70, 92))
    Path(dst).write_bytes(buf.getvalue())


def make_images(count: int, jobs: int) -> tuple[Path, list[str], int]:
    """(folder, file names in listing order, distinct count), generated once and cached."""
    out = CACHE / f"pipeline-{count}"
    manifest = out / "manifest.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        return out, data["files"], data["distinct"]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    photos = [str(p) for p in photo_paths()]
    distinct = count - int(count * DUPLICATE_SHARE)
    names = [f"img-{i:05d}.jpg" for i in range(distinct)]
    work = [(i, photos[i % len(photos)], str(out / n)) for i, n in enumerate(names)]
    print(f"making {distinct} images (+{count - distinct} duplicate URLs) in {out} (once) ...", file=sys.stderr)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(_make_one, work, chunksize=32))
    rng = random.Random(5)
    files = list(names)
    for j in range(count - distinct):
        dup = f"dup-{j:05d}.jpg"
        os.link(out / rng.choice(names), out / dup)
        files.insert(rng.randint(0, len(files)), dup)
    manifest.write_text(json.dumps({"files": files, "distinct": distinct}))
    return out, files, distinct


# --- the site (its own process) -------------------------------------------------------------------

def _serve(folder: str, files: list[str], conn) -> None:  # runs in the site process
    import socketserver

    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between headers and body

        def __init__(self, *a, **k):
            super().__init__(*a, directory=folder, **k)

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/sitemap.xml":
                body = sitemap
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

        def server_bind(self) -> None:  # no getfqdn(): no name lookups
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    server = Server(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    entries = []
    for k in range(0, len(files), IMAGES_PER_PAGE_ENTRY):
        imgs = "".join(f"<image:image><image:loc>{base}/{n}</image:loc></image:image>"
                       for n in files[k:k + IMAGES_PER_PAGE_ENTRY])
        entries.append(f"<url><loc>{base}/page-{k // IMAGES_PER_PAGE_ENTRY}.html</loc>{imgs}</url>")
    sitemap = ('<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
               'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">' + "".join(entries)
               + "</urlset>\n").encode()
    conn.send(base)
    server.serve_forever(poll_interval=0.2)


# --- memory sampling ------------------------------------------------------------------------------

class Sampler:
    """Resident memory of this process and of its whole process tree, every `interval` seconds."""

    def __init__(self, interval: float = 0.2, exclude: set[int] | None = None) -> None:
        import psutil

        self.proc = psutil.Process()
        self.exclude = exclude or set()
        self.samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                main = self.proc.memory_info().rss
                total = main
                for c in self.proc.children(recursive=True):
                    if c.pid in self.exclude:
                        continue
                    try:
                        total += c.memory_info().rss
                    except psutil.Error:
                        pass
                self.samples.append((time.monotonic(), main, total))
            except psutil.Error:
                pass
            self._stop.wait(interval)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peaks(self) -> tuple[int, int]:
        return (max((s[1] for s in self.samples), default=0), max((s[2] for s in self.samples), default=0))

    def quarters(self) -> list[int]:
        """Peak tree RSS in each quarter of the run."""
        if not self.samples:
            return []
        t0, t1 = self.samples[0][0], self.samples[-1][0]
        span = max(t1 - t0, 1e-9)
        out = [0, 0, 0, 0]
        for t, _, total in self.samples:
            q = min(3, int(4 * (t - t0) / span))
            out[q] = max(out[q], total)
        return out


MB = 1024 * 1024


# --- the runs -------------------------------------------------------------------------------------

def hash_only(paths: list[Path], jobs: int, exclude: set[int]) -> dict:
    from hashes.batch import hash_paths
    from hashes.compute import HashOptions

    with Sampler(exclude=exclude) as mem:
        first = None
        n = errors = 0
        for _path, result in hash_paths(paths, HashOptions(regions="query"), jobs=jobs):
            if first is None:
                first = time.perf_counter()  # the pool is up: time from here, like the pipeline
            n += 1
            errors += not hasattr(result, "sha256")
        elapsed = time.perf_counter() - first
    rate = (n - 1) / elapsed
    return {"images": n, "seconds": round(elapsed, 2), "rate": rate, "errors": errors,
            "peak_rss_mb": round(mem.peaks()[1] / MB, 1)}


def pipeline_run(base_url: str, folder: Path, jobs: int, fetchers: int, exclude: set[int]) -> dict:
    import dataclasses

    from connectors.http import HttpClient, HttpSettings
    from hashes.compute import HashOptions, hash_file
    from hashes.hashfile import HashFileWriter, make_header, read_hash_file
    from monitor import db, registry, sources
    from monitor.fetcher import Workers
    from monitor.matching import Matcher
    from monitor.models import Source
    from monitor.pipeline import Pipeline
    from monitor.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="ncii-bench-pipeline-"))
    try:
        settings = Settings.load({"NCII_DATA_DIR": str(tmp)})
        settings = dataclasses.replace(settings, monitor=dataclasses.replace(
            settings.monitor, allow_loopback=True, http_min_interval=0.0, hash_workers=jobs, fetch_workers=fetchers))
        engine = db.open_database(settings)
        # Three cases, each the registered hashes of one shared photo: its crops in the set match.
        for src in photo_paths()[:3]:
            buf = io.StringIO()
            w = HashFileWriter(buf, "jsonl", make_header(HashOptions().algorithms, "register", "bench"))
            w.write(hash_file(src, HashOptions(regions="register")))
            w.close()
            with db.transaction(engine) as s:
                case = registry.create_case(s, actor="bench")
                registry.register_hash_file(s, case.reference, read_hash_file(buf.getvalue()), actor="bench")
        with db.transaction(engine) as s:
            sources.add_source(s, f"{base_url}/sitemap.xml", kind="sitemap", name="bench", interval=3600, actor="bench")
            source_id = s.query(Source.id).scalar()
        http = HttpClient(HttpSettings(allow_loopback=True, min_interval=0.0, retries=1))
        workers = Workers(fetch_threads=fetchers, hash_processes=jobs)
        workers.warm_up()
        # Load the hashing code in every worker too (the baseline's first result plays this part).
        sample = next(folder.glob("img-*.jpg")).read_bytes()
        from monitor.fetcher import hash_job
        pool = workers._pool()  # noqa: SLF001 - warming up the real pool
        for f in [pool.submit(hash_job, sample, "warm-up") for _ in range(jobs * 2)]:
            f.result()
        pipeline = Pipeline(engine, Matcher(engine), http, workers, settings=settings.monitor, actor="bench")
        with Sampler(exclude=exclude) as mem:
            start = time.perf_counter()
            report = pipeline.poll(source_id)
            elapsed = time.perf_counter() - start
        pipeline.close()
        engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not report.ok:
        sys.exit(f"the pipeline run failed: {report.error}")
    main_peak, tree_peak = mem.peaks()
    return {"images": report.new, "hashed": report.hashed, "reused": report.reused, "failed": report.failed,
            "pages": report.pages, "matches": report.new_matches, "alerts": report.alerts,
            "seconds": round(elapsed, 2), "rate": report.new / elapsed,
            "peak_rss_mb": round(tree_peak / MB, 1), "peak_main_rss_mb": round(main_peak / MB, 1),
            "quarter_peaks_mb": [round(q / MB, 1) for q in mem.quarters()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 images instead of 10,000")
    ap.add_argument("--jobs", type=int, default=None, help="hashing processes (default: every core)")
    ap.add_argument("--fetchers", type=int, default=8, help="download threads of the pipeline (default 8)")
    args = ap.parse_args()
    from hashes.batch import default_jobs

    jobs = args.jobs or default_jobs()
    count = 1000 if args.quick else 10_000
    folder, files, distinct = make_images(count, jobs)

    ctx = get_context("spawn")
    parent, child = ctx.Pipe()
    site = ctx.Process(target=_serve, args=(str(folder), files, child), daemon=True)
    site.start()
    base_url = parent.recv()
    try:
        baseline = hash_only([folder / f for f in files], jobs, exclude={site.pid})
        piped = pipeline_run(base_url, folder, jobs, args.fetchers, exclude={site.pid})
    finally:
        site.terminate()
        site.join()

    ratio = piped["rate"] / baseline["rate"]
    quarters = piped["quarter_peaks_mb"]
    flat = bool(quarters) and max(quarters[1:]) <= quarters[0] * 1.25 + 64
    print(f"\n{count} images ({distinct} distinct), {jobs} hashing process(es), {args.fetchers} fetch threads")
    print(f"{'':12} {'images':>7} {'seconds':>8} {'img/s':>7} {'img/s/core':>11} {'peak RSS':>9}")
    for name, r in (("hash-only", baseline), ("pipeline", piped)):
        print(f"{name:12} {r['images']:>7} {r['seconds']:>8.1f} {r['rate']:>7.1f} {r['rate'] / jobs:>11.1f} "
              f"{r['peak_rss_mb']:>7.0f}MB")
    print(f"pipeline / hash-only: {ratio:.2f}x (target >= 0.8); hashed {piped['hashed']}, reused {piped['reused']} "
          f"(duplicates), {piped['matches']} matches, {piped['alerts']} alerts, {piped['pages']} pages")
    print(f"pipeline peak RSS by quarter (MB, process tree): {quarters} -> {'flat' if flat else 'GROWING'}")
    print_json({
        "benchmark": "pipeline", "images": count, "distinct": distinct, "jobs": jobs, "fetchers": args.fetchers,
        "hash_only_img_s": round(baseline["rate"], 2), "hash_only_img_s_per_core": round(baseline["rate"] / jobs, 2),
        "pipeline_img_s": round(piped["rate"], 2), "pipeline_img_s_per_core": round(piped["rate"] / jobs, 2),
        "ratio": round(ratio, 3), "target_ratio": 0.8, "pipeline_hashed": piped["hashed"],
        "pipeline_reused": piped["reused"], "pipeline_failed": piped["failed"], "matches": piped["matches"],
        "alerts": piped["alerts"], "hash_only_peak_rss_mb": baseline["peak_rss_mb"],
        "pipeline_peak_rss_mb": piped["peak_rss_mb"], "pipeline_peak_main_rss_mb": piped["peak_main_rss_mb"],
        "pipeline_quarter_peaks_mb": quarters, "memory_flat": flat, **machine(),
    })


if __name__ == "__main__":
    main()

"""Scanning: hash found pictures, match them against the registry, record media and matches once.

Runs on SQLite and PostgreSQL (the `engine` fixture is parametrised over both).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from hashes.compute import HashOptions, hash_bytes
from hashes.hashfile import HashFileWriter, make_header, read_hash_file
from monitor import db, registry
from monitor.cli import app
from monitor.demo import pictures as P
from monitor.matching import Matcher
from monitor.models import AuditEntry, Match, Media, MediaSighting
from monitor.scan import scan_files

runner = CliRunner()


def _hash_file(images) -> str:
    buf = io.StringIO()
    w = HashFileWriter(buf, "jsonl", make_header(HashOptions().algorithms, "register", "test"))
    for img in images:
        w.write(hash_bytes(P.jpeg_bytes(img, 92), options=HashOptions(regions="register")))
    w.close()
    return buf.getvalue()


@pytest.fixture
def case(engine):
    with db.transaction(engine) as s:
        new = registry.create_case(s, actor="test")
        registry.register_hash_file(s, new.reference, read_hash_file(_hash_file([P.picture(1), P.picture(2)])),
                                    actor="test")
    return new.reference


@pytest.fixture
def found(tmp_path: Path) -> Path:
    d = tmp_path / "found"
    d.mkdir()
    (d / "small.jpg").write_bytes(P.jpeg_bytes(P.recompressed(P.picture(1)), 60))
    (d / "mirror.jpg").write_bytes(P.jpeg_bytes(P.mirrored(P.picture(2))))
    (d / "screenshot.png").write_bytes(P.png_bytes(P.phone_screenshot(P.picture(1))))
    for seed in (50, 51, 52):
        (d / f"other-{seed}.jpg").write_bytes(P.jpeg_bytes(P.picture(seed)))
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    return d


def _scan(engine, folder: Path):
    matcher = Matcher(engine)
    try:
        return scan_files(engine, matcher, sorted(folder.iterdir()), actor="test", jobs=1)
    finally:
        matcher.close()


def test_scan_finds_altered_copies_and_nothing_else(engine, case, found):
    report = _scan(engine, found)
    assert {Path(m["file"]).name for m in report.matches} == {"small.jpg", "mirror.jpg", "screenshot.png"}
    assert all(m["case"] == case and m["new"] for m in report.matches)
    assert [f["error"] for f in report.failures] in (["truncated"], ["corrupt"])  # one bad file, batch went on
    assert report.scanned == 6
    with db.session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Match)) == 3
        assert s.scalar(select(func.count()).select_from(Media)) == 6
        actions = s.scalars(select(AuditEntry.action)).all()
        assert actions.count("match.recorded") == 3


def test_rescanning_adds_no_second_match(engine, case, found):
    first = _scan(engine, found)
    again = _scan(engine, found)
    assert len(again.matches) == len(first.matches) and again.new_matches == 0
    with db.session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Match)) == 3
        assert s.scalar(select(func.count()).select_from(Media)) == 6
        assert s.scalar(select(func.count()).select_from(MediaSighting)) == 6


def test_same_bytes_in_two_places_are_one_media_with_two_sightings(engine, case, found, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "copy.jpg").write_bytes((found / "small.jpg").read_bytes())
    _scan(engine, found)
    report = _scan(engine, other)
    assert report.matches and not report.matches[0]["new"]
    with db.session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Media)) == 6
        assert s.scalar(select(func.count()).select_from(MediaSighting)) == 7


def test_withdrawn_case_never_matches_again(engine, case, found):
    matcher = Matcher(engine)
    try:
        with db.transaction(engine) as s:
            registry.withdraw_case(s, case, actor="test")
        # the very next query, through the index this process already holds
        report = scan_files(engine, matcher, sorted(found.iterdir()), actor="test", jobs=1)
        assert report.matches == []
    finally:
        matcher.close()


def test_withdrawal_by_another_process_is_respected(engine, case, found):
    matcher = Matcher(engine)
    try:
        matcher.close()  # stop listening: as if the withdrawal happened in another process
        with db.transaction(engine) as s:
            registry.withdraw_case(s, case, actor="test")
        report = scan_files(engine, matcher, sorted(found.iterdir()), actor="test", jobs=1)
        assert report.matches == []  # re-checked against the database before recording
        assert matcher.refresh() is True and len(matcher) == 0
    finally:
        matcher.close()


def test_hashes_registered_after_start_match_at_once(engine, found):
    matcher = Matcher(engine)
    try:
        assert len(matcher) == 0
        with db.transaction(engine) as s:
            new = registry.create_case(s, actor="test")
            registry.register_hash_file(s, new.reference, read_hash_file(_hash_file([P.picture(2)])), actor="test")
        report = scan_files(engine, matcher, [found / "mirror.jpg"], actor="test", jobs=1)
        assert [m["case"] for m in report.matches] == [new.reference]
    finally:
        matcher.close()


def test_scan_command_json_and_exit_codes(env, monkeypatch, case, found):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    result = runner.invoke(app, ["scan", str(found), "--json", "--jobs", "1"])
    assert result.exit_code == 1  # the broken file
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["failed"] == 1 and data["new_matches"] == 3
    (found / "broken.jpg").unlink()
    result = runner.invoke(app, ["scan", str(found), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "3 match(es), 0 new" in result.stdout


def test_the_very_same_file_is_found_by_its_exact_hash(engine, tmp_path):
    import hashlib

    data = P.jpeg_bytes(P.picture(3), 92)
    # only the exact hashes are registered, so nothing but the exact path can find it
    header = json.dumps(make_header(["md5", "sha256"], "none", "test"))
    record = json.dumps({"image": 1, "md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest(),
                         "hashes": []})
    with db.transaction(engine) as s:
        new = registry.create_case(s, actor="test")
        registry.register_hash_file(s, new.reference, read_hash_file(header + "\n" + record + "\n"), actor="test")
    folder = tmp_path / "exact"
    folder.mkdir()
    (folder / "same.jpg").write_bytes(data)
    (folder / "same-again.jpg").write_bytes(data)
    (folder / "recompressed.jpg").write_bytes(P.jpeg_bytes(P.picture(3), 60))
    report = _scan(engine, folder)
    assert sorted(Path(m["file"]).name for m in report.matches) == ["same-again.jpg", "same.jpg"]
    assert {m["rule"] for m in report.matches} == {"identical-file"} and {m["case"] for m in report.matches} == {new.reference}


def test_matcher_equals_pairwise_policy_over_a_registry_large_enough_for_tables(engine):
    """The matcher's index (tables for the narrow radii, scans for the wide ones, each query hash at
    its own radius) must find exactly what comparing every pair with the policy finds."""
    from collections import defaultdict

    from hashes.policy import default_policy
    from hashes.types import HashValue
    from monitor.models import RegisteredHash

    originals = [P.picture(100 + i, (400, 300)) for i in range(72)]  # 72 x ~64 hashes: > 4096 rows
    with db.transaction(engine) as s:
        for part in (originals[:36], originals[36:]):
            ref = registry.create_case(s, actor="test").reference
            registry.register_hash_file(s, ref, read_hash_file(_hash_file(part)), actor="test")
    found = []
    for i in range(0, 72, 9):
        img = originals[i]
        found += [P.recompressed(img), P.mirrored(img), P.cropped(img), P.phone_screenshot(img)]
    found += [P.picture(900 + i, (400, 300)) for i in range(4)]
    queries = [hash_bytes(P.jpeg_bytes(img, 85), options=HashOptions(regions="query")) for img in found]

    policy = default_policy()
    with db.session(engine) as s:
        rows = s.execute(select(RegisteredHash)).scalars().all()
        by_original: dict[tuple[int, int, int], list[HashValue]] = defaultdict(list)
        original_of: dict[int, tuple[int, int, int]] = {}
        for r in rows:
            original_of[r.id] = (r.case_id, r.submission_id, r.image_number)
            by_original[original_of[r.id]].append(HashValue(r.algorithm, r.value, r.quality, r.region))
        assert len(rows) > 4096
        matcher = Matcher(engine)
        try:
            got = matcher.match_many(s, queries)
        finally:
            matcher.close()
    for q, matches in zip(queries, got):
        want = {}
        for original, hashes in by_original.items():
            decision = policy.evaluate(q, hashes)
            if decision.matched:
                want[original] = decision.evidence
        assert {original_of[m.registered_hash_id]: m.evidence for m in matches} == want
    assert sum(1 for m in got if m) >= 24  # most altered copies are found; the strangers are not
    assert not any(got[-4:])

"""`ncii hash` and `ncii compare` as a victim would use them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hashes.hashfile import read_hash_file
from monitor.cli import app
from monitor.demo.pictures import cropped, jpeg_bytes, mirrored, phone_screenshot, picture, png_bytes
from monitor.offline import NetworkForbidden, no_network

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PHOTOS = SHARED / "photos"
runner = CliRunner()


@pytest.fixture()
def pictures(tmp_path: Path) -> Path:
    folder = tmp_path / "private photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "holiday.jpg").write_bytes(jpeg_bytes(picture(1)))
    (folder / "beach.png").write_bytes(png_bytes(picture(2, (640, 480))))
    (folder / "sub" / "nested.jpg").write_bytes(jpeg_bytes(picture(3)))
    (folder / "notes.txt").write_text("not a picture")
    return folder


def _hash_file_values_only(text: str) -> None:
    """Every value in a hash file is a hash, a quality, a region label, a number or the header."""
    lines = text.splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "ncii-hashes"
    for line in lines[1:]:
        rec = json.loads(line)
        assert set(rec) <= {"image", "md5", "sha256", "hashes", "name"}
        for h in rec["hashes"]:
            assert set(h) <= {"alg", "hash", "quality", "region"}
            assert all(c in "0123456789abcdef" for c in h["hash"]) and len(h["hash"]) <= 64


def test_hash_folder_writes_hashes_only_and_no_names(pictures: Path, tmp_path: Path):
    out = tmp_path / "hashes.jsonl"
    result = runner.invoke(app, ["hash", str(pictures), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    _hash_file_values_only(text)
    assert "holiday" not in text and "beach" not in text and "private" not in text
    hf = read_hash_file(text)
    assert len(hf.images) == 2  # not recursive: sub/ is left out, notes.txt is not an image
    for im in hf.images:
        pdq = [h for h in im.hashes if h.algorithm == "pdq"]
        assert pdq[0].region == "full" and pdq[0].quality is not None and pdq[0].quality >= 50
        assert {h.algorithm for h in im.hashes} >= {"md5", "sha256", "pdq", "phash", "dhash"}


def test_recursive_and_keep_names(pictures: Path, tmp_path: Path):
    out = tmp_path / "h.jsonl"
    result = runner.invoke(app, ["hash", str(pictures), "-r", "--keep-names", "-o", str(out)])
    assert result.exit_code == 0, result.output
    names = [im.name for im in read_hash_file(out.read_text()).images]
    assert names == ["beach.png", "holiday.jpg", "nested.jpg"]


def test_bad_files_get_one_error_line_each_and_exit_1(pictures: Path, tmp_path: Path):
    bad = pictures / "broken.jpg"
    bad.write_bytes(jpeg_bytes(picture(4))[:300])
    fake = pictures / "fake.png"
    fake.write_text("<html>not an image</html>")
    out = tmp_path / "h.jsonl"
    result = runner.invoke(app, ["hash", str(pictures), "-o", str(out), "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["hashed"] == 2 and summary["failed"] == 2
    problems = {Path(e["file"]).name: e for e in summary["errors"]}
    assert problems["broken.jpg"]["error"] in ("truncated", "corrupt")
    assert problems["fake.png"]["error"] == "not-an-image"
    assert len(read_hash_file(out.read_text()).images) == 2  # the good ones were still written


def test_usage_errors_exit_2(pictures: Path):
    assert runner.invoke(app, ["hash"]).exit_code == 2
    assert runner.invoke(app, ["hash", str(pictures), "--format", "xml"]).exit_code == 2
    assert runner.invoke(app, ["hash", str(pictures), "--algorithms", "md4"]).exit_code == 2
    assert runner.invoke(app, ["hash", str(pictures), "--json"]).exit_code == 2  # --json needs -o


@pytest.mark.parametrize("fmt, check", [
    ("hma", lambda t: all(line.startswith("pdq ") and len(line) == 68 for line in t.splitlines())),
    ("stopncii", lambda t: json.loads(t)["hashRecords"][0]["signalType"] == "ImagePDQ"),
    ("csv", lambda t: t.startswith("image,algorithm,region,hash,quality")),
])
def test_export_formats(pictures: Path, fmt, check):
    result = runner.invoke(app, ["hash", str(pictures / "holiday.jpg"), "--format", fmt, "-q"])
    assert result.exit_code == 0, result.output
    assert check(result.stdout)


def test_hashing_is_offline():
    with no_network():
        with pytest.raises(NetworkForbidden):
            socket.create_connection(("127.0.0.1", 9))
        with pytest.raises(NetworkForbidden):
            socket.getaddrinfo("localhost", 80)
    socket.getaddrinfo("localhost", 80)  # restored afterwards


def test_compare_says_match_for_altered_copies_and_not_for_others(tmp_path: Path):
    orig = tmp_path / "orig.jpg"
    orig.write_bytes(jpeg_bytes(picture(7)))
    for name, img in [("mirror.jpg", mirrored(picture(7))), ("crop.jpg", cropped(picture(7), 0.10)),
                      ("screenshot.png", phone_screenshot(picture(7)))]:
        (tmp_path / name).write_bytes(jpeg_bytes(img) if name.endswith("jpg") else png_bytes(img))
        result = runner.invoke(app, ["compare", str(orig), str(tmp_path / name), "--json"])
        assert result.exit_code == 0, (name, result.output)
        assert json.loads(result.stdout.splitlines()[0])["matched"] is True
    other = tmp_path / "other.jpg"
    other.write_bytes(jpeg_bytes(picture(8)))
    result = runner.invoke(app, ["compare", str(orig), str(other)])
    assert result.exit_code == 1
    assert "no match" in result.stdout


def test_compare_accepts_a_hash_file(tmp_path: Path):
    orig = tmp_path / "orig.jpg"
    orig.write_bytes(jpeg_bytes(picture(9)))
    hf = tmp_path / "h.jsonl"
    assert runner.invoke(app, ["hash", str(orig), "-o", str(hf), "-q"]).exit_code == 0
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(jpeg_bytes(picture(9), quality=40))
    result = runner.invoke(app, ["compare", str(hf), str(copy)])
    assert result.exit_code == 0, result.output


@pytest.mark.skipif(not PHOTOS.is_dir(), reason=f"shared photos not found at {PHOTOS}")
def test_console_script_on_the_shared_photos(tmp_path: Path):
    out = tmp_path / "photos.jsonl"
    proc = subprocess.run([sys.executable, "-m", "monitor.cli", "hash", str(PHOTOS / "set5"), str(PHOTOS / "set14"),
                           "-o", str(out), "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["hashed"] == 19
    text = out.read_text()
    _hash_file_values_only(text)
    assert "img_" not in text and "SRF" not in text
    assert len(text) < 19 * 10_000  # hashes only: 64 PDQ values (~130 bytes of JSON each) per image, nothing like a picture

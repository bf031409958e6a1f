"""The hash file: written by the victim's CLI, read by the registry; errors name the line."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashes.hashfile import (
    FORMAT_VERSION,
    HashFileWriter,
    InvalidHashFile,
    make_header,
    read_hash_file,
)
from hashes.types import HashValue, ImageHashes

PDQ = "d8f8f0cee0f4a84f0637022a078f67f0b36e2ed596621e1d33e6339c4e9c9b22"


def _image(pdq: str = PDQ, quality: int = 90) -> ImageHashes:
    return ImageHashes(
        md5="0" * 32, sha256="1" * 64,
        hashes=[HashValue("md5", "0" * 32), HashValue("sha256", "1" * 64),
                HashValue("pdq", pdq, quality), HashValue("pdq", "f" * 64, 80, "crop:0.80:c"),
                HashValue("phash", "c3a1b26f0e4d3c5a")])


def _write(fmt: str, images: list[ImageHashes], names: list[str | None] | None = None) -> str:
    buf = io.StringIO()
    w = HashFileWriter(buf, fmt, make_header(["md5", "sha256", "pdq", "phash"], "register", "ncii test"))
    for i, im in enumerate(images):
        w.write(im, names[i] if names else None)
    w.close()
    return buf.getvalue()


def test_roundtrip_keeps_every_hash_quality_and_region():
    text = _write("jsonl", [_image(), _image("a" * 64, 55)])
    hf = read_hash_file(text)
    assert hf.header["version"] == FORMAT_VERSION
    assert [im.number for im in hf.images] == [1, 2]
    first = hf.images[0]
    assert first.md5 == "0" * 32 and first.sha256 == "1" * 64
    assert HashValue("pdq", PDQ, 90) in first.hashes
    assert HashValue("pdq", "f" * 64, 80, "crop:0.80:c") in first.hashes
    assert HashValue("phash", "c3a1b26f0e4d3c5a") in first.hashes


def test_names_are_left_out_unless_asked():
    without = _write("jsonl", [_image()])
    assert '"name"' not in without
    with_names = _write("jsonl", [_image()], ["holiday.jpg"])
    assert read_hash_file(with_names).images[0].name == "holiday.jpg"


def test_hma_export_has_whole_picture_pdq_only_and_reads_back():
    text = _write("hma", [_image(), _image()])  # the same picture twice: one line
    assert text == f"pdq {PDQ}\n"
    hf = read_hash_file(text)
    assert hf.source_format == "hma"
    assert hf.images[0].hashes == [HashValue("pdq", PDQ)]


def test_stopncii_export_shape():
    doc = json.loads(_write("stopncii", [_image()]))
    assert doc == {"count": 1, "hashRecords": [{"signalType": "ImagePDQ", "hashValue": PDQ}]}


def test_csv_export_one_row_per_hash():
    rows = _write("csv", [_image()]).splitlines()
    assert rows[0] == "image,algorithm,region,hash,quality"
    assert f"1,pdq,full,{PDQ},90" in rows
    assert len(rows) == 1 + 5


@pytest.mark.parametrize("line2, problem", [
    ('{"image":1,"hashes":[{"alg":"pdq","hash":"abc"}]}', "expected 64 hex digits"),
    ('{"image":1,"hashes":[{"alg":"nope","hash":"abc"}]}', "unknown algorithm"),
    ('{"image":1,"hashes":[{"alg":"phash","hash":"zzzzzzzzzzzzzzzz"}]}', "not hexadecimal"),
    ('{"image":0,"hashes":[]}', "positive whole number"),
    ('{"image":1,"hashes":[]}', "carries no hashes"),
    ('{"image":1,"hashes":[{"alg":"pdq","hash":"' + PDQ + '","quality":101}]}', "0 to 100"),
    ('{"image":1,"hashes":[{"alg":"pdq","hash":"' + PDQ + '","region":"<script>"}]}', "region"),
    ('not json', "not valid JSON"),
    ('[1,2]', "JSON object"),
])
def test_bad_lines_are_rejected_with_their_line_number(line2, problem):
    header = json.dumps(make_header(["pdq"], "none", "t"))
    with pytest.raises(InvalidHashFile) as e:
        read_hash_file(header + "\n" + line2 + "\n")
    assert e.value.line == 2
    assert problem in str(e.value)


def test_newer_version_asks_for_an_upgrade():
    header = dict(make_header(["pdq"], "none", "t"), version=FORMAT_VERSION + 1)
    with pytest.raises(InvalidHashFile, match="upgrade"):
        read_hash_file(json.dumps(header) + "\n")


def test_duplicate_image_numbers_and_empty_files_are_errors():
    header = json.dumps(make_header(["pdq"], "none", "t"))
    rec = '{"image":1,"hashes":[{"alg":"phash","hash":"0123456789abcdef"}]}'
    with pytest.raises(InvalidHashFile, match="twice"):
        read_hash_file("\n".join([header, rec, rec]))
    with pytest.raises(InvalidHashFile, match="empty"):
        read_hash_file("\n\n")
    with pytest.raises(InvalidHashFile, match="HMA"):
        read_hash_file("md5 0123\n")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_gives_a_clear_error_or_a_valid_file(text):
    try:
        hf = read_hash_file(text)
    except InvalidHashFile as e:
        assert e.problem
    else:
        assert hf.images and all(im.hashes for im in hf.images)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, 100)), min_size=1, max_size=5))
def test_any_valid_hashes_roundtrip(items):
    images = [ImageHashes(md5="a" * 32, sha256="b" * 64, hashes=[HashValue("pdq", v.hex(), q)]) for v, q in items]
    hf = read_hash_file(_write("jsonl", images))
    assert [im.hashes for im in hf.images] == [[HashValue("pdq", v.hex(), q)] for v, q in items]

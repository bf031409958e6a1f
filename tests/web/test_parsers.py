"""Property tests of what the web app parses from people: source settings text and uploads."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.web.deps import BadInput
from monitor.web.hashupload import read_uploaded_hash_file
from monitor.web.routes.sources import parse_options
from tests.web.conftest import make_hash_file


@given(st.text(max_size=300))
def test_settings_text_parses_or_names_the_bad_line(text):
    try:
        options = parse_options(text)
    except BadInput as e:
        assert str(e).startswith("settings line ")
        return
    for key, value in options.items():
        assert key and "=" not in key and value == value.strip()


@given(st.binary(max_size=2000))
@settings(max_examples=200)
def test_any_upload_is_a_hash_file_or_a_clear_refusal(data):
    try:
        read_uploaded_hash_file(data)
    except BadInput as e:
        assert e.status in (413, 415, 422) and str(e)


def test_a_real_hash_file_is_accepted_and_a_picture_refused():
    from monitor.demo import pictures as P

    assert len(read_uploaded_hash_file(make_hash_file(5)).images) == 1
    for picture in (P.jpeg_bytes(P.picture(5), 80), P.png_bytes(P.picture(5))):
        try:
            read_uploaded_hash_file(picture)
        except BadInput as e:
            assert e.status == 415 and "ncii hash" in str(e)
        else:
            raise AssertionError("a picture was accepted")

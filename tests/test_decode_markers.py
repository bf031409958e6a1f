"""hashes.decode's vectorised JPEG marker search equals the plain byte searches it replaces."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hashes.decode import _jpeg_markers_after


def reference(data: bytes, pos: int) -> tuple[int, int]:
    eoi = data.find(b"\xff\xd9", pos)
    return eoi, data.count(b"\xff\xda", pos, eoi if eoi >= 0 else len(data))


# bytes drawn mostly from the marker alphabet, so EOI, SOS, runs of 0xFF and stuffing all occur
marker_bytes = st.lists(st.sampled_from([0xFF, 0xD9, 0xDA, 0x00, 0xD0, 0x42]), max_size=200).map(bytes)


@settings(max_examples=500, deadline=None)
@given(data=marker_bytes | st.binary(max_size=300), pos=st.integers(0, 320))
def test_marker_search_equals_byte_search(data, pos):
    assert _jpeg_markers_after(data, pos) == reference(data, pos)


def test_marker_search_examples():
    assert _jpeg_markers_after(b"\xff\xda..\xff\xff\xd9\xff\xda", 0) == (5, 1)  # fill byte before EOI; SOS after it not counted
    assert _jpeg_markers_after(b"\xff\xda\xff\xda", 1) == (-1, 1)  # truncated: no EOI
    assert _jpeg_markers_after(b"", 0) == (-1, 0)

"""Reading an uploaded hash file: only files made by `ncii hash` (or HMA lists); never images."""

from __future__ import annotations

from hashes.decode import sniff_format
from hashes.hashfile import HashFile, InvalidHashFile, read_hash_file
from monitor.web.deps import BadInput

MAX_HASH_FILE_BYTES = 5 * 1024 * 1024
IMAGE_REFUSED = ("This is a picture, not a hash file. Pictures are never uploaded: run `ncii hash` on your own "
                 "device and upload the hash file it writes (docs/hash-file.md). The picture was not kept.")


def read_uploaded_hash_file(data: bytes) -> HashFile:
    """Parse an upload as a hash file; BadInput with a clear message for anything else."""
    if not data:
        raise BadInput("the file is empty: choose the hash file made by `ncii hash`", 422)
    if len(data) > MAX_HASH_FILE_BYTES:
        raise BadInput(f"the file is larger than {MAX_HASH_FILE_BYTES // 2**20} MiB: that is not a hash file", 413)
    if sniff_format(data[:4096]) is not None:
        raise BadInput(IMAGE_REFUSED, 415)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("this is not a hash file (it is not text): upload the file made by `ncii hash`", 415) from None
    try:
        return read_hash_file(text)
    except InvalidHashFile as e:
        raise BadInput(f"this is not a valid hash file: {e}", 422) from None

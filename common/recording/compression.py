"""Stored blobs: one tag byte naming the codec, then the payload.

zstd (level 3) was chosen on Claude Code's real bodies (docs/adr/0090): it compresses
as well as zlib level 6 (tool definitions 74 KB -> 25 KB, against 24 KB) at a fifth of
the CPU (0.55 ms against 3 ms). Blobs too small to gain are stored as they are. The tag
lets a later release change codec without rewriting what is stored.
"""
import threading

import zstandard

ZSTD, PLAIN = b"z", b"p"
LEVEL = 3
MIN_BYTES = 64  # below this, zstd's frame costs more than it saves

# zstd contexts are not safe to share between threads (the dashboard serves from several).
_local = threading.local()


def _contexts():
    try:
        return _local.contexts
    except AttributeError:
        _local.contexts = (zstandard.ZstdCompressor(level=LEVEL), zstandard.ZstdDecompressor())
        return _local.contexts


def pack(data):
    """`data` (bytes) as a stored blob."""
    if len(data) >= MIN_BYTES:
        packed = _contexts()[0].compress(data)
        if len(packed) < len(data):
            return ZSTD + packed
    return PLAIN + data


def unpack(blob):
    """The bytes a blob of `pack` holds."""
    blob = bytes(blob)  # PostgreSQL hands out memoryviews
    tag, payload = blob[:1], blob[1:]
    if tag == ZSTD:
        return _contexts()[1].decompress(payload)
    if tag == PLAIN:
        return payload
    raise ValueError(f"unknown blob codec {tag!r}")

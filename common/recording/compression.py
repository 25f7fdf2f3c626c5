"""Stored blobs: one tag byte naming the codec, then the payload.

zstd (level 3) was chosen on Claude Code's real bodies (docs/adr/0090): it compresses
as well as zlib level 6 (tool definitions 74 KB -> 25 KB, against 24 KB) at a fifth of
the CPU (0.55 ms against 3 ms). Blobs too small to gain are stored as they are. The tag
lets a later release change codec without rewriting what is stored.

The codec is the standard library's `compression.zstd` (Python 3.14+) or its backport
`backports.zstd` on older Pythons: the same API and the same frames, a 1.4 MB wheel
where the `zstandard` package's ships 24 MB (two backends with debug symbols), which
alone broke the images' size budget.
"""
import threading

try:
    from compression import zstd
except ImportError:  # Python < 3.14
    from backports import zstd

ZSTD, PLAIN = b"z", b"p"
LEVEL = 3
MIN_BYTES = 64  # below this, zstd's frame costs more than it saves

# A compression context is not safe to share between threads (the dashboard serves from
# several); keeping one per thread saves its setup on every piece. A decompressor reads
# one frame only, so each blob gets its own.
_local = threading.local()


def _compressor():
    try:
        return _local.compressor
    except AttributeError:
        _local.compressor = zstd.ZstdCompressor(level=LEVEL)
        return _local.compressor


def pack(data):
    """`data` (bytes) as a stored blob."""
    if len(data) >= MIN_BYTES:
        packed = _compressor().compress(data, mode=zstd.ZstdCompressor.FLUSH_FRAME)
        if len(packed) < len(data):
            return ZSTD + packed
    return PLAIN + data


def unpack(blob):
    """The bytes a blob of `pack` holds."""
    blob = bytes(blob)  # PostgreSQL hands out memoryviews
    tag, payload = blob[:1], blob[1:]
    if tag == ZSTD:
        return zstd.decompress(payload)
    if tag == PLAIN:
        return payload
    raise ValueError(f"unknown blob codec {tag!r}")

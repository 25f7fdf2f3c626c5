"""Keep some free heap at the top instead of handing it back to the kernel at once.

A Claude Code request body is 100 KB to 1 MB. With recording on, each one stays alive
until the worker has written it into the writer process's pipe, so freed bodies leave
the top of glibc's heap free again and again; glibc gives that back to the kernel
(trims it), and the next body faults it back in, page by page: 28 page faults and about
0.1 ms of the worker's CPU per 300 KB request (docs/recording-performance.md). A top pad
of 16 MB keeps that much at the top, at the cost of that much resident memory at most.
"""
import ctypes
import ctypes.util

M_TOP_PAD = -2  # glibc's malloc.h
TOP_PAD_BYTES = 16 << 20


def keep_top_pad(size=TOP_PAD_BYTES):
    """Ask glibc's malloc to keep `size` bytes free at the top of the heap; True if it
    agreed. Elsewhere (musl, macOS) there is no mallopt, and nothing changes."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_TOP_PAD, size) == 1

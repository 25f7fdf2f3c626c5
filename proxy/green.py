"""The real OS primitives under gevent's monkey-patching, in one place.

gunicorn's gevent worker patches `time.sleep`, `_thread` and `os` so that they
yield to other greenlets. Code that runs in a real OS thread, or that must not
yield (a lock shared with such a thread, a child process spawned from the hub),
needs the originals; outside gevent (tests, the writer process) they are the
ordinary functions.
"""
import importlib


def original(module, name):
    """`module.name` as it was before gevent patched it (or as it is, without gevent)."""
    try:
        from gevent.monkey import get_original
    except ImportError:
        return getattr(importlib.import_module(module), name)
    return get_original(module, name)


def real_lock():
    """A lock that blocks the OS thread, shared safely by a real thread and the hub."""
    return original("_thread", "allocate_lock")()


def real_rlock():
    """A re-entrant lock that blocks the OS thread."""
    return original("_thread", "RLock")()

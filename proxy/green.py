"""The real OS primitives under gevent's monkey-patching, in one place.

gunicorn's gevent worker patches `time.sleep`, `_thread` and `os` so that they
yield to other greenlets. Code that runs in a real OS thread, or that must not
yield (a lock shared with such a thread, a child process spawned from the hub),
needs the originals; outside gevent (tests, the writer process) they are the
ordinary functions.
"""
import contextlib
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


def under_gevent():
    """True in a process gevent has monkey-patched (a gunicorn gevent worker)."""
    try:
        from gevent.monkey import is_module_patched
    except ImportError:
        return False
    return is_module_patched("socket")


def spawn(function):
    """Run `function` concurrently: a greenlet under gevent, else a daemon thread."""
    if under_gevent():
        import gevent
        return gevent.spawn(function)
    import threading
    thread = threading.Thread(target=function, daemon=True)
    thread.start()
    return thread


def event():
    """An Event that greenlets (under gevent) or threads can wait on."""
    if under_gevent():
        import gevent.event
        return gevent.event.Event()
    import threading
    return threading.Event()


def wait_readable(fd, timeout=None):
    """Wait until `fd` can be read (or is closed): cooperatively under gevent."""
    if under_gevent():
        from gevent.socket import wait_read
        wait_read(fd, timeout=timeout)
        return
    import select
    select.select([fd], [], [], timeout)


def wait_writable(fd, timeout=None):
    """Wait until `fd` can be written: cooperatively under gevent."""
    if under_gevent():
        from gevent.socket import wait_write
        wait_write(fd, timeout=timeout)
        return
    import select
    select.select([], [fd], [], timeout)


@contextlib.contextmanager
def deadline(seconds, exception):
    """Raise `exception` (an instance) in the block if it runs past `seconds`.

    Under gevent a greenlet blocked on a socket is woken with it; elsewhere (tests of
    the WSGI app on in-memory bodies) nothing blocks, and no limit is set.
    """
    if not under_gevent():
        yield
        return
    import gevent
    with gevent.Timeout(seconds, exception):
        yield


def kill(task):
    """Stop what `spawn` started, without waiting: a greenlet is killed; a thread (outside
    gevent, where nothing blocks on a socket for long) is left to finish."""
    if hasattr(task, "kill"):
        task.kill(block=False)


def join(task, timeout):
    """Wait for what `spawn` started, at most `timeout` seconds."""
    task.join(timeout)

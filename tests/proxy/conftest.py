"""Fixtures of the proxy tests: the fake upstream, a running proxy, SDK clients, rows."""
import os
import socket
import threading

import anthropic
import pytest

from tests.fake_upstream import start_fake_upstream
from tests.proxy_server import running_proxy

MODEL = "claude-haiku-4-5-20251001"


@pytest.fixture(scope="module")
def upstream():
    """The fake Anthropic API, one per test module."""
    with start_fake_upstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def proxy(upstream, tmp_path_factory):
    """One running proxy in front of `upstream`, recording to a SQLite file."""
    home = tmp_path_factory.mktemp("proxy")
    env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": f"sqlite:///{home}/nexus.db",
           "NEXUS_MAX_BODY_BYTES": "200000", "CLAUDE_API_TIMEOUT": "2500"}
    with running_proxy(env, cwd=str(home)) as running:
        running.db_url = env["DATABASE_URL"]
        yield running


def sdk(base_url, **kwargs):
    """An official SDK client with no retries of its own."""
    return anthropic.Anthropic(base_url=base_url, api_key="sk-ant-test-key", max_retries=0,
                               **kwargs)


def free_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def established_to(port):
    """How many ESTABLISHED TCP connections on this machine go to 127.0.0.1:`port`."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                remote, state = fields[2], fields[3]
                if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


class TcpRelay:
    """A TCP forwarder from a fixed loopback port to a target, that can be cut and restored.

    Points DATABASE_URL at a database that can "go down" (connections refused and
    existing ones reset) without touching the machine's shared PostgreSQL server.
    """

    def __init__(self, target_port, port=None):
        self.target_port = target_port
        self.port = port or free_port()
        self.listener = None
        self.conns = []
        self.lock = threading.Lock()

    def start(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()
        return self

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.listener is not listener:
                client.close()
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            src.close()  # dst is the other thread's src

    def stop(self):
        """The database goes away: refuse new connections, cut the open ones."""
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

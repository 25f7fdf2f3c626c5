"""Tools of the reliability suite: raw HTTP, process figures from /proc, a private PostgreSQL.

Everything here talks to real sockets and real processes; nothing patches the
proxy. `PrivatePostgres` is a throwaway cluster of its own (initdb into a
temporary directory, on a free port), so that a test may stop and start a
PostgreSQL server without touching the machine's shared one.
"""
import glob
import http.client
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from tests.proxy.conftest import MODEL, free_port

PROMPT = [{"role": "user", "content": "Tell me about otters"}]


def message_body(stream=False, text="Tell me about otters", **extra):
    """A valid Messages API request body (bytes)."""
    return json.dumps({"model": MODEL, "max_tokens": 64, "stream": stream,
                       "messages": [{"role": "user", "content": text}], **extra}).encode()


def post(port, body=None, headers=None, path="/v1/messages", timeout=15, method="POST"):
    """(status, headers dict lower-cased, body bytes) of one request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, message_body() if body is None else body,
                     {"content-type": "application/json", "x-api-key": "sk-ant-reliability",
                      **(headers or {})})
        response = conn.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        conn.close()


def raw_exchange(port, data, timeout=10):
    """Send raw bytes, read until the answer is complete or the server closes; the bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while True:
            try:
                piece = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not piece:
                break
            answer += piece
            head, sep, rest = answer.partition(b"\r\n\r\n")
            if sep:
                length = [line.split(b":", 1)[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if length and len(rest) >= int(length[0]):
                    break
        return answer


def parse_answer(answer):
    """(status, headers dict lower-cased, body bytes) of a raw HTTP/1.1 answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def anthropic_error(body):
    """The error dict of an Anthropic-shaped error body, or None."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if isinstance(value, dict) and value.get("type") == "error" and \
            isinstance(value.get("error"), dict) and value["error"].get("type") and \
            isinstance(value["error"].get("message"), str):
        return value["error"]
    return None


def sse_events(body):
    """The event names of an SSE body, in order."""
    return [line[7:].strip() for line in body.decode("utf-8", "replace").splitlines()
            if line.startswith("event: ")]


# -- process figures ---------------------------------------------------------------------
def rss_bytes(pid):
    """Resident memory of `pid` (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fd_count(pid):
    """Open file descriptors of `pid`."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(predicate, timeout, interval=0.05):
    """Poll `predicate` until it is true or `timeout` passes; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def require(condition, reason):
    """Skip when a real part is missing, unless NEXUS_REQUIRE_ALL says it must be there."""
    if not condition:
        if os.environ.get("NEXUS_REQUIRE_ALL"):
            pytest.fail(reason)
        pytest.skip(reason)


# -- a PostgreSQL server of our own ------------------------------------------------------
def postgres_bin():
    """The directory of the newest installed PostgreSQL server binaries, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory on a free port: ours to stop and start.

    The server refuses to run as root, so as root it runs as the `postgres` user.
    """

    def __init__(self):
        self.bin = postgres_bin()
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="nexus-pg-")
        self.data = os.path.join(self.dir, "data")
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args, timeout=60):
        command = [os.path.join(self.bin, args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              cwd=self.dir)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}\n{done.stderr}")

    def init(self):
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        return self.start()

    def start(self):
        """Start the server and wait until it accepts connections."""
        options = (f"-c port={self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.dir} -c fsync=off "
                   f"-c shared_buffers=16MB -c max_connections=40")
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l",
                  os.path.join(self.dir, "server.log"), "-w", "-t", "30", "start")
        return self

    def stop(self, mode="fast"):
        """Stop the server (`fast` ends open sessions, as a restart or a crash would)."""
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop")

    def destroy(self):
        try:
            self.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def note(test, **figures):
    """Append a test's figures to $NEXUS_RELIABILITY_FIGURES (JSON lines), when it is set.

    docs/reliability.md quotes these: requests sent, recorded, answered during a fault.
    """
    path = os.environ.get("NEXUS_RELIABILITY_FIGURES")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": test, **figures}) + "\n")


def metric(text, name):
    """The summed value of the Prometheus series `name` (any labels) in `text`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total

"""Run the real proxy (`nexus-proxy`: migrations, then gunicorn with gevent workers) for tests.

    with running_proxy({"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": db_url}) as proxy:
        client = anthropic.Anthropic(base_url=proxy.url, api_key="sk-test")

The proxy listens on 127.0.0.1 on a socket the test binds to port 0 and hands to
gunicorn (`--bind fd://N`), so there is no race for a port. It runs in a fresh
temporary working directory (so relative defaults such as `data/` and
`credentials/` land there) and in its own process group, which `stop()`
ends. Its logs (JSON lines on stderr) are kept in a file: `log_lines()`.
"""
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RunningProxy:
    """A started proxy: `url`, `port`, `pid` (the gunicorn master), `cwd`, logs."""

    def __init__(self, process, port, cwd, log_path):
        self.process = process
        self.pid = process.pid
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.cwd = cwd
        self.log_path = log_path

    def log_lines(self):
        """Every line the proxy has logged so far (JSON lines, plus anything raw)."""
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()

    def log_events(self):
        """The log lines that are JSON objects, parsed."""
        events = []
        for line in self.log_lines():
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                events.append(value)
        return events

    def get(self, path, timeout=10):
        """(status, headers dict, body bytes) of a GET to the proxy."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def worker_pids(self):
        """The pids of the master's live worker processes."""
        pids = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.pid and fields[0] != "Z":
                    pids.append(int(name))
        return sorted(pids)

    def signal(self, signum):
        """Send `signum` to the gunicorn master."""
        os.kill(self.pid, signum)

    def wait(self, timeout):
        """Wait for the master to exit; its exit code."""
        return self.process.wait(timeout=timeout)

    def kill_all(self):
        """kill -9 the master and its workers at once (a crash)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout=40):
        """SIGTERM (graceful), then SIGKILL the process group if it lingers."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # stray workers, if any
        if self.process.poll() is None:
            self.process.wait(timeout=10)


def _wait_healthy(proxy, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proxy.process.poll() is not None:
            raise RuntimeError("the proxy exited during start-up:\n"
                               + "\n".join(proxy.log_lines()[-40:]))
        try:
            status, _, _ = proxy.get("/health", timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the proxy did not answer /health in time:\n"
                       + "\n".join(proxy.log_lines()[-40:]))


@contextlib.contextmanager
def running_proxy(env, workers=1, cwd=None, args=(), timeout=30, command=None):
    """Start the real proxy with `env` added to this process's environment; stop it after.

    `workers` sets WEB_CONCURRENCY unless `env` does; `args` go to gunicorn. `command`
    replaces `python -m proxy.cli` and then nothing is put on PYTHONPATH (tests.wrapper).
    """
    cwd = cwd or tempfile.mkdtemp(prefix="nexus-proxy-")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    child_env = {**os.environ, "WEB_CONCURRENCY": str(workers), "NEXUS_LOG_LEVEL": "info",
                 **{k: str(v) for k, v in env.items()}}
    child_env["GUNICORN_CMD_ARGS"] = (f"--bind fd://{listener.fileno()} "
                                      + child_env.get("GUNICORN_CMD_ARGS", "")).strip()
    if command is None:
        command = [sys.executable, "-m", "proxy.cli"]
        child_env["PYTHONPATH"] = ROOT + os.pathsep + child_env.get("PYTHONPATH", "")
    else:
        child_env.pop("PYTHONPATH", None)
    log_path = os.path.join(cwd, "proxy.log")
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [*command, *args], cwd=cwd, env=child_env,
            stdout=log_file, stderr=subprocess.STDOUT, pass_fds=(listener.fileno(),),
            start_new_session=True)
    listener.close()
    proxy = RunningProxy(process, port, cwd, log_path)
    try:
        _wait_healthy(proxy, timeout)
        yield proxy
    finally:
        proxy.stop()

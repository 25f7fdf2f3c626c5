"""Run the real dashboard (`nexus-dashboard`: gunicorn) for browser tests.

The test binds a loopback socket to port 0 and hands it to gunicorn (`--bind fd://N`),
as tests.proxy_server does for the proxy, so there is no race for a port.
"""
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RunningDashboard:
    """A started dashboard: `url`, `port`, `process`, its log file."""

    def __init__(self, process, port, log_path):
        self.process, self.port, self.log_path = process, port, log_path
        self.url = f"http://127.0.0.1:{port}"

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def stop(self):
        """SIGTERM the gunicorn master, then SIGKILL its group if it lingers."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)


def _healthy(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@contextlib.contextmanager
def running_dashboard(env, log_dir, timeout=30, command=None):
    """Start `nexus-dashboard` with `env` added to the environment; stop it afterwards.

    `command` replaces `python -m dashboard.cli`, and then nothing is put on PYTHONPATH.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    child_env = {**os.environ, "WEB_CONCURRENCY": "2", **env,
                 "GUNICORN_CMD_ARGS": f"--bind fd://{listener.fileno()}"}
    if command is None:
        command = [sys.executable, "-m", "dashboard.cli"]
        child_env["PYTHONPATH"] = ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")
    else:
        child_env.pop("PYTHONPATH", None)
    log_path = os.path.join(log_dir, "dashboard.log")
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(command, cwd=log_dir,
                                   env=child_env, stdout=log_file, stderr=subprocess.STDOUT,
                                   pass_fds=(listener.fileno(),), start_new_session=True)
    listener.close()
    server = RunningDashboard(process, port, log_path)
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the dashboard did not start:\n" + server.log()[-4000:])
            time.sleep(0.1)
        yield server
    finally:
        server.stop()

"""The processes a bench run starts: stand-in, nginx, bare relay, the proxy.

Each is a `Server`: started in its own process group with its output in a log
file, ready once `GET /health` answers, stopped by its own pid. `worker_pid` is
the process that does the work (the gunicorn or nginx worker), whose memory and
CPU time the bench reads.
"""
import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import procs

ROOT = Path(__file__).resolve().parent.parent

NGINX_CONF = """\
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 64m;
    client_body_buffer_size 2m;
    keepalive_requests 1000000;
    upstream standin {{ server 127.0.0.1:{upstream_port}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://standin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
"""


class Server:
    """A child process serving HTTP on 127.0.0.1:port."""

    def __init__(self, name, argv, port, workdir, env=None, worker_is_child=True):
        self.name, self.argv, self.port = name, argv, port
        self.workdir = Path(workdir)
        self.env = env
        self.worker_is_child = worker_is_child
        self.process = None
        self.log_path = self.workdir / f"{name}.log"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=30.0):
        """Start the process and wait until it answers `GET /health`."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            # From the repository root, so `bench.*` and `proxy.*` import wherever the bench runs.
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log, cwd=ROOT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if _healthy(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer GET /health within {timeout}s:\n{self.log_tail()}")

    def worker_pid(self):
        """The pid doing the work: the single worker child, or the process itself."""
        if not self.worker_is_child:
            return self.process.pid
        for _ in range(100):
            kids = procs.children(self.process.pid)
            if kids:
                return kids[-1]
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} has no worker process")

    def stop(self):
        """Stop the process group this server leads (its own pid), and wait."""
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _healthy(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _env(**extra):
    env = dict(os.environ)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def upstream(workdir, first_ms=2.0, interval_ms=0.5, events=200):
    """The stand-in (bench/upstream.py) on a free port."""
    port = procs.free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port), "--first-ms", str(first_ms),
            "--interval-ms", str(interval_ms), "--events", str(events)]
    return Server("upstream", argv, port, workdir, worker_is_child=False)


def find_nginx():
    """The nginx binary (Debian installs it in /usr/sbin, not always on PATH), or None."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def nginx(workdir, upstream_port, binary=None):
    """Debian's nginx as a plain reverse proxy, one worker, buffering off, keep-alive upstream."""
    binary = binary or find_nginx()
    if binary is None:
        raise RuntimeError("nginx not found: install it with `apt-get install nginx` (Debian)")
    port = procs.free_port()
    root = Path(workdir) / "nginx"
    root.mkdir(parents=True, exist_ok=True)
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, dir=root, port=port, upstream_port=upstream_port))
    argv = [binary, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log"),
            "-g", "daemon off;"]
    return Server("nginx", argv, port, workdir)


def _gunicorn(name, app, workdir, conf=None, **env):
    port = procs.free_port()
    argv = [sys.executable, "-m", "gunicorn"]
    argv += ["-c", conf] if conf else ["-k", "gevent", "-w", "1", "--worker-connections", "4096"]
    argv += ["-b", f"127.0.0.1:{port}", app]
    return Server(name, argv, port, workdir,
                  env=_env(HOST="127.0.0.1", PORT=port, WEB_CONCURRENCY=1, **env))


def relay(workdir, upstream_url):
    """The twenty-line bare relay (bench/relay.py) in one gunicorn gevent worker."""
    return _gunicorn("relay", "bench.relay:create_app()", workdir, CLAUDE_API_BASE_URL=upstream_url)


def proxy(workdir, upstream_url, database_url, storage, name="proxy", **settings):
    """The proxy exactly as deployed (`gunicorn -c python:proxy.gunicorn_conf`), one worker;
    `settings` are extra environment variables (a variant)."""
    spool = Path(workdir) / f"{name}-spool"
    creds = Path(workdir) / "credentials"
    creds.mkdir(parents=True, exist_ok=True)
    return _gunicorn(name, "proxy.wsgi:app", workdir, conf="python:proxy.gunicorn_conf",
                     CLAUDE_API_BASE_URL=upstream_url, DATABASE_URL=database_url,
                     STORAGE_ENABLED="true" if storage else "false", NEXUS_SPOOL_DIR=spool,
                     CREDENTIALS_DIR=creds, GUNICORN_CMD_ARGS="", **settings)

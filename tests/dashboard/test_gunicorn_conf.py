"""Where the dashboard listens (loopback only without a key, whatever HOST says) and how it logs."""
import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.dashboard.server import ROOT, running_dashboard


def _bind_with(env):
    code = "import dashboard.gunicorn_conf as c; print(c.bind[0], c.worker_class)"
    out = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin", **env},
                         cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_no_key_means_loopback_whatever_host_says():
    assert _bind_with({"HOST": "0.0.0.0"}) == ["127.0.0.1:3001", "gthread"]
    assert _bind_with({"HOST": "0.0.0.0", "PORT": "8080", "DASHBOARD_API_KEY": "k"})[0] == "0.0.0.0:8080"
    assert _bind_with({"HOST": "::", "DASHBOARD_API_KEY": "k"})[0] == "[::]:3001"


class _Listener:
    def __init__(self, family, address):
        self.sock = type("S", (), {"family": family, "getsockname": lambda self: address})()


def test_a_keyless_dashboard_refuses_exposed_sockets(monkeypatch):
    from dashboard import gunicorn_conf
    exposed = gunicorn_conf._exposed([_Listener(socket.AF_INET, ("127.0.0.1", 3001)),
                                      _Listener(socket.AF_INET6, ("::1", 3001, 0, 0)),
                                      _Listener(socket.AF_UNIX, "/run/d.sock"),
                                      _Listener(socket.AF_INET, ("10.1.2.3", 3001))])
    assert exposed == ["10.1.2.3:3001"]
    logged = []
    server = type("Server", (), {"LISTENERS": [_Listener(socket.AF_INET, ("0.0.0.0", 3001))],
                                 "log": type("L", (), {"error": lambda self, *a: logged.append(a),
                                                       "warning": lambda self, *a: None})()})()
    monkeypatch.setattr(gunicorn_conf, "_config", gunicorn_conf._config.replace(dashboard_api_key=None))
    with pytest.raises(SystemExit):
        gunicorn_conf.when_ready(server)
    assert "refusing" in logged[0][0]


def test_the_dashboard_logs_json_lines_like_the_proxy(tmp_path):
    with running_dashboard({"DATABASE_URL": f"sqlite:///{tmp_path}/d.db"}, str(tmp_path)) as dash:
        urllib.request.urlopen(f"{dash.url}/health", timeout=10).read()
        deadline = time.monotonic() + 10
        while '/health' not in dash.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        lines = [line for line in dash.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert any('"GET /health' in r.get("event", "") for r in records), lines[-5:]

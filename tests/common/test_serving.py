"""Both services start the way Nix's wrappers start them, and serve.

A Nix-built `nexus-proxy` is a script whose interpreter has no packages of its own:
the script's first line adds the dependencies with `site.addsitedir`, and nothing is
in PYTHONPATH. A service that re-executes `sys.executable` (`-m gunicorn`, the writer
process) loses them. Here a bare interpreter (a venv without packages) runs scripts
written as nixpkgs' wrapPythonPrograms writes them, with this interpreter's
site-packages and the checkout as the site directories.
"""
import http.client
import json
import subprocess
import sysconfig
import time
import venv
from pathlib import Path

import pytest

from tests.dashboard.server import running_dashboard
from tests.fake_upstream import start_fake_upstream
from tests.proxy_server import running_proxy

ROOT = Path(__file__).resolve().parents[2]
KEY = "wrapper-test-dashboard-key"

# nixpkgs: pkgs/development/interpreters/python/wrap.sh (the wrapped entry script).
ENTRY = """#!{python}
# -*- coding: utf-8 -*-
import sys;import site;import functools;sys.argv[0] = '{name}';functools.reduce(\
lambda k, p: site.addsitedir(p, k), {site_dirs!r}, site._init_pathinfo());
import re
import sys
from {module} import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


@pytest.fixture(scope="module")
def wrapped(tmp_path_factory):
    """{service: command}: a bare interpreter running a Nix-style entry script."""
    home = tmp_path_factory.mktemp("wrapped")
    venv.create(home / "python", with_pip=False, symlinks=True)
    python = str(home / "python" / "bin" / "python")
    # The checkout first: the venv's site-packages may hold an editable install of another.
    site_dirs = [str(ROOT), sysconfig.get_paths()["purelib"]]
    commands = {}
    for service, module in (("proxy", "proxy.cli"), ("dashboard", "dashboard.cli")):
        script = home / f"nexus-{service}"
        script.write_text(ENTRY.format(python=python, name=f"nexus-{service}",
                                       site_dirs=site_dirs, module=module))
        commands[service] = [python, str(script)]
    return python, commands


def test_the_bare_interpreter_has_no_dependencies(wrapped):
    python, _ = wrapped
    result = subprocess.run([python, "-c", "import gunicorn"], capture_output=True,
                            env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert result.returncode != 0 and b"No module named 'gunicorn'" in result.stderr


def _post_message(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = {"model": "claude-sonnet-4-5", "max_tokens": 16,
                "messages": [{"role": "user", "content": "hello through a wrapper"}]}
        conn.request("POST", "/v1/messages", json.dumps(body),
                     {"content-type": "application/json", "x-api-key": "sk-ant-test",
                      "anthropic-version": "2023-06-01"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _recorded(port, timeout=20):
    """The dashboard's newest rows, once there is one (the writer saves in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/api/requests", headers={"X-Dashboard-Key": KEY})
            rows = json.loads(conn.getresponse().read())["requests"]
        finally:
            conn.close()
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_both_services_started_by_nix_style_wrappers_record_and_show_a_request(
        wrapped, tmp_path):
    _, commands = wrapped
    database = f"sqlite:///{tmp_path}/nexus.db"
    with start_fake_upstream() as upstream:
        env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": database}
        with running_proxy(env, cwd=str(tmp_path), command=commands["proxy"]) as proxy:
            status, message = _post_message(proxy.port)
            assert status == 200, message
            assert message["type"] == "message"
            dashboard_env = {"DATABASE_URL": database, "DASHBOARD_API_KEY": KEY}
            with running_dashboard(dashboard_env, str(tmp_path),
                                   command=commands["dashboard"]) as dashboard:
                rows = _recorded(dashboard.port)
    assert [row["model"] for row in rows] == ["claude-sonnet-4-5"]
    assert not [line for line in proxy.log_lines() if "No module named" in line]

"""Alerts through the real proxy (gunicorn, its writer processes) and a real webhook receiver:
a bad rules file stops start-up, a crossing posts once (across a restart, and with two
replicas on one PostgreSQL), and again only after falling below."""
import os
import subprocess
import sys
import time

import pytest

from tests.databases import temporary_database
from tests.proxy_server import ROOT, running_proxy
from tests.webhook_receiver import webhook_receiver

from .conftest import MODEL, free_port, sdk

INTERVAL = "0.2"


def rules_file(tmp_path, url, window="1h", above=2):
    path = tmp_path / "alerts.toml"
    path.write_text(f'''
[[alert]]
name = "burst"
metric = "requests"
window = "{window}"
above = {above}
notify = "{url}/alert"
''')
    return str(path)


def send(proxy, count):
    with sdk(proxy.url) as client:
        for _ in range(count):
            client.messages.create(model=MODEL, max_tokens=20,
                                   messages=[{"role": "user", "content": "hello"}])


def settle(seconds=1.5):
    """Long enough for several evaluations (every INTERVAL) after the records are saved."""
    time.sleep(seconds)


@pytest.mark.parametrize("command, code", [
    (["-m", "proxy.cli"], 2),
    (["-m", "gunicorn", "-c", "python:proxy.gunicorn_conf", "proxy.wsgi:app"], 1),  # bare
])
def test_a_bad_rules_file_stops_start_up_naming_the_line(tmp_path, command, code):
    path = tmp_path / "alerts.toml"
    path.write_text('[[alert]]\nname = "x"\nmetric = "spend"\nwindow = "1h"\nabove = 1\n'
                    'notify = "http://127.0.0.1:9/"\n')
    env = {**os.environ, "NEXUS_ALERTS_FILE": str(path),
           "DATABASE_URL": f"sqlite:///{tmp_path}/nexus.db", "HOST": "127.0.0.1",
           "PORT": str(free_port()),
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, *command], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == code
    assert f"nexus-proxy: {path}, line 3: metric 'spend' is not one of" in done.stderr
    check = subprocess.run([sys.executable, "-m", "common.cli", "alerts", "check"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert check.returncode == 1 and "line 3: metric 'spend'" in check.stdout


def test_posts_once_across_a_restart_and_again_after_falling_below(upstream, tmp_path):
    with webhook_receiver() as hooks:
        env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": f"sqlite:///{tmp_path}/n.db",
               "NEXUS_ALERTS_FILE": rules_file(tmp_path, hooks.url, window="6s"),
               "NEXUS_ALERTS_INTERVAL": INTERVAL}
        with running_proxy(env, workers=2, cwd=str(tmp_path)) as proxy:
            send(proxy, 3)
            (post,) = hooks.wait_for(1)
            send(proxy, 2)
            settle()
        assert post["path"] == "/alert"
        assert post["json"]["alert"] == "burst" and post["json"]["value"] >= 3
        with running_proxy(env, workers=2, cwd=str(tmp_path)) as proxy:
            send(proxy, 1)  # still above within the window: the restarted proxy stays quiet
            settle()
            assert len(hooks.received) == 1
            time.sleep(6.5)     # the window empties: the alert re-arms
            send(proxy, 3)
            posts = hooks.wait_for(2)
            settle()
        assert len(hooks.received) == 2 and posts[1]["json"]["value"] == 3


def test_two_replicas_on_one_postgresql_post_once(upstream, tmp_path):
    with webhook_receiver() as hooks, temporary_database("postgresql", tmp_path) as url:
        env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": url,
               "NEXUS_ALERTS_FILE": rules_file(tmp_path, hooks.url, above=5),
               "NEXUS_ALERTS_INTERVAL": "0.05"}
        (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
        with running_proxy(env, workers=2, cwd=str(tmp_path / "a")) as one, \
                running_proxy(env, workers=2, cwd=str(tmp_path / "b")) as two:
            for _ in range(4):
                send(one, 1), send(two, 1)
            hooks.wait_for(1)
            settle(2.0)
            logged = [e for p in (one, two) for e in p.log_events() if e.get("event") == "alert fired"]
        assert len(hooks.received) == 1
        assert len(logged) == 1


def test_a_credential_near_its_five_hour_limit_posts(upstream, tmp_path):
    """The upstream's unified rate-limit headers, recorded by the proxy, drive the rule."""
    with webhook_receiver() as hooks:
        path = tmp_path / "alerts.toml"
        path.write_text(f'[[alert]]\nname = "5h"\nmetric = "five_hour_utilization"\n'
                        f'window = "10m"\nabove = 0.9\nnotify = "{hooks.url}/limit"\n')
        env = {"CLAUDE_API_BASE_URL": upstream.url, "DATABASE_URL": f"sqlite:///{tmp_path}/n.db",
               "NEXUS_ALERTS_FILE": str(path), "NEXUS_ALERTS_INTERVAL": INTERVAL}
        with running_proxy(env, cwd=str(tmp_path)) as proxy:
            with sdk(proxy.url) as client:
                for utilization in ("0.5", "0.93"):
                    client.messages.create(model=MODEL, max_tokens=20, messages=[
                        {"role": "user", "content": "hello"}],
                        extra_headers={"x-fake-unified": utilization})
            (post,) = hooks.wait_for(1)
            settle()
        assert len(hooks.received) == 1
        assert post["json"]["metric"] == "five_hour_utilization"
        assert post["json"]["value"] == 0.93
        assert post["json"]["group"].startswith("sha256:")

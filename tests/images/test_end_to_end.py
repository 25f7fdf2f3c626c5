"""Both images together, as a user runs them: a request through the proxy container
reaches the fake upstream, is recorded, and the dashboard container shows it.

Containers use the host's network (the engine has no bridge) and listen on free
ports of 127.0.0.1. The database is a SQLite file in a volume both containers
mount (they share uid 10001), or a fresh PostgreSQL database.
"""
import json
import time
import urllib.request
import uuid

import pytest

from tests.databases import temporary_database
from tests.fake_upstream import start_fake_upstream
from tests.images import engine

# The first test pays for the session's builds (stand-in bases, both images).
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

API_KEY = "sk-ant-api03-image-test-key"
DASHBOARD_KEY = "dashboard-image-test-key"


class Containers:
    """Containers and volumes started by one test, removed by `close()`."""

    def __init__(self):
        self.names, self.volumes = [], []

    def volume(self):
        name = f"nexus-test-{uuid.uuid4().hex[:10]}"
        engine.docker("volume", "create", name)
        self.volumes.append(name)
        return name

    def start(self, tag, env, volume=None):
        name = f"nexus-test-{uuid.uuid4().hex[:10]}"
        args = ["run", "--detach", "--name", name, "--network", "host",
                # The image's own HEALTHCHECK command, checked every second.
                "--health-interval", "1s", "--health-start-period", "0s"]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        if volume:
            args += ["--volume", f"{volume}:/app/data"]
        engine.docker(*args, tag)
        self.names.append(name)
        return name

    def close(self):
        for name in self.names:
            engine.docker("rm", "--force", "--volumes", name, check=False)
        for volume in self.volumes:
            engine.docker("volume", "rm", "--force", volume, check=False)


@pytest.fixture
def containers():
    started = Containers()
    yield started
    started.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, containers):
    """(DATABASE_URL as the containers see it, volume to mount or None)."""
    if request.param == "sqlite":
        yield "sqlite:////app/data/nexus.db", containers.volume()
        return
    with temporary_database("postgresql", tmp_path) as url:
        yield url, None


def post_message(port):
    body = json.dumps({"model": "claude-sonnet-4-20250514", "max_tokens": 32,
                       "messages": [{"role": "user", "content": "Hello from an image"}]})
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/messages", data=body.encode(), method="POST",
        headers={"content-type": "application/json", "x-api-key": API_KEY,
                 "anthropic-version": "2023-06-01"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers, json.loads(response.read())


def dashboard_rows(port):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/requests?limit=10",
                                     headers={"X-Dashboard-Key": DASHBOARD_KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["requests"]


def wait_for_row(port, request_id, timeout=30):
    """The dashboard's row for `request_id`, once the proxy's recorder wrote it."""
    deadline = time.monotonic() + timeout
    rows = []
    while time.monotonic() < deadline:
        rows = dashboard_rows(port)
        for row in rows:
            if row["request_id"] == request_id:
                return row
        time.sleep(0.5)
    raise AssertionError(f"request {request_id} not on the dashboard; rows: {rows}")


def test_request_through_proxy_image_shows_on_dashboard_image(images, database_url, containers):
    url, volume = database_url
    proxy_port, dashboard_port = engine.free_port(), engine.free_port()
    common = {"DATABASE_URL": url, "HOST": "127.0.0.1", "WEB_CONCURRENCY": "1"}
    with start_fake_upstream() as upstream:
        proxy = containers.start(images["proxy"], {
            **common, "PORT": proxy_port, "CLAUDE_API_BASE_URL": upstream.url}, volume)
        engine.wait_for_http(f"http://127.0.0.1:{proxy_port}/health", container=proxy)

        status, headers, message = post_message(proxy_port)
        assert status == 200
        assert message["type"] == "message"
        received = upstream.requests()
        assert [r["path"] for r in received] == ["/v1/messages"]
        assert received[0].header("x-api-key") == API_KEY
        request_id = headers["x-nexus-request-id"]

        dashboard = containers.start(images["dashboard"], {
            **common, "PORT": dashboard_port, "DASHBOARD_API_KEY": DASHBOARD_KEY}, volume)
        engine.wait_for_http(f"http://127.0.0.1:{dashboard_port}/health", container=dashboard)
        row = wait_for_row(dashboard_port, request_id)

    assert row["path"] == "/v1/messages"
    assert row["response_status"] == 200
    assert row["model"] == "claude-sonnet-4-20250514"
    assert row["input_tokens"] > 0
    # Docker runs each image's own HEALTHCHECK command; both must pass it.
    engine.wait_for_health(proxy)
    engine.wait_for_health(dashboard)
    for name in (proxy, dashboard):
        assert API_KEY not in engine.container_logs(name)

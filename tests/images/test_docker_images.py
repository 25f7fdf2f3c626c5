"""What each built image carries: user, size, and nothing a service does not run."""
import json
import subprocess

import pytest

from tests.images import engine

# The first test pays for the session's builds (stand-in bases, both images).
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

# Each image may add this much to its runtime base (the venv and the code); the proxy's
# OpenTelemetry export (SDK, exporter, protobuf) takes about 10 MB of its share.
MAX_ADDED_BYTES = {"proxy": 50 * 1000 * 1000, "dashboard": 40 * 1000 * 1000}


def run(tag, *command):
    """Run `command` in a throwaway container of `tag`; return its output."""
    return engine.docker("run", "--rm", "--network", "host", "--entrypoint", command[0],
                         tag, *command[1:], check=False)


def run_python(tag, code):
    """The exit status of `python3 -c code` in a container of `tag` (0 = it worked)."""
    command = ["docker", "run", "--rm", "--network", "host", tag, "python3", "-c", code]
    return subprocess.run(command, capture_output=True, timeout=120).returncode


@pytest.mark.parametrize("service", engine.SERVICES)
def test_image_runs_as_uid_10001(images, service):
    config = json.loads(engine.inspect(images[service], "{{json .Config}}"))
    assert config["User"] == "10001:10001"
    assert run(images[service], "id", "-u").strip() == "10001"
    assert run(images[service], "id", "-g").strip() == "10001"


@pytest.mark.parametrize("service", engine.SERVICES)
def test_image_stays_within_its_size_budget(images, base_images, service):
    added = int(engine.inspect(images[service], "{{.Size}}")) - int(
        engine.inspect(base_images[1], "{{.Size}}"))
    print(f"{service} image adds {added / 1e6:.1f} MB to its base")
    assert 0 < added <= MAX_ADDED_BYTES[service], f"{service} adds {added / 1e6:.1f} MB"


@pytest.mark.parametrize("service", engine.SERVICES)
def test_image_has_no_pip_and_no_compiler(images, service):
    assert run_python(images[service], "import pip") != 0
    assert run_python(images[service], "import setuptools") != 0
    found = run(images[service], "sh", "-c",
                "command -v pip pip3 gcc cc c++ make || true").strip()
    assert found == ""


def test_proxy_image_has_the_proxy_and_not_the_dashboard(images):
    tag = images["proxy"]
    assert run_python(tag, "import proxy, common, gevent, psycopg2, gunicorn") == 0
    # OpenTelemetry export works from the image, not only from a bare-metal install.
    assert run_python(tag, "import opentelemetry.sdk.trace, "
                           "opentelemetry.exporter.otlp.proto.http.trace_exporter") == 0
    assert run_python(tag, "import dashboard") != 0
    assert run_python(tag, "import flask") != 0


def test_dashboard_image_has_no_proxy_code_path_and_no_credentials(images):
    tag = images["dashboard"]
    assert run_python(tag, "import dashboard, common, flask, psycopg2, gunicorn") == 0
    for module in ("proxy", "gevent", "greenlet", "requests", "urllib3"):
        assert run_python(tag, f"import {module}") != 0, module
    config = json.loads(engine.inspect(tag, "{{json .Config}}"))
    assert not any(v.startswith("CREDENTIALS_DIR=") for v in config["Env"])
    assert run(tag, "sh", "-c", "ls -d /app/credentials /opt/venv/bin/nexus-proxy 2>&1 || true") \
        .count("No such file") == 2


@pytest.mark.parametrize("service,port", [("proxy", "3000"), ("dashboard", "3001")])
def test_image_declares_port_command_and_health_check(images, service, port):
    config = json.loads(engine.inspect(images[service], "{{json .Config}}"))
    assert f"{port}/tcp" in config["ExposedPorts"]
    assert config["Cmd"] == [f"nexus-{service}"]
    assert f"PORT={port}" in config["Env"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert config["Labels"]["org.opencontainers.image.title"] == f"claude-nexus-{service}"

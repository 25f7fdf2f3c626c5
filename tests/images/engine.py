"""The Docker engine as the image tests use it: the CLI, stand-in bases, builds.

No registry is reachable where the tests run, so the base images the Dockerfiles
name by digest are replaced by stand-ins made from Debian's packages: mmdebstrap
writes a bookworm root file system with the same Python the public base carries,
and `docker import` turns it into an image. This machine reaches PyPI through a
TLS-inspecting proxy, so the build stand-in carries the machine's CA bundle and a
pip.conf that trusts it; the Dockerfiles themselves know nothing of this.
"""
import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LOCK_FILE = Path(tempfile.gettempdir()) / "nexus-image-tests.lock"
SUITE = "bookworm"
# What python:3.11-slim-bookworm has besides Python: apt's libstdc++ (greenlet
# needs it), netbase and tzdata. The build stand-in adds venv (pip's wheels).
RUNTIME_PACKAGES = ("python3", "netbase", "tzdata")
BUILD_PACKAGES = RUNTIME_PACKAGES + ("python3-venv",)
PIP_CONF = "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"
SERVICES = ("proxy", "dashboard")


def require(problem):
    """Skip for a missing part, unless NEXUS_REQUIRE_ALL says it must be there."""
    if problem is None:
        return
    if os.environ.get("NEXUS_REQUIRE_ALL"):
        pytest.fail(f"{problem} (NEXUS_REQUIRE_ALL is set)")
    pytest.skip(problem)


def docker(*args, check=True, timeout=600, env=None):
    """Run the docker CLI; return its stdout (text). Raises with stderr on failure."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True,
                            timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} failed ({result.returncode}):\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def engine_problem():
    """None when a Docker engine answers, else why not."""
    if shutil.which("docker") is None:
        return "no docker CLI (.ci/setup-docker.sh installs docker.io)"
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                                capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    if result.returncode != 0 or not result.stdout.strip():
        return f"no Docker engine: {result.stderr.strip()[:300]}"
    return None


@contextlib.contextmanager
def machine_lock():
    """One image build at a time on this machine (parallel test sessions share tags)."""
    with open(LOCK_FILE, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _image_exists(tag):
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0


def _base_key(packages, pip_conf):
    digest = hashlib.sha256()
    digest.update(repr((SUITE, packages, pip_conf)).encode())
    digest.update(CA_BUNDLE.read_bytes())
    return digest.hexdigest()[:12]


def _mmdebstrap(packages, pip_conf, scratch):
    tarball = scratch / "rootfs.tar"
    hooks = ['mkdir -p "$1/etc/ssl/certs"', f"copy-in {CA_BUNDLE} /etc/ssl/certs"]
    if pip_conf:
        (scratch / "pip.conf").write_text(pip_conf)
        hooks.append(f"copy-in {scratch / 'pip.conf'} /etc")
    command = ["mmdebstrap", "--quiet", "--variant=minbase",
               f"--include={','.join(packages)}",
               "--dpkgopt=path-exclude=/usr/share/man/*",
               "--dpkgopt=path-exclude=/usr/share/doc/*",
               "--dpkgopt=path-exclude=/usr/share/locale/*"]
    command += [f"--customize-hook={hook}" for hook in hooks]
    subprocess.run(command + [SUITE, str(tarball)], check=True, capture_output=True,
                   timeout=900)
    return tarball


def stand_in_base(name, packages, pip_conf=""):
    """Tag of a stand-in base image, made once per content (CA bundle included)."""
    tag = f"nexus-test-{name}:{_base_key(packages, pip_conf)}"
    if _image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="nexus-base-") as scratch:
        tarball = _mmdebstrap(packages, pip_conf, Path(scratch))
        docker("import", "--change", 'CMD ["/bin/sh"]', str(tarball), tag)
    return tag


def stand_in_bases():
    """(build base, runtime base) tags, both a Debian bookworm with Python 3.11."""
    return (stand_in_base("build", BUILD_PACKAGES, PIP_CONF),
            stand_in_base("runtime", RUNTIME_PACKAGES))


def build_image(service, build_base, runtime_base):
    """Build docker/<service>/Dockerfile from the repo; return its tag."""
    tag = f"claude-nexus-{service}:test"
    # The classic builder: it works with every engine and CLI version found on
    # Debian, and needs no BuildKit frontend image from a registry.
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    docker("build", "--quiet", "--network", "host",
           "--build-arg", f"BUILD_IMAGE={build_base}",
           "--build-arg", f"RUNTIME_IMAGE={runtime_base}",
           "--file", str(ROOT / "docker" / service / "Dockerfile"),
           "--tag", tag, str(ROOT), timeout=1500, env=env)
    return tag


def inspect(tag, template="{{json .}}"):
    """`docker image inspect` of `tag` with a Go template."""
    return docker("image", "inspect", "--format", template, tag).strip()


def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def container_logs(name, tail="all"):
    """A container's output, stdout and stderr (gunicorn logs to stderr)."""
    result = subprocess.run(["docker", "logs", "--tail", tail, name],
                            capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


def wait_for_http(url, timeout=60, container=None):
    """Poll `url` until it answers 200; on timeout raise with the container's logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if container and docker("inspect", "--format", "{{.State.Running}}", container,
                                check=False).strip() == "false":
            break
        time.sleep(0.3)
    logs = container_logs(container, "60") if container else ""
    raise AssertionError(f"{url} did not answer 200 within {timeout}s\n{logs}")


def wait_for_health(container, timeout=60):
    """Wait until Docker reports the container's HEALTHCHECK as healthy."""
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = docker("inspect", "--format", "{{.State.Health.Status}}", container).strip()
        if status == "healthy":
            return
        time.sleep(0.5)
    raise AssertionError(f"{container} health is {status!r} after {timeout}s\n"
                         f"{container_logs(container, '40')}")

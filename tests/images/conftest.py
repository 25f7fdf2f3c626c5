"""Fixtures of the image tests: the engine, the stand-in bases and both images.

Everything is built once per test session; Docker's layer cache makes a rebuild
of unchanged sources take seconds, and the stand-in bases are kept between
sessions under a tag derived from their content.
"""
import os
import shutil

import pytest

from tests.images import engine
from tests.images.engine import require


@pytest.fixture(scope="session")
def docker_engine():
    require(engine.engine_problem())


@pytest.fixture(scope="session")
def base_images(docker_engine):
    """(build base, runtime base): stand-ins for the digests the Dockerfiles name."""
    require(None if shutil.which("mmdebstrap") else "mmdebstrap is not installed")
    with engine.machine_lock():
        return engine.stand_in_bases()


@pytest.fixture(scope="session")
def images(request, docker_engine):
    """{"proxy": tag, "dashboard": tag}, built from this checkout.

    NEXUS_IMAGES="proxy=<tag>,dashboard=<tag>" names images built elsewhere instead
    (the Nix workflow loads `nix build`'s images and runs the same tests on them).
    """
    given = os.environ.get("NEXUS_IMAGES")
    if given:
        return dict(item.split("=", 1) for item in given.split(","))
    base_images = request.getfixturevalue("base_images")
    with engine.machine_lock():
        return {service: engine.build_image(service, *base_images)
                for service in engine.SERVICES}

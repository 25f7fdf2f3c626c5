"""The `nexus` command as a user runs it: installed script, real database."""
import subprocess
import sys

import pytest

from common.cli import COMMANDS, build_parser


def nexus(*args, env=None, db_url):
    return subprocess.run([sys.executable, "-m", "common.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**(env or {}), "DATABASE_URL": db_url,
                                                       "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migrate_then_again(kind, tmp_path):
    from tests.databases import temporary_database

    with temporary_database(kind, tmp_path) as url:
        first = nexus("migrate", db_url=url)
        assert first.returncode == 0, first.stderr
        assert "applied migrations" in first.stdout
        second = nexus("migrate", db_url=url)
        assert second.returncode == 0 and "up to date" in second.stdout


def test_every_command_of_the_contract_is_there():
    words = {" ".join(w) for w, *_ in COMMANDS}
    assert {"migrate", "keys create", "keys list", "keys revoke", "credentials check",
            "retention", "relink", "reprice", "export"} <= words
    parser = build_parser()
    for w, *_ in COMMANDS:
        assert parser.parse_args([*w, *(["ck_x"] if w[-1] == "revoke" else [])]).target


def test_a_bad_setting_is_named_not_a_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "common.cli", "migrate"], capture_output=True,
                         text=True, timeout=60, env={"NEXUS_CAPTURE_BODIES": "some",
                                                     "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    assert out.returncode == 2
    assert "NEXUS_CAPTURE_BODIES" in out.stderr and "Traceback" not in out.stderr

"""Configuration: defaults, parsing errors, and docs that match the table."""
import pathlib
import re

import pytest

from common import config

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_defaults_match_the_contract():
    cfg = config.load({})
    assert cfg.database_url == "sqlite:///data/nexus.db"
    assert cfg.upstream_url == "https://api.anthropic.com"
    assert cfg.upstream_timeout_ms == 600000
    assert cfg.client_auth is False
    assert cfg.dashboard_api_key is None
    assert cfg.storage_enabled is True
    assert cfg.capture_bodies == "all"
    assert cfg.max_body_bytes == 33554432
    assert cfg.retention_days == 0
    assert cfg.spool_dir == "data/spool"


def test_values_are_parsed_from_the_mapping():
    cfg = config.load({"ENABLE_CLIENT_AUTH": "TRUE", "NEXUS_CAPTURE_BODIES": "errors",
                       "NEXUS_MAX_BODY_BYTES": "10", "NEXUS_SUBTASK_TOOLS": "Task, Agent ,"})
    assert cfg.client_auth is True
    assert cfg.capture_bodies == "errors"
    assert cfg.max_body_bytes == 10
    assert cfg.subtask_tool_names == ("Task", "Agent")


@pytest.mark.parametrize("name,value", [
    ("ENABLE_CLIENT_AUTH", "maybe"),
    ("NEXUS_CAPTURE_BODIES", "some"),
    ("NEXUS_MAX_BODY_BYTES", "lots"),
])
def test_bad_values_name_the_setting(name, value):
    with pytest.raises(config.ConfigError, match=name):
        config.load({name: value})


def test_config_is_immutable_but_replaceable():
    cfg = config.load({})
    with pytest.raises(AttributeError):
        cfg.port = "1"
    assert cfg.replace(port="9").port == "9"
    assert cfg.port is None


def test_configuration_reference_is_current():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert doc == config.reference_markdown(), "run: python -m common.config > docs/configuration.md"


def test_every_contract_variable_is_a_setting():
    contract = ROOT.parent / "shared" / "CONTRACT.md"
    if not contract.exists():
        pytest.skip("shared/CONTRACT.md is not beside the checkout")
    section = contract.read_text().split("## Configuration")[1].split("\n## ")[0]
    names = set(re.findall(r"^\| `([A-Z_]+)`", section, re.M))
    names -= {"WEB_CONCURRENCY"}  # gunicorn's own, documented in the reference's footer
    assert names <= {s.name for s in config.SETTINGS}


def test_only_config_reads_the_environment():
    offenders = []
    for path in ROOT.glob("*/**/*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] not in ("common", "proxy", "dashboard") or rel == pathlib.Path("common/config.py"):
            continue
        # Reading a value is what is forbidden; handing the environment whole to a
        # child process (inheritance) is not reading configuration.
        if re.search(r"os\.environ\s*(\.get\b|\[|\.setdefault\b)|os\.getenv\b", path.read_text()):
            offenders.append(str(rel))
    assert not offenders, f"read configuration through common.config: {offenders}"

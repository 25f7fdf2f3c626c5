"""The package boundaries the architecture promises, checked on the source."""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "common": {"proxy", "dashboard", "flask", "gevent", "gunicorn"},
    "proxy": {"dashboard", "flask", "jinja2", "werkzeug"},
    "dashboard": {"proxy"},
}


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_it_may(package):
    bad = [f"{path.relative_to(ROOT)} imports {name}"
           for path in sorted((ROOT / package).rglob("*.py"))
           for name in _imports(path) if name in FORBIDDEN[package]]
    # common.db's cooperative-psycopg2 helper imports gevent lazily, inside a function
    bad = [b for b in bad if not b.startswith("common/db.py imports gevent")]
    # common.serving runs gunicorn for both services, importing it only when they start
    bad = [b for b in bad if not b.startswith("common/serving.py imports gunicorn")]
    assert not bad, bad


def test_contract_layout_exists():
    expected = ["pyproject.toml", "proxy", "dashboard", "common", "tests", "docs", "Makefile",
                "README.md", ".ci/run"]
    missing = [p for p in expected if not (ROOT / p).exists()]
    assert not missing, missing


def test_contract_columns_are_the_contracts():
    from common.models import CONTRACT_COLUMNS, ApiRequest

    contract = ROOT.parent / "shared" / "CONTRACT.md"
    if not contract.exists():
        pytest.skip("shared/CONTRACT.md is not beside the checkout")
    section = contract.read_text().split("table `api_requests`")[1].split("Bodies may")[0]
    assert tuple(re.findall(r"`([a-z_]+)`", section)) == CONTRACT_COLUMNS
    assert set(CONTRACT_COLUMNS) <= set(ApiRequest._meta.fields)

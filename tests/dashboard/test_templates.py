"""Templates keep the CSP's promise: no inline script, handlers or styles, nothing marked safe."""
import pathlib
import re

import pytest

TEMPLATES = sorted((pathlib.Path(__file__).resolve().parents[2] / "dashboard" / "templates").rglob("*.html"))


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_no_inline_code(path):
    text = path.read_text()
    for match in re.finditer(r"<script\b([^>]*)>(.*?)</script>", text, re.S):
        attrs, body = match.groups()
        assert "src=" in attrs or 'type="application/json"' in attrs, match.group(0)[:80]
        assert "src=" not in attrs or not body.strip()
    assert not re.search(r"\son[a-z]+\s*=", text), "inline event handler"
    assert not re.search(r"\sstyle\s*=", text), "inline style attribute"
    assert "|safe" not in text.replace(" ", "") and "autoescape false" not in text
    assert "http://" not in text and "https://" not in text, "no assets from elsewhere"


def test_every_template_is_checked():
    assert len(TEMPLATES) >= 12

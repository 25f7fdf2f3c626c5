"""The search bench, run very briefly on both databases: it seeds, times, writes its
section of the page, and drops what it made. No timing is asserted (a shared machine)."""
import re

import pytest

from bench import search_bench, synthetic
from tests.databases import PG_ADMIN_DSN

pytestmark = pytest.mark.slow


def _bench_databases():
    import psycopg2
    conn = psycopg2.connect(PG_ADMIN_DSN)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'nexus_bench_search_%'")
            return {name for (name,) in cur.fetchall()}
    finally:
        conn.close()


def test_it_times_every_query_on_both_databases_and_rewrites_its_section(tmp_path):
    page = tmp_path / "performance-dashboard.md"
    page.write_text("# Dashboard\n\nprose stays\n\n<!-- search-bench -->\nold\n<!-- /search-bench -->\n")
    before = _bench_databases()
    assert search_bench.main(["--rows", "300", "--text-words", "40", "--repeat", "1",
                              "--workdir", str(tmp_path), "--page", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("# Dashboard\n\nprose stays\n") and "\nold\n" not in text
    for title in ("### SQLite", "### PostgreSQL"):
        section = text[text.index(title):]
        rows = re.findall(r"^\| (.+?) \| (\d+) \|", section, re.M)
        assert [label for label, _ in rows][:len(search_bench.QUERIES)] == \
            [label for label, _ in search_bench.QUERIES]
        assert int(dict(rows)["most common word (rank 1)"]) == 20  # the prose is searchable
        assert int(dict(rows)["absent word"]) == 0
    assert _bench_databases() == before          # what it seeded is gone
    assert not list(tmp_path.glob("search-bench-*.db*"))


def test_prose_follows_zipf_and_is_fixed_by_its_seed():
    words = synthetic.prose("tool-1", 2000).split()
    assert synthetic.prose("tool-1", 2000).split() == words and synthetic.prose("tool-2", 5) != words[:5]
    assert words.count(synthetic.VOCABULARY[0]) > 10 * max(1, words.count(synthetic.VOCABULARY[999]))
    assert synthetic.prose("x", 0) == ""

"""The bench, run very briefly: every scenario on every target once, as a smoke test.

No timing is asserted (this machine is shared and small); what is asserted is
that the harness works: each scenario reaches each target without errors, the
results file holds the figures and the issue's targets, and the page and the
chart are written. Needs wrk, nginx and PostgreSQL (.ci/setup-*.sh install them).
"""
import json
import os
import shutil
from dataclasses import replace

import pytest

from bench import figures, lineup, report, run, scenarios, servers, storage

pytestmark = pytest.mark.slow

QUICK = replace(scenarios.Settings(), duration=1, rounds=1, warmup=0, open_streams=20,
                open_interval_ms=50, open_events=8, drain_timeout=10, long_duration=1)


def _postgres_up():
    try:
        import psycopg2
        psycopg2.connect(lineup.PG_ADMIN_DSN, connect_timeout=2).close()
        return True
    except Exception:
        return False


def _require(ok, what):
    if ok:
        return
    if os.environ.get("NEXUS_REQUIRE_ALL"):
        pytest.fail(f"{what} is missing (NEXUS_REQUIRE_ALL is set)")
    pytest.skip(f"{what} is missing")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One quick run of the whole bench; (results, results path, page path)."""
    _require(shutil.which("wrk"), "wrk (apt-get install wrk)")
    _require(servers.find_nginx(), "nginx (apt-get install nginx)")
    _require(_postgres_up(), "PostgreSQL on 127.0.0.1:5432")
    root = tmp_path_factory.mktemp("bench")
    page = root / "docs" / "performance.md"
    page.parent.mkdir()
    page.write_text("# Performance\n\nHand-written findings stay.\n")
    results = run.run(QUICK, workdir=root / "work")
    path = run.save(results, root / "results", page)
    return results, path, page


def test_every_scenario_reaches_every_target_without_errors(bench):
    results, _, _ = bench
    assert results["failures"] == []
    ran = {(r["target"], r["scenario"]) for r in results["runs"]}
    assert ran == {(t, s) for t in lineup.TARGETS for s in scenarios.SCENARIOS}
    for r in results["runs"]:
        assert r["requests"] > 0 and r["errors"] == 0, r
        assert r["cpu_s"] >= 0 and r["rss_mb"] > 0


def test_streams_carry_every_event_and_time_the_first_byte(bench):
    results, _, _ = bench
    for r in results["runs"]:
        if r["scenario"] == "stream_200":
            assert r["events_per_stream"] == QUICK.stream_events
            assert 0 < r["ttfb_ms"]["p50"] <= r["ttfb_ms"]["p99"]
            assert r["gap_ms"]["n"] == r["ok"] * (QUICK.stream_events - 1)
            if r["target"].startswith("proxy-"):  # the proxy reports its own cost
                assert r["reported_overhead_ms"]["n"] == r["ok"]
        if r["scenario"] == "open_streams":
            assert r["ok"] == QUICK.open_streams and r["all_open_after_s"] is not None


def test_recording_targets_store_a_row_per_request_and_report_the_writer(bench):
    results, _, _ = bench
    for r in results["runs"]:
        if r["target"] in figures.RECORDING_ON:
            assert r["stored"]["rows"] > 0, r
            if r["scenario"] != "body_1mb":  # 1 MB rows may take longer than the wait
                # wrk counts the answers it read before its clock ran out; a few more may land
                assert r["stored"]["rows"] >= r["stored"]["expected"], r
            assert r["writer"]["backlog_max"] is not None  # the proxy's /metrics was read
        if r["target"] in lineup.BASELINES:
            assert "writer" not in r and "stored" not in r


def test_results_file_holds_figures_and_the_issue_targets(bench):
    results, path, _ = bench
    saved = json.loads(path.read_text())
    assert path.name == f"{results['started'][:10]}.json"
    assert set(saved["figures"]) == set(lineup.TARGETS)
    assert saved["figures"]["straight"]["added_p50_c1_ms"] == 0
    for name in lineup.TARGETS:
        assert saved["figures"][name]["rps_saturation"] > 0
    goals = {g["id"]: g for g in saved["goals"]}
    assert set(goals) == {"added_p50", "added_p99", "saturation", "ttfb_p50", "rss_open",
                          "recording_cost", "recording_cost_300kb", "throughput_300kb",
                          "writer_keeps_up"}
    for goal in goals.values():
        assert goal["met"] in (True, False)
        assert all(v["value"] is not None for v in goal["per_target"].values())


def test_page_keeps_prose_and_gets_tables_and_a_chart(bench):
    results, _, page = bench
    text = page.read_text()
    assert text.startswith("# Performance\n\nHand-written findings stay.")
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
    for name in lineup.TARGETS:
        assert f"| {name} |" in text or f" {name} |" in text
    assert "requests/s at saturation" in text
    assert page.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second render replaces the generated part instead of appending another.
    report.update_page(page, report.section(results), run.SKELETON)
    assert page.read_text().count(report.BEGIN) == 1


def test_the_storage_workload_records_a_session_and_writes_its_figures(tmp_path):
    _require(_postgres_up(), "PostgreSQL on 127.0.0.1:5432")
    page = tmp_path / "recording-performance.md"
    page.write_text("# Recording performance\n\nHand-written findings stay.\n")
    assert storage.main(["--turns", "6", "--results-dir", str(tmp_path), "--page", str(page)]) == 0
    [path] = tmp_path.glob("storage-*.json")
    runs = json.loads(path.read_text())["runs"]
    assert [r["target"] for r in runs] == ["proxy-sqlite", "proxy-postgresql"]
    for run_ in runs:
        assert run_["rows"] == run_["requests"] == 6
        assert 0 < run_["database_growth"] < run_["bytes_sent"]
    text = page.read_text()
    assert "Hand-written findings stay." in text and storage.BEGIN in text


def test_the_neighbour_bench_times_the_proxy_alone_and_beside_a_busy_process():
    from bench import neighbour
    _require(shutil.which("wrk"), "wrk (apt-get install wrk)")
    found = neighbour.measure("proxy-off", 1, 0.02, 0.05)
    assert [label for label, _ in found] == ["none", "nice 0", "nice 19", "none, again"]
    assert all(s["requests"] > 0 and not any(s["errors"].values()) for _, s in found)
    table = neighbour.render(found, "proxy-off", 0.02, 0.05)
    assert table.count("\n| ") == 5 and "| nice 19 |" in table

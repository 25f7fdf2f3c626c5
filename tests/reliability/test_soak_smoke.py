"""A 20-second run of the soak (bench/soak.py): the ten-minute run's goals, on a short run.

Mixed traffic (plain and streamed messages, token counts, model lists, upstream
500s and 529s, streams cut by the upstream, clients that leave mid-stream)
through the real proxy with two workers. The long run's figures are in
docs/reliability.md.
"""
import pytest

from bench import soak

from .support import note


@pytest.mark.slow
def test_a_short_soak_meets_the_soak_goals():
    result = soak.run(20, rate=25, clients=4, workers=2, interval=2, log=lambda line: None)
    note("soak smoke", **{k: result[k] for k in ("seconds", "requests_sent", "rows_recorded",
                                                 "max_rss_growth_pct", "failure_count")})
    assert result["failures"] == []
    assert result["requests_sent"] > 300
    assert result["missing_rows"] == 0 and result["rows_recorded"] == result["requests_sent"]
    assert result["goals"] == {goal: True for goal in result["goals"]}, result

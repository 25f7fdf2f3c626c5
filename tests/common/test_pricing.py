"""Costs match hand-computed bills; unknown models and odd usage never raise."""
import datetime
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.config import load
from common.pricing import RATES, builtin_table, load_prices, normalise_model, usage_counts

PRICES = load_prices()


def _usage(inp=0, out=0, read=0, w5=None, w1=None, total=None, **extra):
    usage = {"input_tokens": inp, "output_tokens": out, "cache_read_input_tokens": read}
    if w5 is not None or w1 is not None:
        usage["cache_creation"] = {"ephemeral_5m_input_tokens": w5 or 0,
                                   "ephemeral_1h_input_tokens": w1 or 0}
    usage["cache_creation_input_tokens"] = total if total is not None else (w5 or 0) + (w1 or 0)
    usage.update(extra)
    return usage


# Each figure worked by hand from the per-million prices in common/data/prices.json.
CASES = [
    # 2000×3 + 1500×15 + 140000×0.30 + 10000×3.75 + 40000×6 = 348000 µ$
    ("claude-sonnet-4-5", _usage(2000, 1500, 140000, w5=10000, w1=40000), 0.348),
    # Claude Code on Opus 4.7, 1-hour cache: 12×5 + 2345×25 + 98765×0.5 + 4321×10 = 151277.5 µ$
    ("claude-opus-4-7", _usage(12, 2345, 98765, w5=0, w1=4321), 0.1512775),
    # Only the total given: 5-minute rate. 500×1 + 200×5 + 8000×1.25 = 11500 µ$
    ("claude-haiku-4-5-20251001", _usage(500, 200, total=8000), 0.0115),
    # A split short of the total: the rest at 5 minutes. 1000×3.75 + 1000×6 = 9750 µ$
    ("claude-sonnet-4-5-20250929", _usage(w5=0, w1=1000, total=2000), 0.00975),
    # Haiku 5.5 over 100k prompt tokens: 90000×0.5 + 20000×0.05 + 1000×2.5 = 48500 µ$
    ("claude-haiku-5-5", _usage(90000, 1000, 20000), 0.0485),
    # ... and under it: 90000×0.1 + 1000×0.5 = 9500 µ$
    ("claude-haiku-5-5", _usage(90000, 1000), 0.0095),
    # Sonnet 4.5 past 200k (1M-context rates): 250000×6 + 1000×22.5 = 1522500 µ$
    ("claude-sonnet-4-5", _usage(250000, 1000), 1.5225),
    # Old Opus by dated id: 1M×15 + 1M×75
    ("claude-opus-4-1-20250805", _usage(1_000_000, 1_000_000), 90.0),
    # Bedrock spelling of Sonnet 4.5, with 3 web searches: 1000×3 + 3×$0.01
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0",
     _usage(1000, server_tool_use={"web_search_requests": 3}), 0.033),
    # Sonnet 5 cache reads: 1M×0.20
    ("claude-sonnet-5", _usage(read=1_000_000), 0.20),
]


@pytest.mark.parametrize("model, usage, expected", CASES)
def test_cost_matches_hand_computed_figure(model, usage, expected):
    cost = PRICES.cost(model, usage)
    assert round(cost, 2) == round(expected, 2)  # to the cent, as the bill shows it
    assert cost == pytest.approx(expected, abs=1e-9)


def test_five_minute_one_hour_and_reads_to_the_cent():
    # Opus 4.6: 3000×5 + 800×25 + 1.2M×0.5 + 50000×6.25 + 200000×10 = 2947500 µ$ = $2.95
    usage = _usage(3000, 800, 1_200_000, w5=50000, w1=200000)
    price = PRICES.price("claude-opus-4-6", usage)
    assert round(price.usd, 2) == 2.95
    assert price.parts == pytest.approx({"input": 0.015, "output": 0.02, "cache_read": 0.6,
                                         "cache_write_5m": 0.3125, "cache_write_1h": 2.0})


def test_unknown_model_is_unpriced_not_free():
    price = PRICES.price("gpt-4o", _usage(1000, 1000))
    assert (price.usd, price.known, price.priced_as) == (None, False, None)
    assert not PRICES.price("claude-opus-4-9", _usage(1000)).known  # a new version is not 4
    assert PRICES.cost(None, None) is None


@pytest.mark.parametrize("model, row", [
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
    ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
    ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
    ("claude-opus-4-6[1m]", "claude-opus-4-6"),
    ("claude-opus-4-20250514", "claude-opus-4"),
    ("Claude-Haiku-4-5", "claude-haiku-4-5"),
])
def test_model_ids_find_their_row(model, row):
    assert PRICES.lookup(model)[0] == row


def test_normalise_model_strips_every_suffix():
    assert normalise_model("eu.anthropic.claude-opus-4-1-20250805-v1:0") == "claude-opus-4-1"


@settings(max_examples=200, deadline=None)
@given(model=st.one_of(st.none(), st.text(max_size=30), st.sampled_from(sorted(PRICES.models))),
       usage=st.one_of(st.none(), st.dictionaries(
           st.sampled_from(["input_tokens", "output_tokens", "cache_read_input_tokens",
                            "cache_creation_input_tokens", "cache_creation", "server_tool_use"]),
           st.one_of(st.none(), st.integers(-10, 10**7), st.text(max_size=3), st.floats(),
                     st.dictionaries(st.text(max_size=30), st.integers(-5, 10**6))))))
def test_pricing_never_raises_and_is_never_negative(model, usage):
    cost = PRICES.cost(model, usage)
    assert cost is None if PRICES.lookup(model)[1] is None else cost >= 0.0


def test_usage_counts_prefers_the_split():
    counts = usage_counts(_usage(1, 2, 3, w5=4, w1=5))
    assert counts == {"input": 1, "output": 2, "cache_read": 3,
                      "cache_write_5m": 4, "cache_write_1h": 5}


def test_builtin_table_names_source_and_date_and_is_complete():
    table = builtin_table()
    assert table["source"].startswith("https://platform.claude.com/docs/en/about-claude/pricing")
    assert table["retrieved"] >= "2026-11-01"
    for model, row in table["models"].items():
        # every row names the Anthropic page its figures were read from, and when
        assert row["source"].startswith(("https://platform.claude.com/docs/",
                                         "https://docs.anthropic.com/")), model
        assert datetime.date.fromisoformat(row["read"]) >= datetime.date(2026, 11, 1), model
        assert all(row[rate] > 0 for rate in RATES), model
        if model != "claude-3-haiku":  # its 5-minute write ($0.30) is the page's one exception
            assert row["cache_write_5m"] == pytest.approx(row["input"] * 1.25), model
        assert row["cache_write_1h"] == pytest.approx(row["input"] * 2), model


def test_override_file_is_laid_over_the_builtin_table(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"retrieved": "2027-01-01", "models": {
        "claude-opus-4-6": {"input": 4},
        "acme-model": {"input": 1, "output": 2, "cache_read": 0, "cache_write_5m": 0,
                       "cache_write_1h": 0}}}))
    config = load({"NEXUS_PRICING_FILE": str(path)})
    prices = load_prices(config.pricing_file)
    assert prices.cost("claude-opus-4-6", _usage(1_000_000, 1_000_000)) == pytest.approx(29.0)
    assert prices.cost("acme-model", _usage(1_000_000, 1_000_000)) == pytest.approx(3.0)
    assert prices.cost("claude-opus-4-7", _usage(1_000_000)) == pytest.approx(5.0)
    assert prices.retrieved == "2027-01-01"


def test_bad_override_file_says_what_is_wrong(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON.*docs/pricing.md"):
        load_prices(str(path))
    path.write_text('{"models": []}')
    with pytest.raises(ValueError, match="expected"):
        load_prices(str(path))
    path.write_text('{"models": {"claude-sonnet-4-6": {"input": "three"}}}')
    with pytest.raises(ValueError, match="'claude-sonnet-4-6': input must be numbers"):
        load_prices(str(path))

"""What a request cost: per-model prices (common/data/prices.json) applied to its usage.

Prices are USD per million tokens: input, output, cache_read, cache_write_5m,
cache_write_1h. A file named by NEXUS_PRICING_FILE is laid over the built-in table,
field by field. A model with no row is *unpriced*: its cost is None, never a made-up 0
(stored as a null `cost_usd`; `nexus reprice` fills it once a price is added). Pricing
never raises.
"""
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources

RATES = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
_MILLION = Decimal(1_000_000)
_DATE_SUFFIX = re.compile(r"(-\d{8}|@\d{8}|-v\d+(:\d+)?|-latest|\[[^\]]*\])$")
_PLATFORM_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)?anthropic\.")


@dataclass(frozen=True)
class Cost:
    """A priced request: `usd` (None when unpriced), the table row used (`priced_as`),
    and whether one was found."""
    usd: float | None
    priced_as: str | None
    known: bool
    parts: dict = field(default_factory=dict)


def _tokens(usage, name):
    value = usage.get(name) if isinstance(usage, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return int(value) if 0 < value < 1e15 else 0  # also rejects NaN and infinities


def usage_counts(usage):
    """Token counts by rate name. Cache writes use the TTL split when the usage has one.

    Usage that gives only `cache_creation_input_tokens` is priced at the 5-minute rate:
    the API reports the `cache_creation` split wherever a 1-hour write is possible, so a
    bare total comes from before the 1-hour TTL existed, when every write was a 5-minute
    write. A split that sums to less than the total has its remainder priced at 5 minutes.
    """
    split = usage.get("cache_creation") if isinstance(usage, dict) else None
    total = _tokens(usage, "cache_creation_input_tokens")
    five = one = 0
    if isinstance(split, dict):
        five = _tokens(split, "ephemeral_5m_input_tokens")
        one = _tokens(split, "ephemeral_1h_input_tokens")
    five += max(0, total - five - one)
    return {"input": _tokens(usage, "input_tokens"),
            "output": _tokens(usage, "output_tokens"),
            "cache_read": _tokens(usage, "cache_read_input_tokens"),
            "cache_write_5m": five, "cache_write_1h": one}


def normalise_model(model):
    """The model id without platform prefix, date or version suffixes."""
    name = _PLATFORM_PREFIX.sub("", str(model or "").strip().lower())
    while True:
        stripped = _DATE_SUFFIX.sub("", name)
        if stripped == name:
            return name
        name = stripped


class Prices:
    """A price table: `cost(model, usage)` in USD, `price(model, usage)` with details."""

    def __init__(self, models, web_search_per_1000=0.0, source=None, retrieved=None):
        self.models = {k.lower(): dict(v) for k, v in models.items()}
        self.web_search_per_1000 = Decimal(str(web_search_per_1000 or 0))
        self.source = source
        self.retrieved = retrieved

    def lookup(self, model):
        """(row name, row) for `model`: exact id, then without suffixes, then by prefix."""
        exact = str(model or "").lower()
        if exact in self.models:
            return exact, self.models[exact]
        name = normalise_model(model)
        if name in self.models:
            return name, self.models[name]
        # A longer id of a known row is that model (claude-x-4-5-thinking), but a further
        # version number is a different model (claude-x-4-9 is not claude-x-4): unknown.
        prefixes = [k for k in self.models if name.startswith(k + "-")
                    and not name[len(k) + 1:].split("-")[0].isdigit()]
        if prefixes:
            best = max(prefixes, key=len)
            return best, self.models[best]
        return None, None

    def price(self, model, usage):
        """The `Cost` of one request with this usage."""
        name, row = self.lookup(model)
        if row is None:
            return Cost(None, None, False)
        counts = usage_counts(usage)
        rates = _rates_for(row, counts)
        parts = {rate: counts[rate] * rates[rate] / _MILLION for rate in RATES}
        tools = usage.get("server_tool_use") if isinstance(usage, dict) else None
        searches = _tokens(tools, "web_search_requests")
        if searches:
            parts["web_search"] = searches * self.web_search_per_1000 / 1000
        return Cost(float(sum(parts.values())), name, True,
                    {k: float(v) for k, v in parts.items()})

    def cost(self, model, usage):
        """USD for one request; None for a model without a price."""
        return self.price(model, usage).usd


def _rates_for(row, counts):
    long_prompt = row.get("long_prompt")
    prompt = counts["input"] + counts["cache_read"] + counts["cache_write_5m"] + counts["cache_write_1h"]
    if isinstance(long_prompt, dict) and prompt > long_prompt.get("threshold_tokens", prompt):
        row = dict(row, **{k: v for k, v in long_prompt.items() if k in RATES})
    return {rate: Decimal(str(row.get(rate) or 0)) for rate in RATES}


def _read_table(text, origin):
    try:
        table = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{origin}: not valid JSON ({error}); see docs/pricing.md") from None
    if not isinstance(table, dict) or not isinstance(table.get("models", {}), dict):
        raise ValueError(f'{origin}: expected {{"models": {{"<model id>": {{"input": …}}}}}}; '
                         "see docs/pricing.md")
    for model, row in table.get("models", {}).items():
        rows = [row, row.get("long_prompt") or {}] if isinstance(row, dict) else [None]
        for part in rows:
            bad = [r for r in RATES if not isinstance(part, dict) or not _is_rate(part.get(r, 0))]
            if bad:
                raise ValueError(f"{origin}: model {model!r}: {', '.join(bad)} must be numbers "
                                 "of USD per million tokens, 0 or more; see docs/pricing.md")
    return table


def _is_rate(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 <= value < float("inf"))


def builtin_table():
    """The table shipped in common/data/prices.json."""
    text = resources.files("common").joinpath("data/prices.json").read_text("utf-8")
    return _read_table(text, "common/data/prices.json")


def load_prices(path=None):
    """The built-in prices with the file at `path` (if any) laid over them, row by row."""
    table = builtin_table()
    models = {k: dict(v) for k, v in table["models"].items()}
    if path:
        with open(path, encoding="utf-8") as handle:
            override = _read_table(handle.read(), path)
        for model, row in override.get("models", {}).items():
            models[model] = {**models.get(model, {}), **row}
        table = {**table, **{k: v for k, v in override.items() if k != "models"}}
    return Prices(models, table.get("web_search_per_1000", 0.0),
                  table.get("source"), table.get("retrieved"))

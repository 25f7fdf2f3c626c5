"""Jinja filters for numbers, money, durations and times. Pure formatting, no markup."""
import datetime


def fmt_int(value):
    """1234567 → 1,234,567."""
    return f"{int(value or 0):,}"


def fmt_tokens(value):
    """Compact token counts: 950, 12.3k, 4.56M."""
    value = int(value or 0)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return str(value)


def fmt_cost(value):
    """Dollars with cents, and more digits below a cent; None is a request whose model
    has no known price ("unpriced"), never $0."""
    if value is None:
        return "unpriced"
    value = float(value)
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.4f}"


def fmt_ms(value):
    """Milliseconds as ms or s."""
    if value is None:
        return "–"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def fmt_time(value):
    """A naive UTC datetime as `YYYY-MM-DD HH:MM:SS`."""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "–"


def fmt_pct(value):
    """0.0123 → 1.2%."""
    return f"{100 * float(value or 0):.1f}%"


def fmt_bytes(value):
    """1536 -> '1.5 KB'; None -> '–'."""
    if value is None:
        return "–"
    if abs(value) < 1024:
        return f"{value:.0f} B"
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.1f} {unit}"


def install(app):
    """Register the filters on `app`'s Jinja environment."""
    for func in (fmt_int, fmt_tokens, fmt_cost, fmt_ms, fmt_time, fmt_pct, fmt_bytes):
        app.jinja_env.filters[func.__name__] = func

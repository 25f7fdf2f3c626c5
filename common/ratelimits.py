"""The upstream's anthropic-ratelimit-unified-* headers → a status a person can read. Pure."""
import datetime

PREFIX = "anthropic-ratelimit-unified-"
WINDOWS = (("5h", "five_hour"), ("7d", "seven_day"), ("7d_opus", "seven_day_opus"),
           ("7d_sonnet", "seven_day_sonnet"))


def _reset(value):
    try:
        return datetime.datetime.fromtimestamp(int(float(value)), datetime.timezone.utc).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _utilization(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def summarise(headers):
    """Overall status and, per window (5h, 7d…), status, utilization (0..1) and reset time."""
    unified = {}
    for name, value in (headers or {}).items():
        name = str(name).lower()
        if name.startswith(PREFIX):
            unified[name[len(PREFIX):]] = value
    if not unified:
        return None
    windows = []
    for short, key in WINDOWS:
        fields = {f: unified.get(f"{short}-{f}") for f in ("status", "utilization", "reset")}
        if any(v is not None for v in fields.values()):
            windows.append({"window": key, "status": fields["status"],
                            "utilization": _utilization(fields["utilization"]),
                            "reset": _reset(fields["reset"])})
    return {"status": unified.get("status"), "reset": _reset(unified.get("reset")),
            "representative_claim": unified.get("representative-claim"),
            "fallback_percentage": unified.get("fallback-percentage"),
            "overage_status": unified.get("overage-status"), "windows": windows}

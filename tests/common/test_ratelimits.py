"""Unified rate-limit headers → status per window."""
import datetime

from common.ratelimits import summarise


def test_windows_status_utilization_and_reset():
    summary = summarise({
        "anthropic-ratelimit-unified-status": "allowed",
        "anthropic-ratelimit-unified-5h-status": "allowed",
        "anthropic-ratelimit-unified-5h-utilization": "0.42",
        "anthropic-ratelimit-unified-5h-reset": "1767225600",
        "anthropic-ratelimit-unified-7d-utilization": "bogus",
        "anthropic-ratelimit-unified-representative-claim": "five_hour",
        "retry-after": "5"})
    assert summary["status"] == "allowed" and summary["representative_claim"] == "five_hour"
    five, seven = summary["windows"]
    assert five == {"window": "five_hour", "status": "allowed", "utilization": 0.42,
                    "reset": datetime.datetime(2026, 1, 1)}
    assert seven["window"] == "seven_day" and seven["utilization"] is None


def test_no_unified_headers():
    assert summarise({"anthropic-ratelimit-requests-limit": "50"}) is None
    assert summarise(None) is None

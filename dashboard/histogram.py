"""Latency percentiles from the bucketed histograms of the hourly aggregates. Pure."""
from common.recording.aggregates import percentile_from_histogram
from common.models import histogram_columns


def summarise(row, prefix):
    """p50 and p95 of the `prefix` histogram held in `row` (a dict of column sums)."""
    counts = [row.get(col) or 0 for col in histogram_columns(prefix)]
    return {"p50": percentile_from_histogram(counts, 0.5),
            "p95": percentile_from_histogram(counts, 0.95)}

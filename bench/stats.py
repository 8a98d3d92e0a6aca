"""Small statistics helpers: percentiles of samples and of Prometheus histograms."""

from __future__ import annotations

import math
import re


def percentile(samples: list[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation; nan when there is none."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    k = (len(ordered) - 1) * p / 100
    low, high = math.floor(k), math.ceil(k)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of histogram `name` in Prometheus text format."""
    buckets: dict[float, float] = {}
    for match in re.finditer(rf'^{name}_bucket{{le="([^"]+)"}} ([0-9.e+]+)$', text, re.M):
        bound = math.inf if match.group(1) == "+Inf" else float(match.group(1))
        buckets[bound] = float(match.group(2))
    return buckets


def histogram_percentile(before: dict[float, float], after: dict[float, float],
                         p: float) -> float:
    """The p-th percentile of what a histogram observed between two scrapes, interpolated
    within the bucket (an estimate: as fine as the buckets)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0
    if not total:
        return math.nan
    wanted = total * p / 100
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= wanted:
            if math.isinf(bound):
                return previous_bound
            share = (wanted - previous_count) / max(count - previous_count, 1e-9)
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound

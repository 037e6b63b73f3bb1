"""Latency statistics with a fixed memory footprint (no allocation per sample).

Samples are seconds as float64 in a preallocated ring; count, max and the
number of samples are exact over the whole run, percentiles are over the last
``capacity`` samples (default 2**17: 4.4 min at 500 Hz, 36 min at 60 Hz).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """p50/p99/max of one measured quantity, seconds; ``count`` samples in all."""

    count: int
    p50_s: float
    p99_s: float
    max_s: float
    mean_s: float

    def as_dict(self) -> dict[str, float]:
        return {"count": self.count, "p50_s": self.p50_s, "p99_s": self.p99_s, "max_s": self.max_s, "mean_s": self.mean_s}


class LatencyStats:
    """Ring of float64 samples (seconds)."""

    def __init__(self, capacity: int = 1 << 17) -> None:
        if capacity <= 0:
            raise ValueError(f"LatencyStats: capacity = {capacity} must be > 0")
        self._buf = np.zeros(capacity, dtype=np.float64)
        self._capacity = capacity
        self.count = 0
        self.max_s = 0.0
        self._sum = 0.0

    def add(self, seconds: float) -> None:
        self._buf[self.count % self._capacity] = seconds
        self.count += 1
        self._sum += seconds
        if seconds > self.max_s:
            self.max_s = seconds

    def samples(self) -> np.ndarray:
        """A copy of the retained samples (oldest first is not guaranteed), s."""
        n = min(self.count, self._capacity)
        return self._buf[:n].copy()

    def summary(self) -> LatencySummary:
        n = min(self.count, self._capacity)
        if n == 0:
            return LatencySummary(0, float("nan"), float("nan"), float("nan"), float("nan"))
        p50, p99 = np.percentile(self._buf[:n], [50.0, 99.0])
        return LatencySummary(self.count, float(p50), float(p99), float(self.max_s), self._sum / self.count)

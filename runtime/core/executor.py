"""Fixed-rate loop on absolute deadlines, with an explicit overrun policy and statistics.

Deadline ``k`` is ``t0 + k * period_ns`` (integers, ns, monotonic clock), so there is
no drift: after N cycles the loop is at ``t0 + N * period`` whatever the jitter.

Overrun policy (never burst to catch up): when a cycle ends after the deadline of
the next cycle, the deadlines already passed are *skipped* and counted in
``missed``; the loop resumes at the first deadline still in the future.

Garbage collection is kept out of the cycle: on ``run`` the heap is frozen
(``gc.freeze``) and automatic collection disabled; a generation-0 collection runs
only in slack (when at least ``gc_min_slack_fraction`` of the period is left), at
most every ``gc_every_cycles`` cycles, and its time is recorded as the ``gc`` stage.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Callable

from firmware_bridge.clock import Clock
from runtime.core.latency import LatencyStats, LatencySummary


@dataclass(slots=True)
class CycleInfo:
    """Times of the cycle being run (ns, monotonic). Reused between cycles: copy what you keep."""

    index: int = 0            # cycle number actually run (0, 1, 2, ...)
    deadline_index: int = 0   # k of the deadline this cycle was scheduled for
    scheduled_ns: int = 0     # t0 + k * period
    start_ns: int = 0         # when the loop woke up
    lateness_ns: int = 0      # start - scheduled (>= 0 on a real clock)
    missed_total: int = 0     # deadlines skipped so far


@dataclass(frozen=True, slots=True)
class LoopReport:
    """Summary of a loop's timing over its run."""

    name: str
    rate_hz: float
    cycles: int
    missed: int
    overruns: int
    lateness: LatencySummary
    duration: LatencySummary
    stages: dict[str, LatencySummary]
    elapsed_s: float

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name, "rate_hz": self.rate_hz, "cycles": self.cycles, "missed": self.missed,
            "overruns": self.overruns, "elapsed_s": self.elapsed_s,
            "expected_cycles": self.expected_cycles,
            "lateness": self.lateness.as_dict(), "duration": self.duration.as_dict(),
            "stages": {k: v.as_dict() for k, v in self.stages.items()},
        }

    @property
    def expected_cycles(self) -> int:
        """Deadlines that fell inside the run: cycles + missed should equal this within one."""
        return int(round(self.elapsed_s * self.rate_hz))


class StageTimer:
    """Per-stage durations of one loop; a stage reports with ``record(name, seconds)``."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self.stats: dict[str, LatencyStats] = {}
        self.last: dict[str, float] = {}

    def record(self, name: str, seconds: float) -> None:
        stats = self.stats.get(name)
        if stats is None:
            stats = self.stats[name] = LatencyStats(self._capacity)
        stats.add(seconds)
        self.last[name] = seconds


class FixedRateLoop:
    """Run ``step(info)`` at ``rate_hz`` on absolute deadlines of ``clock``.

    ``step`` reports its stage times through ``loop.stages.record``; ``on_cycle(info, duration_ns)``
    (optional) is called after each cycle with the cycle's own duration, for telemetry.
    """

    def __init__(self, name: str, rate_hz: float, clock: Clock, *, stats_capacity: int = 1 << 17,
                 manage_gc: bool = True, gc_every_cycles: int = 10, gc_min_slack_fraction: float = 0.5) -> None:
        if not (0.0 < rate_hz <= 10_000.0):
            raise ValueError(f"{name}: rate_hz = {rate_hz!r} outside the allowed range (0, 10000] Hz")
        self.name = name
        self.rate_hz = float(rate_hz)
        self.period_ns = int(round(1e9 / rate_hz))
        self.clock = clock
        self.manage_gc = manage_gc
        self.gc_every_cycles = gc_every_cycles
        self.gc_min_slack_ns = int(self.period_ns * gc_min_slack_fraction)
        self.lateness = LatencyStats(stats_capacity)
        self.duration = LatencyStats(stats_capacity)
        self.stages = StageTimer(stats_capacity)
        self.cycles = 0
        self.missed = 0
        self.overruns = 0
        self.t0_ns: int | None = None
        self._end_ns = 0
        self._stop = False
        self.info = CycleInfo()

    def stop(self) -> None:
        """Ask the loop to return after the current cycle (safe from a signal handler)."""
        self._stop = True

    def run(self, step: Callable[[CycleInfo], None], *, cycles: int | None = None, duration_s: float | None = None,
            should_stop: Callable[[], bool] | None = None,
            on_cycle: Callable[[CycleInfo, int], None] | None = None, start_ns: int | None = None) -> LoopReport:
        """Run until ``cycles`` were run, ``duration_s`` elapsed, ``stop()`` or ``should_stop()``."""
        clock = self.clock
        period = self.period_ns
        gc_was_enabled = gc.isenabled()
        if self.manage_gc:  # before t0: a full collection can take tens of ms
            gc.collect()
            gc.freeze()
            gc.disable()
        t0 = clock.now_ns() + period if start_ns is None else start_ns
        self.t0_ns = t0
        end_ns = t0 + int(duration_s * 1e9) if duration_s is not None else None
        info = self.info
        k = 0
        try:
            while not self._stop:
                if cycles is not None and self.cycles >= cycles:
                    break
                deadline = t0 + k * period
                if end_ns is not None and deadline >= end_ns:
                    break
                clock.sleep_until_ns(deadline)
                start = clock.now_ns()
                info.index = self.cycles
                info.deadline_index = k
                info.scheduled_ns = deadline
                info.start_ns = start
                info.lateness_ns = start - deadline
                info.missed_total = self.missed
                step(info)
                end = clock.now_ns()
                self.cycles += 1
                self.lateness.add(info.lateness_ns * 1e-9)
                self.duration.add((end - start) * 1e-9)
                if on_cycle is not None:
                    on_cycle(info, end - start)
                # Overrun policy: skip every deadline already passed, never burst.
                next_k = k + 1
                if end > t0 + next_k * period:
                    self.overruns += 1
                    next_k = (end - t0) // period + 1
                    self.missed += next_k - (k + 1)
                k = next_k
                if self.manage_gc and self.cycles % self.gc_every_cycles == 0:
                    now = clock.now_ns()
                    if t0 + k * period - now >= self.gc_min_slack_ns:
                        gc.collect(0)
                        self.stages.record("gc", (clock.now_ns() - now) * 1e-9)
                if should_stop is not None and should_stop():
                    break
        finally:
            self._end_ns = clock.now_ns()
            if self.manage_gc:
                gc.unfreeze()
                if gc_was_enabled:
                    gc.enable()
        return self.report()

    def report(self) -> LoopReport:
        elapsed = max(0, (self._end_ns or self.clock.now_ns()) - (self.t0_ns or 0)) * 1e-9 if self.t0_ns else 0.0
        return LoopReport(self.name, self.rate_hz, self.cycles, self.missed, self.overruns,
                          self.lateness.summary(), self.duration.summary(),
                          {k: v.summary() for k, v in self.stages.stats.items()}, elapsed)

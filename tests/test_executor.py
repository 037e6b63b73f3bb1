"""Fixed-rate loop timing rules, proven on a FakeClock (no sleeping) and once on the real clock."""
import gc

import pytest

from firmware_bridge.clock import FakeClock, MonotonicClock
from runtime.core.executor import FixedRateLoop


def test_no_drift_over_ten_minutes_at_60hz():
    clock = FakeClock(wake_latency_ns=lambda d: (d // 7) % 900_000)  # up to 0.9 ms late wake-ups, varying
    loop = FixedRateLoop("est", 60.0, clock, manage_gc=False)
    rep = loop.run(lambda info: clock.advance(2_000_000), duration_s=600.0)
    assert rep.missed == 0
    assert abs(rep.cycles - 600 * 60) <= 1
    # the last cycle is scheduled on the grid: t0 + k * period, no accumulated lateness
    assert loop.info.scheduled_ns == loop.t0_ns + loop.info.deadline_index * loop.period_ns
    assert abs(rep.elapsed_s * 60.0 - (rep.cycles + rep.missed)) <= 1.0


def test_overrun_skips_missed_deadlines_and_never_bursts():
    clock = FakeClock()
    period = 2_000_000
    starts = []

    def step(info):
        starts.append((info.deadline_index, info.start_ns))
        if info.index == 10:
            clock.advance(int(2.5 * period))   # this cycle overruns by 2.5 periods
        else:
            clock.advance(100_000)

    loop = FixedRateLoop("torque", 500.0, clock, manage_gc=False)
    rep = loop.run(step, cycles=20)
    assert rep.overruns == 1
    assert rep.missed == 2                          # deadlines 11 and 12 were skipped
    ks = [k for k, _ in starts]
    assert ks[:11] == list(range(11)) and ks[11] == 13
    gaps = [b[1] - a[1] for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= period                      # never two cycles closer than one period
    assert all(s == loop.t0_ns + k * period for k, s in starts)


def test_late_wakeup_is_measured_as_lateness():
    clock = FakeClock(wake_latency_ns=lambda d: 300_000)
    loop = FixedRateLoop("x", 100.0, clock, manage_gc=False)
    rep = loop.run(lambda info: None, cycles=50)
    assert rep.lateness.p50_s == pytest.approx(300e-6)
    assert rep.lateness.max_s == pytest.approx(300e-6)
    assert rep.missed == 0


def test_stage_times_are_recorded_per_stage():
    clock = FakeClock()
    loop = FixedRateLoop("x", 60.0, clock, manage_gc=False)

    def step(info):
        t = clock.now_ns()
        clock.advance(1_000_000)
        loop.stages.record("pose", (clock.now_ns() - t) * 1e-9)

    rep = loop.run(step, cycles=30)
    assert rep.stages["pose"].count == 30
    assert rep.stages["pose"].p99_s == pytest.approx(1e-3)
    assert rep.duration.max_s == pytest.approx(1e-3)


def test_gc_is_frozen_during_the_loop_and_restored_after():
    clock = FakeClock()
    seen = []
    loop = FixedRateLoop("x", 60.0, clock, gc_every_cycles=5)
    was = gc.isenabled()
    rep = loop.run(lambda info: seen.append(gc.isenabled()), cycles=20)
    assert not any(seen)
    assert gc.isenabled() == was
    assert rep.stages["gc"].count == 4          # collections ran in slack, every 5 cycles


def test_gc_skipped_when_no_slack():
    clock = FakeClock()
    loop = FixedRateLoop("x", 100.0, clock, gc_every_cycles=1, gc_min_slack_fraction=0.5)
    rep = loop.run(lambda info: clock.advance(8_000_000), cycles=10)   # 80 % of the period used
    assert "gc" not in rep.stages


def test_rate_out_of_range_rejected_with_value():
    with pytest.raises(ValueError, match="rate_hz = 0"):
        FixedRateLoop("x", 0, FakeClock())


def test_real_clock_count_matches_wall_time():
    loop = FixedRateLoop("real", 500.0, MonotonicClock())
    rep = loop.run(lambda info: None, duration_s=1.0)
    assert abs((rep.cycles + rep.missed) - rep.expected_cycles) <= 1

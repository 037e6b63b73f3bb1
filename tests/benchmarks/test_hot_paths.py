"""Per-cycle hot paths of the torque loop, each against a reference measured in the same run.

Every group has a ``reference`` variant (the same work done the plainest way) run first, so
the figure to quote is the ratio (printed in the "hot paths" table at the end, and stored as
``extra_info["x_reference"]``): absolute nanoseconds on a shared 2-core VM drift from run to run,
ratios much less. Medians, not means, because the machine is noisy.

* ``LatestValueBuffer.write`` + ``read`` (seqlock, shared memory) of the real command record
  vs the same two numpy record copies without the seqlock.
* ``SafetySupervisor.update`` for one joint (ACTIVE, t advancing 2 ms a call) vs a bare
  Python ``min``/``max`` clamp.
* ``RecordRing.slot()`` / ``commit()`` push of the real telemetry record (one field written, as
  the cheapest use; ``push(record)`` too) vs a numpy record copy into a local ring.
"""
from __future__ import annotations

import numpy as np
import pytest

from controllers.safety import JointLimits, SafetyParams, SafetyState, SafetySupervisor
from runtime.core.channels import command_dtype, torque_record_dtype
from runtime.core.shared_memory import LatestValueBuffer, RecordRing

BENCH = dict(min_rounds=20, max_time=0.5, warmup=True, warmup_iterations=2000)
RING_CAPACITY = 4096


def _record(benchmark, hot_results, group: str, variant: str) -> None:
    """Keep the median per call; put the ratio to the group's reference into extra_info."""
    median = benchmark.stats.stats.median
    variants = hot_results.setdefault(group, {})
    variants[variant] = median
    benchmark.extra_info["median_ns"] = median * 1e9
    ref = variants.get("reference")
    if ref:
        benchmark.extra_info["x_reference"] = median / ref


# ------------------------------------------------------------------ latest-value buffer
@pytest.mark.benchmark(group="latest-value write+read", **BENCH)
@pytest.mark.parametrize("variant", ["reference", "LatestValueBuffer"])
def test_latest_value_write_read(benchmark, hot_results, variant):
    dt = command_dtype(1)
    src = np.zeros(1, dtype=dt)
    src[0]["frame_index"], src[0]["capture_ns"], src[0]["write_ns"], src[0]["torque_nm"] = 7, 1_000, 2_000, [5.0]
    out = np.zeros(1, dtype=dt)
    if variant == "reference":
        mid = np.zeros(1, dtype=dt)   # the same two record copies, no sequence counter

        def fn():
            mid[0] = src[0]
            out[0] = mid[0]
            return 1
        benchmark(fn)
    else:
        buf = LatestValueBuffer(dt)
        try:
            def fn():
                buf.write(src[0])
                return buf.read(out)
            seq = benchmark(fn)
            assert seq == buf.sequence > 0, "read did not return the write just made"
        finally:
            buf.close()
    assert out[0]["frame_index"] == 7 and out[0]["torque_nm"][0] == 5.0
    _record(benchmark, hot_results, "latest-value write+read", variant)


# ------------------------------------------------------------------ safety supervisor
@pytest.mark.benchmark(group="safety update, 1 joint", **BENCH)
@pytest.mark.parametrize("variant", ["reference", "SafetySupervisor.update"])
def test_safety_update_one_joint(benchmark, hot_results, variant):
    req = [5.0]
    out = [0.0]
    t = [1_000_000_000]
    if variant == "reference":
        lim = 18.0

        def fn():
            t[0] += 2_000_000
            out[0] = min(lim, max(-lim, req[0]))
            return out
        benchmark(fn)
    else:
        sup = SafetySupervisor(SafetyParams(joints=(JointLimits("knee_r", 18.0, 300.0, -0.05, 2.1, 12.0),)))
        assert sup.activate(t[0])
        update = sup.update

        def fn():
            t[0] += 2_000_000
            return update(req, t[0], out)
        benchmark(fn)
        assert sup.state is SafetyState.ACTIVE and not sup.latched, "a fault changed the path being measured"
    assert out[0] == 5.0  # slewed up to the request (0.6 N*m per 2 ms call) and stays there
    _record(benchmark, hot_results, "safety update, 1 joint", variant)


# ------------------------------------------------------------------ record ring
@pytest.mark.benchmark(group="record ring push", **BENCH)
@pytest.mark.parametrize("variant", ["reference", "RecordRing.slot/commit", "RecordRing.push"])
def test_record_ring_push(benchmark, hot_results, variant):
    dt = torque_record_dtype(1)
    rec = np.zeros(1, dtype=dt)
    rec[0]["cycle"], rec[0]["commanded_nm"] = 3, [5.0]
    if variant == "reference":
        local = np.zeros(RING_CAPACITY, dtype=dt)   # a numpy record copy into a local ring
        n = [0]

        def fn():
            i = n[0]
            local[i % RING_CAPACITY] = rec[0]
            n[0] = i + 1
        benchmark(fn)
        assert n[0] > 0
    else:
        ring = RecordRing(dt, RING_CAPACITY)
        try:
            if variant == "RecordRing.slot/commit":
                slot, commit = ring.slot, ring.commit

                def fn():
                    r = slot()[0]
                    r["cycle"] = 3
                    commit()
            else:
                push, one = ring.push, rec[0]

                def fn():
                    push(one)
            benchmark(fn)
            written = ring.written
            assert written > 0
            assert ring.drain()[-1]["cycle"] == 3
        finally:
            ring.close()
    _record(benchmark, hot_results, "record ring push", variant)

"""Per-cycle cost of the tissue compensator (goal < 0.2 ms a cycle on this CPU), against a reference.

``TissueCompensator.step`` with the versioned artifact's surrogate, on a gait-like stream (desired torque
and knee rate changing every call, 2 ms apart), versus the ``reference``: ``SafetySupervisor.update`` for
one joint, the other per-cycle stage of the torque loop, measured in the same run. The figure to quote is
the median per call (``extra_info["median_us"]``) and its ratio to the reference (``x_reference``).

The whole torque cycle (``controllers.torque_cycle.TorqueCycle``: a new command every 8th cycle, interpolation,
staleness from capture, joint check, tissue compensator or not, supervisor) with and without compensation, one
joint: ``x_reference`` against the rigid cycle; ``budget_fraction`` is the median over the 2 ms period at 500 Hz.
"""
from __future__ import annotations

import math

import pytest

from controllers.safety import JointLimits, SafetyParams, SafetySupervisor
from controllers.tissue_compensator import CompensatorParams, TissueCompensator, load_artifact
from controllers.torque_cycle import TorqueCycle, TorqueCycleParams

BENCH = dict(min_rounds=20, max_time=0.5, warmup=True, warmup_iterations=2000)
DT = 0.002


def _record(benchmark, hot_results, group: str, variant: str) -> None:
    median = benchmark.stats.stats.median
    variants = hot_results.setdefault(group, {})
    variants[variant] = median
    benchmark.extra_info["median_us"] = median * 1e6
    ref = variants.get("reference")
    if ref:
        benchmark.extra_info["x_reference"] = median / ref


@pytest.mark.benchmark(group="tissue compensator per cycle", **BENCH)
@pytest.mark.parametrize("variant", ["reference", "TissueCompensator", "TissueCompensator+feedback"])
def test_compensator_cycle(benchmark, hot_results, variant):
    state = {"k": 0}
    if variant == "reference":
        sup = SafetySupervisor(SafetyParams(joints=(JointLimits("knee", 18.0, 300.0, -0.2, 2.6, 12.0),)))
        sup.activate(0)
        out = [0.0]

        def fn():
            k = state["k"] = state["k"] + 1
            return sup.update([10.0 * math.sin(0.0126 * k)], k * 2_000_000, out)[0]
    else:
        surrogate, _ = load_artifact()
        fb = 0.3 if variant.endswith("feedback") else 0.0
        comp = TissueCompensator(surrogate, CompensatorParams(feedback_gain=fb, deflection_feedforward=bool(fb)))

        def fn():
            k = state["k"] = state["k"] + 1
            ph = 0.0126 * k                       # 1 Hz stride at 500 Hz
            knee = 0.8 + 0.5 * math.sin(ph)
            vk = 0.5 * 6.283 * math.cos(ph)
            tau = -12.0 * max(0.0, math.sin(ph))
            return comp.step(tau, knee, vk, knee + tau / 1200.0, vk, DT)
    benchmark(fn)
    _record(benchmark, hot_results, "tissue compensator", variant)
    if variant != "reference":
        assert math.isfinite(fn())


def _gait(k: int) -> tuple[float, float, float]:
    """(desired N*m, knee rad, knee rad/s) of a 1 Hz stride at torque cycle k (500 Hz)."""
    ph = 0.0126 * k
    return -12.0 * max(0.0, math.sin(ph)), 0.8 + 0.5 * math.sin(ph), 0.5 * 6.283 * math.cos(ph)


@pytest.mark.benchmark(group="torque cycle (whole) per cycle", **BENCH)
@pytest.mark.parametrize("variant", ["reference", "TorqueCycle+compensation"])
def test_torque_cycle(benchmark, hot_results, variant):
    """``reference``: the rigid cycle (``tissue_compensation: false``); the other the same with the compensator."""
    comp = TissueCompensator(load_artifact()[0]) if variant != "reference" else None
    sp = SafetyParams(joints=(JointLimits("knee", 18.0, 300.0, -0.2, 2.6, 12.0),))
    cyc = TorqueCycle(TorqueCycleParams(safety=sp, estimation_period_s=1 / 60), comp)
    cyc.supervisor.activate(0)
    state = {"k": 0}

    def fn():
        k = state["k"] = state["k"] + 1
        now = k * 2_000_000
        tau, knee, vk = _gait(k)
        if k % 8 == 0:
            cyc.new_command(k, now - 5_000_000, now, (tau,), knee)
        cyc.interpolate(now)
        cyc.check_age(now)
        cyc.observe_joint(0, knee + tau / 1200.0, vk, now)
        return cyc.step(now)[0]

    benchmark(fn)
    _record(benchmark, hot_results, "torque cycle", variant)
    benchmark.extra_info["budget_fraction"] = benchmark.stats.stats.median / DT
    assert math.isfinite(fn()) and cyc.supervisor.state.value == "ACTIVE"
    assert (cyc.motor_request[0] != cyc.requested[0]) == (comp is not None)

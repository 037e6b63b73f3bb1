"""The whole offline chain from markers, per 10 s of motion (issue 22: goal <= 0.5 s), by stage.

The chain of :func:`models.trial_analysis.analyze_trial` with ``muscles=True`` and the kinematics-only GRF, then
:func:`models.muscles.knee_contact.knee_contact_from_analysis`, stage by stage on every shared trial
(:func:`models.io.shared_trials.shared_trials`, 8 trials of 2 subjects):

* ``kinematics``: subject model (scaling), marker IK, low-pass + derivatives, OpenSim -> MuJoCo state
  (:func:`~models.trial_analysis.trial_kinematics`);
* ``grf``: GRF and CoP from the kinematics (:func:`~models.trial_analysis.kinematic_foot_wrenches`);
* ``dynamics``: inverse dynamics, knee moments, static optimisation (:func:`~models.trial_analysis.trial_dynamics`);
* ``contact``: knee contact force (:func:`~models.muscles.knee_contact.knee_contact_from_analysis`).

CPU seconds (``time.process_time``; the figure to quote on a shared machine) summed over the trials, scaled to 10 s
of motion, and frames per second.  Reference in the same run: the same chain with the compiled MuJoCo loops off
(:func:`models.dynamics.mj_capi.capi_available` patched to false: inverse dynamics, SO and contact as the Python
stage loops), the ratio printed.  One untimed pass first loads numba's caches.  Measured, never asserted.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from models.io.lab_files import shared_data_dir
from models.io.shared_trials import shared_trials

STAGES = ("kinematics", "grf", "dynamics", "contact")
GOAL_S_PER_10S = 0.5


def _trials():
    root = shared_data_dir()
    try:
        return list(shared_trials(root))
    except (FileNotFoundError, OSError):
        return []


def _chain_cpu(trial) -> tuple[dict[str, float], float, int]:
    """CPU seconds per stage of one trial, its motion (s) and frames."""
    from models.muscles.knee_contact import knee_contact_from_analysis
    from models.trial_analysis import AnalyzeParams, kinematic_foot_wrenches, trial_dynamics, trial_kinematics

    p = AnalyzeParams(trial.mass_kg, trial.height_m, trial.side, muscles=True)
    c = [time.process_time()]
    kin = trial_kinematics(trial.trc, trial.markerset, p)
    c.append(time.process_time())
    notes: list[str] = []
    feet = kinematic_foot_wrenches(kin, p, notes)
    c.append(time.process_time())
    res = trial_dynamics(kin, feet, "kinematics", p, notes)
    c.append(time.process_time())
    kc = knee_contact_from_analysis(kin, res)
    c.append(time.process_time())
    assert np.isfinite(kc.total_n).any()
    motion = float(kin.time_s[-1] - kin.time_s[0] + 1.0 / kin.rate_hz)
    return dict(zip(STAGES, np.diff(c))), motion, int(kin.time_s.size)


def _all(trials) -> tuple[dict[str, float], float, int]:
    tot = dict.fromkeys(STAGES, 0.0)
    motion, frames = 0.0, 0
    for t in trials:
        st, m, n = _chain_cpu(t)
        for k in STAGES:
            tot[k] += st[k]
        motion += m
        frames += n
    return tot, motion, frames


def test_offline_chain_from_markers_per_10s(benchmark, monkeypatch):
    trials = _trials()
    if not trials:
        pytest.skip(f"shared trials absent at {shared_data_dir()}")
    from models.dynamics import mj_capi

    _chain_cpu(trials[0])                                   # numba caches, imports
    ours = benchmark.pedantic(lambda: _all(trials), rounds=1, iterations=1)
    ours2 = _all(trials)
    ours = min((ours, ours2), key=lambda r: sum(r[0].values()))
    monkeypatch.setattr(mj_capi, "capi_available", lambda: (False, "benchmark reference: compiled loops off"))
    ref = min((_all(trials), _all(trials)), key=lambda r: sum(r[0].values()))
    motion, frames = ours[1], ours[2]
    scale = 10.0 / motion
    lines = ["", f"offline chain from markers, {len(trials)} shared trials, {motion:.2f} s of motion, {frames} frames "
                 "(CPU s per 10 s of motion; reference: the compiled loops off, same run)",
             f"{'stage':<12} {'ours':>8} {'ref':>8} {'x ref':>7}"]
    for k in STAGES:
        lines.append(f"{k:<12} {ours[0][k] * scale:>8.3f} {ref[0][k] * scale:>8.3f} {ref[0][k] / ours[0][k]:>7.2f}")
    total, total_ref = sum(ours[0].values()), sum(ref[0].values())
    lines.append(f"{'total':<12} {total * scale:>8.3f} {total_ref * scale:>8.3f} {total_ref / total:>7.2f}   "
                 f"({frames / total:.0f} frames/s; goal <= {GOAL_S_PER_10S} s per 10 s: "
                 f"{'met' if total * scale <= GOAL_S_PER_10S else 'NOT met'})")
    print("\n".join(lines))
    benchmark.extra_info.update({"trials": len(trials), "motion_s": motion, "frames": frames,
                                 "cpu_s_per_10s": total * scale, "ref_cpu_s_per_10s": total_ref * scale,
                                 "stages_cpu_s_per_10s": {k: v * scale for k, v in ours[0].items()},
                                 "ref_stages_cpu_s_per_10s": {k: v * scale for k, v in ref[0].items()},
                                 "goal_s_per_10s": GOAL_S_PER_10S})

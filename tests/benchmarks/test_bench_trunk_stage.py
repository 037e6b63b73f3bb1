"""Per-frame cost of the trunk in the real-time estimation chain (``EstimatorParams.grf_trunk``): the chain step with
and without it, and its ``trunk`` stage (``models.grf.trunk.TrunkTracker`` on the IK pose and the thorax markers,
then the causal low-pass of the angles), MyoLeg scaled to GC5 PS, PS ss1 held to 60 Hz, frames visited back and
forth (warm starts never see a jump). Printed, never asserted.
"""
from __future__ import annotations

import numpy as np
import pytest

from models.io.lab_files import shared_data_dir
from models.io.shared_trials import shared_trials
from runtime.estimation.chain import EstimatorParams, KinematicsToLoads, load_marker_recording, resample_hold

GROUP = "estimation chain trunk PS ss1 60 Hz"


@pytest.fixture(scope="module")
def trial():
    from _support import shared_data

    shared_data("GC5_PS", "model", "GC5.osim")          # skip with the reason when the lab data are absent
    return next(t for t in shared_trials(shared_data_dir()) if t.name == "PS_ss1")


def _back_and_forth(n: int):
    i, d = 0, 1
    while True:
        yield i
        if not 0 <= i + d < n:
            d = -d
        i += d


@pytest.mark.parametrize("trunk", [False, True], ids=["trunk held to the pelvis", "grf_trunk"])
def test_chain_step_with_and_without_the_trunk(benchmark, trial, trunk, hot_results):
    est = KinematicsToLoads.for_subject(trial.markerset, EstimatorParams(trial.mass_kg, trial.height_m, trial.side,
                                                                         rate_hz=60.0, grf_trunk=trunk))
    rec = resample_hold(load_marker_recording(trial.trc, est.marker_names, est.torso), 60.0)
    order = _back_and_forth(rec.time_s.size)
    stages: dict[str, list[float]] = {}

    def one():
        i = next(order)
        f = est.step(rec.markers_m[i], rec.time_s[i], torso_m=rec.torso_markers_m[i])
        for k, v in f.stage_s.items():
            stages.setdefault(k, []).append(v)

    benchmark.pedantic(one, rounds=600, iterations=1, warmup_rounds=30)
    med = benchmark.stats.stats.median
    name = "grf_trunk" if trunk else "trunk held to the pelvis"
    hot_results.setdefault(GROUP, {})[name] = med
    benchmark.extra_info["median_ms"] = med * 1e3
    print(f"\n{GROUP}, {name}: chain step median {med * 1e3:.2f} ms")
    for k, v in stages.items():
        print(f"  {k:22s} median {np.median(v) * 1e3:7.3f} ms  p99 {np.percentile(v, 99) * 1e3:7.3f} ms")

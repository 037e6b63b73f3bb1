"""Per-frame cost of the learned knee contact force estimator (goal <= 0.2 ms a frame on this CPU), measured,
never asserted.

``LearnedKcf.step``: one 60 Hz frame of features in, the window shifted, onnxruntime on (1, 32, F) (one thread),
medial and lateral KCF out; against the ``reference`` of ``KcfFeatures.step`` (the feature extraction from a
chain frame and its muscle tensions and tibia reaction, which the learned mode adds too). The figure to quote is ``extra_info["median_us"]``.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from models.muscles.kcf_features import KNEE_MUSCLES, N_FEATURES, KcfFeatures

BENCH = dict(min_rounds=50, max_time=1.0, warmup=True, warmup_iterations=200)


def _frame(k: int) -> SimpleNamespace:
    ph = 2 * math.pi * k / 60.0
    muscles = [m + "_l" for m in KNEE_MUSCLES]
    return SimpleNamespace(coordinates_rad=0.3 * np.sin(ph + np.arange(5)), grf_n=np.array([[0, 0, 0], [20, 5, 700]]),
                           cop_m=np.array([[np.nan] * 3, [0.01 * k, 0.0, 0.0]]), contact=np.array([False, True]),
                           kam_pct_bw_ht=2.0, kem_pct_bw_ht=1.0, knee_moment_nm=30.0, synergy=np.full(4, 0.2),
                           activation=np.full(len(muscles), 0.1), muscle_names=muscles)


@pytest.mark.benchmark(group="learned KCF per frame", **BENCH)
@pytest.mark.parametrize("variant", ["reference", "LearnedKcf"])
def test_kcf_learned_frame(benchmark, variant):
    state = {"k": 0}
    f0 = _frame(0)
    feats = KcfFeatures("left", 75.0, 1.8, 60.0, f0.muscle_names)
    force, rf, rm = np.full(len(KNEE_MUSCLES), 300.0), np.array([20.0, -900.0, 10.0]), np.array([5.0, 1.0, 30.0])
    if variant == "reference":
        def fn():
            state["k"] += 1
            return feats.step(f0, force, rf, rm)
    else:
        from models.muscles.kcf_learned import LearnedKcf

        est = LearnedKcf(75.0, (0.0278, 0.0142))
        x = np.random.default_rng(0).normal(size=(600, N_FEATURES))

        def fn():
            k = state["k"] = (state["k"] + 1) % 600
            return est.step(x[k])
    benchmark(fn)
    benchmark.extra_info["median_us"] = benchmark.stats.stats.median * 1e6

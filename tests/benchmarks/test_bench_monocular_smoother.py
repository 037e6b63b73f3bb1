"""Cost of model-based monocular fitting's solvers (models.kinematics.monocular_fit / monocular_problem).

(The live loop's per-frame figure through the vision front end is ``test_bench_monocular_fit.py``.)  Cases, on a
model-generated walk seen side-on (1920x1080, f = 1400 px, 7 m, 2 px noise; MyoLeg scaled to 75 kg / 1.80 m;
60 fps):

* ``fitter step``: one bare :meth:`MonocularFitter.step` (fixed lag ``MonocularFitParams.lag_s`` = 67 ms: a
  window of 5 frames at 60 fps, ``live_iterations`` = 2 LM iterations, the output 4 frames behind), warm, one new
  frame per call; next to the 16.7 ms budget of a 60 Hz frame;
* ``smoother, lm`` / ``smoother, scipy``: the whole-trial smoother of a 1 s walk (60 frames, 960 unknowns) from
  the same per-frame initialisation, with this project's sparse LM and with ``scipy.optimize.least_squares``
  (TRF, the same sparse Jacobian): which is faster, and whether both reach the same cost.

Printed, never asserted.  The machine is shared: the load average is printed with the figures (a loaded
2-core CPU inflates them).  Written to ``.benchmarks/monocular_smoother.json``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from models.body.registry import load_model
from models.body.scaling import SubjectScale, scale_model
from models.kinematics import monocular_fit as mf
from models.kinematics.monocular_model import LandmarkModel
from models.kinematics.monocular_params import MonocularFitParams
from models.kinematics.monocular_problem import solve_lm, solve_scipy
from models.kinematics.monocular_synthetic import side_camera, synthetic_walk

BUDGET_S = 1.0 / 60.0
_RESULTS: dict[str, dict[str, float]] = {}


@pytest.fixture(scope="module")
def setup():
    lm = LandmarkModel(scale_model(load_model("myoleg"), SubjectScale(75.0, 1.80)).model)
    cam = side_camera()
    walk = synthetic_walk(lm, cam, duration_s=3.0, seed=0)
    return lm, cam, walk


def _save(case: str, stats, **extra: float) -> None:
    load = os.getloadavg()[0]
    _RESULTS[case] = {"median_s": float(stats.median), "min_s": float(stats.min), **extra, "load_average_1min": load}
    out = Path(".benchmarks")
    out.mkdir(exist_ok=True)
    (out / "monocular_smoother.json").write_text(json.dumps(_RESULTS, indent=2))
    print(f"\n{case}: median {1e3 * stats.median:.2f} ms, min {1e3 * stats.min:.2f} ms"
          + "".join(f", {k} {v:.3g}" for k, v in extra.items()) + f" (load average {load:.1f})")


@pytest.mark.benchmark(group="monocular fitter step")
def test_fitter_step(benchmark, setup):
    lm, cam, walk = setup
    fitter = mf.MonocularFitter(lm, cam, MonocularFitParams(), fps=60.0)
    warm = 30
    for k in range(warm):
        fitter.step(walk.time_s[k], walk.xy_px[k], walk.score[k])
    frames = iter(range(warm, walk.time_s.size))

    def one() -> None:
        k = next(frames)
        fitter.step(walk.time_s[k], walk.xy_px[k], walk.score[k])

    benchmark.pedantic(one, rounds=walk.time_s.size - warm, iterations=1)
    st = benchmark.stats.stats
    benchmark.extra_info.update(budget_fraction=st.median / BUDGET_S, lag_s=fitter.lag_s)
    _save("fitter step", st, budget_fraction=st.median / BUDGET_S, lag_s=fitter.lag_s)


def _smoother_problem(setup):
    lm, cam, walk = setup
    p = MonocularFitParams()
    n = 60
    t, xy, sc, _ = mf._check_inputs(walk.time_s[:n], walk.xy_px[:n], walk.score[:n], None)
    fr = mf._Frames(lm, p, xy, sc, None)
    contact = fr.contact_index(mf.detect_stance(t, xy, sc, cam, lm.leg_length_m))
    X0, _ = mf._initial_fit(lm, cam, p, fr, t, contact, mf.image_scale_px_per_m(t, xy, sc, lm.leg_length_m))
    win = mf._window(lm, cam, p, fr, t, contact, 0, n, np.zeros((0, lm.n)))
    return win, X0, p, walk.coordinates[:n]


@pytest.mark.benchmark(group="monocular smoother, 60 frames")
@pytest.mark.parametrize("solver", ["lm", "scipy"])
def test_whole_trial_smoother(benchmark, setup, solver):
    win, X0, p, truth = _smoother_problem(setup)
    fn = solve_lm if solver == "lm" else solve_scipy
    res = benchmark.pedantic(lambda: fn(win, X0, p.max_iterations, p.tolerance), rounds=3, iterations=1)
    sag = [win.lm.coordinate_names.index(f"{c}_{s}") for s in "rl" for c in ("hip_flexion", "knee_angle", "ankle_angle")]
    rmse = float(np.degrees(np.sqrt(np.mean((res.X[:, sag] - truth[:, sag]) ** 2))))
    benchmark.extra_info.update(iterations=res.iterations, cost=res.cost, sagittal_rmse_deg=rmse)
    _save(f"smoother, {solver}", benchmark.stats.stats, iterations=res.iterations, cost=res.cost,
          sagittal_rmse_deg=rmse)

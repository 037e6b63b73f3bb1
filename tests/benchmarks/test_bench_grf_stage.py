"""The kinematics-only GRF stage of the offline chain per trial (issue 22), and its pieces against the calls they
replaced, on the 8 shared trials (:func:`models.io.shared_trials.shared_trials`):

* ``grf stage``: :func:`models.trial_analysis.kinematic_foot_wrenches` (estimator, poses, filters, contact, fit);
* ``poses``: :meth:`models.grf.body.BodyModel.poses` (one compiled pass, :mod:`models.grf.fk`) against the
  per-frame ``mj_kinematics`` loop (``BodyModel._poses_mj``);
* ``zero-lag filter``: :func:`models.iir_kernels.filtfilt0` of the padded body channels against
  ``scipy.signal.filtfilt(..., axis=0, padtype=None)`` (the call it replaced; equal to the last bit);
* ``kinematics smoother``: :func:`models.filters.smooth_derivatives` (filter, derivatives, design) against the
  ``scipy.signal.filtfilt(..., axis=0, padtype="odd")`` call alone that it used to make.

CPU ms per trial (``time.process_time``, best of 3 rounds over all trials), ratios in the same run.  Measured,
never asserted.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import signal

from models.io.lab_files import shared_data_dir
from models.io.shared_trials import shared_trials


@pytest.fixture(scope="module")
def kinematics():
    from models.trial_analysis import AnalyzeParams, trial_kinematics

    try:
        trials = list(shared_trials(shared_data_dir()))
    except (FileNotFoundError, OSError):
        trials = []
    if not trials:
        pytest.skip(f"shared trials absent at {shared_data_dir()}")
    out = []
    for t in trials:
        p = AnalyzeParams(t.mass_kg, t.height_m, t.side, muscles=True)
        out.append((p, trial_kinematics(t.trc, t.markerset, p)))
    return out


def _best_ms(fn, rounds: int = 3) -> float:
    fn()
    best = math.inf
    for _ in range(rounds):
        c = time.process_time()
        fn()
        best = min(best, time.process_time() - c)
    return 1e3 * best


def test_grf_stage_per_trial(benchmark, kinematics):
    from models.filters import smooth_derivatives, two_pass_cutoff_correction
    from models.grf.estimator import GroundReactionEstimator
    from models.grf.params import GroundReactionParams
    from models.grf.smoothing import ZeroLagLowPass, quadratic_extend
    from models.iir_kernels import filtfilt0
    from models.trial_analysis import kinematic_foot_wrenches

    n = len(kinematics)
    motion = sum(float(k.time_s[-1] - k.time_s[0] + 1.0 / k.rate_hz) for _, k in kinematics)
    stage = benchmark.pedantic(lambda: _best_ms(lambda: [kinematic_foot_wrenches(k, p, []) for p, k in kinematics]),
                               rounds=1, iterations=1) / n
    bodies, padded, coords = [], [], []
    for p, k in kinematics:
        est = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=p.mass_kg, cutoff_hz=p.cutoff_hz,
                                                           sample_rate_hz=k.rate_hz), model=k.model)
        valid = np.ones(k.time_s.size, bool)
        bodies.append((est.body, k.mapped.qpos, valid))
        X, R, _ = est.body.poses(k.mapped.qpos, None, valid)
        zl = ZeroLagLowPass(2, p.cutoff_hz, k.rate_hz)
        padded.append((zl.ba, quadratic_extend(np.concatenate([X, R], axis=2), zl.n_pad, zl.n_fit)))
        coords.append((k.ik.coordinates, k.rate_hz, p.cutoff_hz))
    poses = _best_ms(lambda: [b.poses(q, None, v) for b, q, v in bodies]) / n
    poses_ref = _best_ms(lambda: [b._poses_mj(q, None, np.flatnonzero(v)) for b, q, v in bodies]) / n
    filt = _best_ms(lambda: [filtfilt0(b, a, x) for (b, a), x in padded]) / n
    filt_ref = _best_ms(lambda: [signal.filtfilt(b, a, x, axis=0, padtype=None) for (b, a), x in padded]) / n

    def smooth_ref():
        for x, rate, fc in coords:
            b, a = signal.butter(2, fc / two_pass_cutoff_correction(2), fs=rate)
            pad = min(x.shape[0] - 1, int(math.ceil(3.0 * rate / fc)))
            signal.filtfilt(b, a, x, axis=0, padtype="odd", padlen=pad)

    smooth = _best_ms(lambda: [smooth_derivatives(x, r, cutoff_hz=fc) for x, r, fc in coords]) / n
    smooth_ref_ms = _best_ms(smooth_ref) / n
    rows = [("grf stage", stage, None), ("poses", poses, poses_ref), ("zero-lag filter", filt, filt_ref),
            ("kinematics smoother", smooth, smooth_ref_ms)]
    lines = ["", f"kinematics-only GRF stage, {n} shared trials, {motion:.2f} s of motion (CPU ms per trial; "
                 f"reference: the call replaced, same run)", f"{'piece':<22} {'ours':>8} {'ref':>8} {'x ref':>7}"]
    for name, ours, ref in rows:
        lines.append(f"{name:<22} {ours:>8.2f} " + (f"{ref:>8.2f} {ref / ours:>7.1f}" if ref else f"{'':>8} {'':>7}"))
    lines.append(f"grf stage: {stage * n * 10.0 / motion / 1e3:.4f} s CPU per 10 s of motion")
    print("\n".join(lines))
    benchmark.extra_info.update({"trials": n, "motion_s": motion, "grf_stage_ms_per_trial": stage,
                                 "grf_stage_s_per_10s": stage * n * 10.0 / motion / 1e3,
                                 "pieces_ms_per_trial": {r[0]: r[1] for r in rows},
                                 "references_ms_per_trial": {r[0]: r[2] for r in rows if r[2]}})

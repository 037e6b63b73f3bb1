"""The trunk in the live chain against the offline chain and the plates, per shared trial (a measurement, printed):

    python -m runtime.estimation.trunk_check [TRIAL ...]      (default: every shared trial)

For ``grf_trunk`` off and on in BOTH chains (``EstimatorParams`` live, ``AnalyzeParams`` offline): the live chain
(``run_offline`` of :class:`~runtime.estimation.chain.KinematicsToLoads` on the recording held to 60 Hz, with its
thorax markers) against the offline zero-lag analysis of the same trial, shifted by the chain's lag, frames past the
first 15: KAM RMSE (%BW*ht), r^2, |peak difference|, vertical GRF RMSE of both feet (%BW); and the KAM RMSE of the
live chain and of the offline kinematics-only chain against the measured-plate chain in the plates' stance of the
knee of interest (the live one shifted by its lag). Muscles off (the moments and GRF do not depend on them).
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

STANDARD_GRAVITY_M_S2 = 9.80665
SKIP_FRAMES = 15


def _live_vs(r: Any, lag_s: float, other: Any, mass_kg: float) -> dict[str, float]:
    """KAM and vGRF of the live result ``r`` against an offline :class:`models.trial_analysis.TrialAnalysis`."""
    late = np.arange(r.time_s.size) > SKIP_FRAMES
    ref = np.interp(r.time_s - lag_s, other.time_s, other.kam_pct_bw_ht)
    ok = np.isfinite(r.kam_pct_bw_ht) & np.isfinite(ref) & late
    live, ref = r.kam_pct_bw_ht[ok], ref[ok]
    ev = np.concatenate([np.nan_to_num(r.grf_n[late, k, 2])
                         - np.interp(r.time_s - lag_s, other.time_s, other.foot_force_n[side][:, 2])[late]
                         for k, side in enumerate(("right", "left"))])
    return {"kam_rmse": float(np.sqrt(np.mean((live - ref) ** 2))), "kam_r2": float(np.corrcoef(live, ref)[0, 1]) ** 2,
            "kam_peak_err": abs(float(live.max()) - float(ref.max())),
            "vgrf_rmse_pct_bw": 100.0 * float(np.sqrt(np.mean(ev ** 2))) / (mass_kg * STANDARD_GRAVITY_M_S2)}


def _live_vs_plates(r: Any, lag_s: float, plate: Any) -> float:
    """KAM RMSE (%BW*ht) of the live result against the plate chain, in the plates' stance, live shifted by its lag."""
    t = r.time_s - lag_s
    ref = np.interp(t, plate.time_s, plate.kam_pct_bw_ht)
    st = np.zeros(t.size, bool)
    for a, b in plate.stance:
        st |= (t >= a) & (t <= b)
    st &= np.isfinite(r.kam_pct_bw_ht) & np.isfinite(ref) & (np.arange(t.size) > SKIP_FRAMES)
    return float(np.sqrt(np.mean((r.kam_pct_bw_ht[st] - ref[st]) ** 2)))


def trial_rows(t: Any) -> dict[str, dict[str, float]]:
    """``{"off": {...}, "on": {...}}`` for one :class:`models.io.shared_trials.SharedTrial`."""
    from models.trial_analysis import (
        AnalyzeParams,
        analyze_trial,
        moment_validation,
        trial_kinematics,
    )
    from runtime.estimation.chain import (
        EstimatorParams,
        KinematicsToLoads,
        load_marker_recording,
        resample_hold,
        run_offline,
    )

    params = AnalyzeParams(t.mass_kg, t.height_m, t.side, grf_trunk=False)
    kin = trial_kinematics(t.trc, t.markerset, params)
    plate = analyze_trial(t.trc, t.markerset, params, grf_path=t.grf, kin=kin)
    rows = {}
    for name, trunk in (("off", False), ("on", True)):
        off = analyze_trial(t.trc, t.markerset, AnalyzeParams(t.mass_kg, t.height_m, t.side, grf_trunk=trunk), kin=kin)
        est = KinematicsToLoads.for_subject(t.markerset, EstimatorParams(t.mass_kg, t.height_m, t.side, rate_hz=60.0,
                                                                         grf_trunk=trunk, muscles=False))
        rec = resample_hold(load_marker_recording(t.trc, est.marker_names, est.torso), 60.0)
        r = run_offline(est, rec)
        row = _live_vs(r, est.lag_s, off, t.mass_kg)
        row["live_kam_rmse_vs_plates"] = _live_vs_plates(r, est.lag_s, plate)
        row["offline_kam_rmse_vs_plates"] = moment_validation(off, plate)[f"knee_adduction_moment_{t.side}_rmse_pct_bw_ht"]
        if "trunk" in r.stage_s:
            row["trunk_stage_ms_median"] = 1e3 * float(np.median(r.stage_s["trunk"]))
        rows[name] = row
    return rows


def main(argv: list[str] | None = None) -> int:
    from models.io.lab_files import shared_data_dir
    from models.io.shared_trials import shared_trials

    names = list(sys.argv[1:] if argv is None else argv)
    trials = [t for t in shared_trials(shared_data_dir()) if not names or t.name in names]
    if names and len(trials) != len(names):
        raise SystemExit(f"trials = {names!r}: known {[t.name for t in shared_trials(shared_data_dir())]}")
    print("trial   trunk  live-vs-offline: KAM RMSE  r^2    |peak|  vGRF %BW   KAM RMSE vs plates: live  offline")
    for t in trials:
        for name, row in trial_rows(t).items():
            print(f"{t.name:7s} {name:5s}  {row['kam_rmse']:22.3f} {row['kam_r2']:6.3f} {row['kam_peak_err']:7.3f} "
                  f"{row['vgrf_rmse_pct_bw']:8.2f} {row['live_kam_rmse_vs_plates']:24.3f} "
                  f"{row['offline_kam_rmse_vs_plates']:8.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``exo validate`` / ``make validate``: the analysis chain on every shared trial, each figure beside its anchor.

Per trial: joint-angle RMSE of our IK against the lab IK (deg; hip flexion/adduction/rotation, knee
flexion, ankle dorsiflexion, limb of interest), vertical and horizontal GRF error of the
kinematics-only estimate against the force plates (%BW, stance foot), and knee extension moment and
KAM RMSE of the kinematics-only chain against our inverse dynamics with the measured plates (%BW*ht);
``kinematics_only_rule_split``: the same figures with the rule-based GRF split instead of the feasible fit;
``vgrf_error_by_phase``: where the vertical GRF error comes from (per stance phase, total-force vs split part, and
each plate contact's onset/offset error; :mod:`models.grf.phase_errors`).
Anchors (published, mean absolute error): OpenCap two-camera 4.5 deg and 6.2 %BW GRF; OpenCap
monocular 4.8 deg and 9.7 %BW; the seed's targets 4.5 deg and 3.9 %BW vertical GRF. We report RMSE
(required) and MAE (the anchors' metric); RMSE >= MAE, so RMSE beside a MAE anchor is conservative.

Section ``opensim_4_6_side_by_side``: on the trials with an OpenSim model, IK and external loads (PS ss1 with
``GC5.osim``, OpenSim's Rajagopal example walk), our net joint moments (whole trial), static optimisation and knee
contact force (0.10 s of stance) beside OpenSim 4.6's InverseDynamicsTool, StaticOptimization and JointReaction on the
same frames (:func:`models.io.opensim_reference.side_by_side_figures`; bounds in tests/test_opensim_side_by_side.py).
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from models.io.shared_trials import SharedTrial, shared_trials

__all__ = ["ANCHORS", "SharedTrial", "shared_trials", "validate_trial"]

ANCHORS = {
    "joint_angle_deg": {"opencap_two_camera_mae": 4.5, "opencap_monocular_mae": 4.8, "seed_target": 4.5},
    "grf_pct_bw": {"opencap_two_camera_mae": 6.2, "opencap_monocular_mae": 9.7, "seed_target_vertical": 3.9},
    "knee_contact_force": {"opensim_so_jr_total_rmse_bw": 0.37, "opensim_so_jr_total_r2": 0.76,
                           "grand_challenge_medial_rms_n": [229, 312], "grand_challenge_lateral_rms_n": [238, 326],
                           "source": "Modenese et al. 2021 Gait Posture 88:318, Table 1; Fregly et al. 2012"},
    "sources": {"opencap": "Uhlrich et al. 2023, PLoS Comput Biol 19:e1011462 (two-camera)",
                "opencap_monocular": "OpenCap Monocular (Uhlrich lab, 2024/2025 preprint)",
                "seed": "../shared/seed/monocular_musculoskeletal_biomechanics.md"},
}


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.mean(np.abs(a[ok] - b[ok]))) if ok.any() else float("nan")


def _phase_figures(estimate: Any, measured: Any, side: str, threshold_n: float, bw: float) -> dict[str, Any]:
    """Where the kinematics-only vertical GRF error of ``side`` comes from (:mod:`models.grf.phase_errors`): per
    phase of its stances (%BW; total-force and split parts) and the onset/offset error (ms) of every plate contact
    of both feet.  A foot is in contact in the estimate where it carries force (the feasible fit gives a swing foot
    exactly zero)."""
    from models.grf.phase_errors import contact_event_errors_ms, phase_breakdown

    other = "left" if side == "right" else "right"
    ez = {f: np.nan_to_num(estimate.foot_force_n[f][:, 2]) for f in (side, other)}
    mz = {f: np.nan_to_num(measured.foot_force_n[f][:, 2]) for f in (side, other)}
    phases = phase_breakdown(ez[side], ez[other], mz[side], mz[other], ez[other] > 1e-6, bw, threshold_n)
    events = {f: contact_event_errors_ms(ez[f] > 1e-6, mz[f] >= threshold_n, estimate.time_s) for f in (side, other)}
    return {"side": side, "phases": {k: v.as_dict() for k, v in phases.items()}, "contact_events_ms": events}


def validate_trial(trial: SharedTrial, out_dir: Path | None = None) -> dict[str, Any]:
    from models.trial_analysis import (AnalyzeParams, analyze_trial, grf_validation, ik_validation, moment_validation,
                                       trial_kinematics, write_csvs)

    params = AnalyzeParams(trial.mass_kg, trial.height_m, trial.side, muscles=trial.kcf_ref is not None)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    kin = trial_kinematics(trial.trc, trial.markerset, params)
    measured = analyze_trial(trial.trc, trial.markerset, params, grf_path=trial.grf, kin=kin)
    figures: dict[str, Any] = {"trial": trial.name, "frames": int(kin.time_s.size), "side": trial.side}
    if trial.ik_ref:
        figures["joint_angle_rmse_deg"] = ik_validation(measured, trial.ik_ref)
    if trial.kcf_ref:
        from models.muscles.knee_contact import knee_contact_from_analysis, validate_against_in_vivo

        kc = validate_against_in_vivo(knee_contact_from_analysis(kin, measured), trial.kcf_ref)
        figures["knee_contact_force_vs_in_vivo"] = {f"{k}_{m}": v for k, d in kc.items() for m, v in d.items()}
    try:
        estimate = analyze_trial(trial.trc, trial.markerset, params, kin=kin)
    except NotImplementedError as exc:
        figures["kinematics_only"] = f"not available: {exc}"
        estimate = None
    if estimate is not None:
        g = grf_validation(estimate, measured)
        bw = trial.mass_kg * 9.80665
        s = trial.side
        m, e = measured.foot_force_n[s], estimate.foot_force_n[s]
        loaded = m[:, 2] >= params.grf_threshold_n
        g[f"{s}_vertical_grf_mae_pct_bw"] = 100 * _mae(e[loaded, 2], m[loaded, 2]) / bw
        figures["grf_error_pct_bw"] = g
        figures["knee_moment_rmse_pct_bw_ht"] = moment_validation(estimate, measured)
        figures["vgrf_error_by_phase"] = _phase_figures(estimate, measured, s, params.grf_threshold_n, bw)
        # the same chain with the rule-based GRF split (before the feasible contact fit of models.grf.feasible)
        from dataclasses import replace

        rule = analyze_trial(trial.trc, trial.markerset, replace(params, grf_contact_solver="share"), kin=kin)
        figures["kinematics_only_rule_split"] = {**grf_validation(rule, measured), **moment_validation(rule, measured)}
    figures["knee_moments_measured_grf"] = measured.summary()["kam_pct_bw_ht"], measured.summary()["kem_pct_bw_ht"]
    figures["notes"] = measured.notes
    figures["seconds"] = time.perf_counter() - t0
    if out_dir is not None:
        write_csvs(measured, out_dir / trial.name / "measured_grf")
        if estimate is not None:
            write_csvs(estimate, out_dir / trial.name / "kinematics_only")
    return figures


def _mean_of(results: list[dict[str, Any]], group: str) -> dict[str, float]:
    vals: dict[str, list[float]] = {}
    for r in results:
        for k, v in (r.get(group) or {}).items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                vals.setdefault(k.replace("_l_", "_").replace("_r_", "_").replace("left_", "").replace("right_", ""), []).append(v)
    return {k: float(np.mean(v)) for k, v in vals.items()}


def _opensim_side_by_side(data: Path, out_dir: Path | None, progress: Callable[[str], None]) -> list[dict[str, Any]] | str:
    """The OpenSim 4.6 section (see the module docstring); a line saying why when ``opensim`` is absent."""
    import tempfile

    from models.io.opensim_reference import opensim_available, side_by_side_figures, side_by_side_trials

    if not opensim_available():
        return "not available: opensim not installed (pip install opensim==4.6)"
    out: list[dict[str, Any]] = []
    for t in side_by_side_trials(data):
        if not all(Path(p).exists() for p in (t.osim_model, t.ik, t.external_loads, t.grf)):
            continue
        progress(f"OpenSim 4.6 side by side: {t.name} ...")
        work = out_dir / t.name / "opensim_side_by_side" if out_dir is not None else Path(tempfile.mkdtemp(prefix="osim_sbs_"))
        try:
            out.append(side_by_side_figures(t, work))
        except (ValueError, KeyError, OSError, RuntimeError) as exc:       # reported, never silently dropped
            out.append({"trial": t.name, "error": f"{type(exc).__name__}: {exc}"})
    return out


def run_validation(data: Path, out_json: Path, out_dir: Path | None = None,
                   progress: Callable[[str], None] = print) -> dict[str, Any]:
    trials = [t for t in shared_trials(data) if Path(t.trc).exists()]
    if not trials:
        raise FileNotFoundError(f"no shared trials under {data} (set EXO_SHARED_DATA)")
    results = []
    for i, t in enumerate(trials, 1):
        progress(f"[{i}/{len(trials)}] {t.name} ...")
        try:
            results.append(validate_trial(t, out_dir))
        except (ValueError, OSError) as exc:       # reported, never silently dropped
            results.append({"trial": t.name, "error": f"{type(exc).__name__}: {exc}"})
        progress(f"    {json.dumps({k: v for k, v in results[-1].items() if k not in ('notes',)}, default=str)[:400]}")
    doc = {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "data": str(data), "anchors": ANCHORS,
           "trials": results,
           "mean": {g: _mean_of(results, g) for g in ("joint_angle_rmse_deg", "grf_error_pct_bw", "knee_moment_rmse_pct_bw_ht",
                                                       "knee_contact_force_vs_in_vivo")}}
    doc["opensim_4_6_side_by_side"] = _opensim_side_by_side(data, out_dir, progress)
    if isinstance(doc["opensim_4_6_side_by_side"], list):
        doc["mean"]["opensim_4_6_net_moment_rmse_nm"] = {
            f"{r['trial']}_{c}": f["rmse"] for r in doc["opensim_4_6_side_by_side"]
            for c, f in r.get("net_joint_moment_nm", {}).items()}
    tmp = out_json.with_suffix(out_json.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, out_json)
    return doc

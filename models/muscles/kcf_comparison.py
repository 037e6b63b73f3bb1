"""Where the knee contact force's excess comes from, part by part, against the subject's OpenSim model and the lab's
OpenSim results (issue 19, Part A.1): the data of ``exo kcf-compare``.

For one Grand Challenge trial (our marker IK on the subject-scaled MyoLeg, measured plates, our ID, our static
optimisation, our contact step; :mod:`models.trial_analysis`, :mod:`models.muscles.knee_contact`):

* **muscles** (every knee-crossing muscle, soleus, psoas, iliacus): ``F0`` ours / the ``.osim``'s; MuJoCo's optimal
  length ``L0 = (lengthrange_1 - lengthrange_0) / (range_1 - range_0)`` and implied rigid tendon ``LT =
  lengthrange_0 - range_0 L0`` against OpenSim's ``optimal_fiber_length`` / ``tendon_slack_length``; the knee (or
  hip, for psoas / iliacus) flexion moment arm over the trial, ours (coupled) against OpenSim's ``computeMomentArm``
  at the same coordinate values (our IK's), mean and RMS difference; SO forces, ours against the lab's OpenSim SO
  (``opensim_results_baseline/SO``) resampled on our frames: mean and peak over the trial and at our two KCF peaks
  (first and second half of the trial);
* **knee moment**: our ID's knee flexion moment against the lab's SO muscle moment ``sum F_i r_i`` (OpenSim arms);
* **contact** against the implant (total, medial, lateral RMSE in BW, peaks): ours, the contact points about the
  subject's epicondyle midpoint (:mod:`models.muscles.condyle_geometry`) and, beside it, about the tibia origin;
  ours with the lab's SO forces in our contact step; our axial component (the contact definition: ``|F_c|``
  against the axial force); the lab's JointReaction (``walker_knee_<s>_on_tibia_<s>_in_tibia_<s>``: ``|F|``, and
  medial / lateral by our split about the ``.osim``'s own epicondyle midpoint, :func:`opensim_epicondyle_centre`).

Needs ``opensim`` for the moment arms (the *bench* extra; :func:`compare_trial` raises ``ImportError`` without it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.muscles.knee_contact import (
    KneeContactTrial,
    knee_contact_from_analysis,
    opensim_so_tensions,
    read_in_vivo,
    subject_condyle_geometry,
    validate_against_in_vivo,
)
from models.muscles.subject_muscles import (
    knee_crossing_muscles,
    mujoco_geometry,
    opensim_geometry,
    read_opensim_muscles,
)

__all__ = ["GC5Trial", "compare_trial", "compared_muscles", "gc5_trial", "muscle_operating_lengths",
           "opensim_epicondyle_centre"]


@dataclass(frozen=True)
class GC5Trial:
    """The files of one Grand Challenge trial in the shared data (``GC5_PS`` layout)."""

    name: str
    osim: Path
    trc: Path
    grf: Path
    so_force: Path
    joint_reaction: Path
    implant: Path


def gc5_trial(data_dir: str | Path, trial: str) -> GC5Trial:
    """``trial`` like ``PS_ss1`` under ``data_dir/GC5_PS``; every file must exist."""
    subject, _, ss = trial.partition("_")
    root = Path(data_dir) / f"GC5_{subject}"
    stem = f"{subject}_ngait_og_{ss}"
    t = GC5Trial(trial, root / "model" / "GC5.osim", root / "trc" / f"{stem}.trc",
                 root / "grf" / f"{stem}_kinetics.mot",
                 root / "opensim_results_baseline" / "SO" / f"{stem}_StaticOptimization_force.sto",
                 root / "opensim_results_baseline" / "JR" / f"{stem}_JointReaction_ReactionLoads.sto",
                 root / "in_vivo" / f"{stem}_eTibia_101pt.csv")
    missing = [str(p) for p in (t.osim, t.trc, t.grf, t.so_force, t.joint_reaction, t.implant) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"trial = {trial!r}: missing {missing}")
    return t


def compared_muscles(side: str) -> tuple[str, ...]:
    """Knee crossers, soleus, psoas and iliacus of ``side``."""
    s = side[0]
    return knee_crossing_muscles(side) + (f"soleus_{s}", f"psoas_{s}", f"iliacus_{s}")


def muscle_operating_lengths(model, name: str) -> tuple[float, float]:
    """MuJoCo's optimal fibre length ``L0`` and rigid tendon length ``LT`` (m) of muscle ``name`` (from its
    ``lengthrange`` and normalised operating ``range``, as ``mju_muscleGain`` computes them)."""
    a = model.actuator(name).id
    r0, r1 = float(model.actuator_gainprm[a, 0]), float(model.actuator_gainprm[a, 1])
    lr0, lr1 = (float(x) for x in model.actuator_lengthrange[a])
    L0 = (lr1 - lr0) / (r1 - r0)
    return L0, lr0 - r0 * L0


def _peaks(kc: KneeContactTrial) -> tuple[int, int]:
    """Frames of the largest total contact force in 5-35 % and 35-65 % of the trial (the two stance peaks)."""
    n = kc.total_n.size
    a, b, c = (round(f * (n - 1)) for f in (0.05, 0.35, 0.65))
    return a + int(np.nanargmax(kc.total_n[a:b])), b + int(np.nanargmax(kc.total_n[b:c]))


def opensim_epicondyle_centre(osim: Path, side: str) -> float | None:
    """Medial offset (m) of the midpoint of the subject model's epicondyle markers from its tibia origin, in the
    tibia frame at the model's default pose, computed by OpenSim 4 itself (the contact centre of
    :mod:`models.muscles.condyle_geometry` in the ``.osim``'s own frames); ``None`` without such a marker pair."""
    import opensim

    s = side[0]
    model = opensim.Model(str(osim))
    state = model.initSystem()
    tibia = model.getBodySet().get(f"tibia_{s}")
    markers = model.getMarkerSet()
    names = [markers.get(i).getName() for i in range(markers.getSize())]
    on_femur = [n for n in names if markers.get(n).getParentFrameName().endswith(f"femur_{s}")]
    med = [n for n in on_femur if "knee" in n.lower() and "med" in n.lower()]
    lat = [n for n in on_femur if "knee" in n.lower() and "lat" in n.lower()]
    if len(med) != 1 or len(lat) != 1:
        return None
    z = []
    for n in (med[0], lat[0]):
        loc = model.getGround().findStationLocationInAnotherFrame(state, markers.get(n).getLocationInGround(state),
                                                                  tibia)
        z.append(float(loc.get(2)))
    return (1.0 if s == "l" else -1.0) * 0.5 * (z[0] + z[1])


def _joint_reaction_vs_implant(path: Path, implant: Path, t0: float, t1: float, side: str, bw: float,
                               offsets_m: tuple[float, float] | None = None) -> dict:
    """The lab's JointReaction against the implant: total ``|F|``; with ``offsets_m`` (``d_m``, ``d_l`` from the
    tibia origin) also medial and lateral by the same two-point split as ours."""
    from models.io.storage import read_sto
    from models.muscles.knee_contact import medial_lateral_split

    tab = read_sto(path)
    s = side[0]
    pre = f"walker_knee_{s}_on_tibia_{s}_in_tibia_{s}_"
    F = np.column_stack([tab.column(pre + "f" + a) for a in "xyz"])
    ref = read_in_vivo(implant)
    g = ref["gait_cycle_pct"]

    def on_implant(x: np.ndarray) -> np.ndarray:
        return np.interp(t0 + g / 100.0 * (t1 - t0), tab.time_s, x)

    parts = {"total": (on_implant(np.linalg.norm(F, axis=1)), ref["F_total_magnitude"])}
    if offsets_m is not None:
        mf = (1.0 if s == "l" else -1.0) * tab.column(pre + "mx")
        med, lat = medial_lateral_split(-F[:, 1], mf, *offsets_m)
        parts["medial"] = (on_implant(med), ref["F_medial"])
        parts["lateral"] = (on_implant(lat), ref["F_lateral"])
    return {k: {"rmse_bw": float(np.sqrt(np.mean((ours - theirs) ** 2))) / bw, "peak_bw": float(ours.max()) / bw,
                "peak_ref_bw": float(theirs.max()) / bw} for k, (ours, theirs) in parts.items()}


def _contact_rows(kin, r, trial: GC5Trial) -> dict[str, Any]:
    from models.body.markerset import from_opensim_markerset

    geom = subject_condyle_geometry(kin.model, r.params.side, from_opensim_markerset(trial.osim, kin.model))
    kc = knee_contact_from_analysis(kin, r, geom.offsets_m)
    kc_sym = knee_contact_from_analysis(kin, r, (geom.half_spacing_m, geom.half_spacing_m))
    T, names = opensim_so_tensions(trial.so_force, r.time_s, r.muscles.muscle_names)
    kc_os = knee_contact_from_analysis(kin, r, geom.offsets_m, tension_n=T, muscle_names=names)
    axial = KneeContactTrial(kc.time_s, kc.medial_n, kc.lateral_n, kc.axial_n, kc.axial_n, kc.frontal_moment_nm,
                             kc.contact_force_n, kc.muscle_force_n, kc.intersegmental_force_n, kc.body_weight_n,
                             kc.side, kc.condyle_offsets_m)
    bw = kc.body_weight_n
    return {"kc": kc, "T_opensim": T, "names_opensim": names,
            "condyles": {"offsets_m": list(geom.offsets_m), "centre_m": geom.centre_m,
                         "half_spacing_m": geom.half_spacing_m, "source": geom.source},
            "contact": {"ours": validate_against_in_vivo(kc, trial.implant),
                        "ours_condyles_about_tibia_origin": validate_against_in_vivo(kc_sym, trial.implant),
                        "ours_axial_as_total": {"total": validate_against_in_vivo(axial, trial.implant)["total"]},
                        "opensim_so_in_our_contact": validate_against_in_vivo(kc_os, trial.implant),
                        "opensim_joint_reaction": _joint_reaction_vs_implant(
                            trial.joint_reaction, trial.implant, float(r.time_s[0]), float(r.time_s[-1]),
                            r.params.side, bw, _opensim_offsets(trial.osim, r.params.side, geom.half_spacing_m))}}


def _opensim_offsets(osim: Path, side: str, half_spacing_m: float) -> tuple[float, float] | None:
    """The contact points for the lab's JointReaction: our half spacing about the ``.osim``'s epicondyle midpoint."""
    c = opensim_epicondyle_centre(osim, side)
    return None if c is None or abs(c) > 0.5 * half_spacing_m else (half_spacing_m + c, half_spacing_m - c)


def compare_trial(trial: GC5Trial, params, *, calibrate: bool = False, lengths: bool = False,
                  curves: bool = False, passive: bool = False) -> dict[str, Any]:
    """The part-by-part comparison of one trial (see the module docstring); ``params``:
    :class:`models.trial_analysis.AnalyzeParams` with ``muscles=True``.  ``calibrate``: MyoLeg's paths (and with
    ``lengths``, ``curves``, ``passive`` the operating lengths and force-length curves) fitted to the ``.osim``
    first (:func:`models.muscles.moment_arm_calibration.calibrate_to_opensim`)."""
    from models.muscles.moment_arm_calibration import calibrate_to_opensim
    from models.trial_analysis import analyze_trial, trial_kinematics

    side, s = params.side, params.side[0]
    kin = trial_kinematics(trial.trc, trial.osim, params)
    cal = (calibrate_to_opensim(kin.model, trial.osim, side, lengths=lengths, curves=curves, passive=passive)
           if calibrate else None)
    r = analyze_trial(None, None, params, grf_path=trial.grf, kin=kin)
    rows = _contact_rows(kin, r, trial)
    kc = rows.pop("kc")
    m = kin.model
    muscles = compared_muscles(side)
    coords = [f"{c}_{s}" for c in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle")]
    qadr = [int(m.jnt_qposadr[m.joint(c).id]) for c in coords]
    poses = kin.mapped.qpos[:, qadr]
    arm_coord = [f"hip_flexion_{s}" if n.startswith(("psoas", "iliacus")) else
                 f"ankle_angle_{s}" if n.startswith("soleus") else f"knee_angle_{s}" for n in muscles]
    theirs_arm, _ = opensim_geometry(trial.osim, coords, poses, muscles, (f"knee_angle_{s}", f"hip_flexion_{s}",
                                                                           f"ankle_angle_{s}"))
    ours_arm, _ = mujoco_geometry(m, coords, poses, muscles, (f"knee_angle_{s}", f"hip_flexion_{s}",
                                                              f"ankle_angle_{s}"), base_qpos=kin.mapped.qpos[0])
    col = {f"knee_angle_{s}": 0, f"hip_flexion_{s}": 1, f"ankle_angle_{s}": 2}
    osm = read_opensim_muscles(trial.osim, muscles)
    so_names = list(r.muscles.muscle_names)
    T_os, names_os = rows["T_opensim"], rows["names_opensim"]
    p1, p2 = _peaks(kc)
    table = []
    for i, n in enumerate(muscles):
        ours_f = r.muscles.muscle_force_n[:, so_names.index(n)]
        their_f = T_os[:, names_os.index(n)]
        L0, LT = muscle_operating_lengths(m, n)
        a_o, a_t = ours_arm[:, i, col[arm_coord[i]]], theirs_arm[:, i, col[arm_coord[i]]]
        table.append({"muscle": n, "f0_n": float(m.actuator_gainprm[m.actuator(n).id, 2]),
                      "f0_osim_n": osm[n].max_isometric_force_n, "l_opt_m": L0,
                      "l_opt_osim_m": osm[n].optimal_fiber_length_m, "l_tendon_m": LT,
                      "l_slack_osim_m": osm[n].tendon_slack_length_m, "arm_coordinate": arm_coord[i],
                      "arm_mean_m": float(a_o.mean()), "arm_osim_mean_m": float(a_t.mean()),
                      "arm_rms_diff_m": float(np.sqrt(np.mean((a_o - a_t) ** 2))),
                      "force_rmse_vs_osim_n": float(np.sqrt(np.mean((ours_f - their_f) ** 2))),
                      "force_mean_n": float(ours_f.mean()), "force_osim_mean_n": float(their_f.mean()),
                      "force_peak_n": float(ours_f.max()), "force_osim_peak_n": float(their_f.max()),
                      "force_at_peak1_n": float(ours_f[p1]), "force_osim_at_peak1_n": float(their_f[p1]),
                      "force_at_peak2_n": float(ours_f[p2]), "force_osim_at_peak2_n": float(their_f[p2])})
    knee_i = [i for i, n in enumerate(muscles) if n in names_os]
    their_moment = sum(T_os[:, names_os.index(muscles[i])] * theirs_arm[:, i, 0] for i in knee_i)
    ours_moment = r.moments_nm[:, list(r.moment_names).index(f"knee_angle_{s}")]
    bw = kc.body_weight_n
    return {"trial": trial.name, "calibrated": bool(calibrate), "lengths_calibrated": bool(calibrate and lengths),
            "curves_calibrated": bool(calibrate and curves),
            "frames": int(r.time_s.size), "body_weight_n": bw,
            "kcf_peak_frames_pct": [100.0 * p1 / (r.time_s.size - 1), 100.0 * p2 / (r.time_s.size - 1)],
            "muscles": table,
            "knee_muscle_force_rmse_vs_osim_n": float(np.sqrt(sum(row["force_rmse_vs_osim_n"] ** 2 for row in table
                                                                  if row["arm_coordinate"].startswith("knee")))),
            "knee_moment": {"ours_id_peak_ext_nm": float(-ours_moment.min()), "ours_id_peak_flex_nm": float(ours_moment.max()),
                            "opensim_so_peak_ext_nm": float(-their_moment.min()),
                            "opensim_so_peak_flex_nm": float(their_moment.max()),
                            "rmse_nm": float(np.sqrt(np.mean((ours_moment - their_moment) ** 2)))},
            "contact": rows["contact"], "condyles": rows["condyles"],
            "calibration": None if cal is None else {"site_offsets_m": cal.site_offsets_m, "curves": cal.curves,
                                                     "length_ranges_m": cal.length_ranges_m,
                                                     "rms_before_m": cal.rms_before_m, "rms_after_m": cal.rms_after_m}}

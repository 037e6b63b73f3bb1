"""``exo monocular-check``: monocular joint angles against a four-camera triangulated reference.

On the pose2sim single-person demo (four calibrated cameras, 60 fps): BlazePose (the mediapipe
backend) runs on every camera; the four views are triangulated into the reference
(:func:`runtime.vision.triangulation.pose2sim_reference`); the first camera alone is grounded
(:func:`runtime.vision.world.ground_monocular`, its calibrated intrinsics, the subject height from
the reference); both landmark trajectories are smoothed the same way (zero lag, 6 Hz) and solved
by landmark IK on MyoLeg scaled to the subject (height and mass; thigh, shank, foot and pelvis
lengths from each trajectory's own landmark distances,
:func:`models.body.landmark_markerset.landmark_length_factors`); then per joint RMSE (deg) and the root's
translation error (cm) are printed beside the anchors and written as JSON.

Root translation error: the pelvis origin of the two IK solutions, after the monocular trajectory
is aligned to the reference by one rotation about the vertical and one horizontal translation
(least squares over the trial; the monocular frame's heading and origin are arbitrary), heights
untouched (both are floor-referenced). RMSE of the 3D distance.

Before and after: the same comparison is made for the model-based fit of cam01's 2-D landmarks
(:func:`models.kinematics.monocular_fit.fit_monocular`, offline smoother; pixels undistorted by the
calibration; MyoLeg scaled by height and mass, segment lengths corrected by the fit; BlazePose visibility as the
score; BlazePose's world landmarks, scaled to the leg length and turned into the lab frame by the calibration, as
the weak shape prior of ``MonocularFitParams.prior_sigma_m``) and printed beside today's
grounding (``model_fit`` in the JSON); its root error is given after the same yaw/translation alignment and
without it (the calibrated camera puts the fit in the lab frame).

``--synthetic TRC`` (:func:`synthetic_check`): the lab marker trial rendered through a virtual side-on camera
(:func:`models.io.synthetic_keypoints.render_marker_trial`: joint centres from the markers, 1920x1080 px,
f = 1400 px, 7 m, 2 px Gaussian noise, fixed seed), fitted (:func:`models.kinematics.monocular_fit.fit_monocular`,
the offline smoother) on the same subject-scaled model as the project's own marker IK of the same trial
(:func:`models.trial_analysis.trial_kinematics`), and compared with that IK frame by frame: RMSE of the sagittal
angles (hip flexion, knee, ankle; both sides) in deg and of the pelvis origin in cm (the virtual camera is
calibrated in the lab frame, so no alignment).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from runtime.cli.arguments import add_command
from runtime.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

#: Anchors printed beside our figures: (joint-angle RMSE deg, root translation error cm).
ANCHORS = {"seed target": (4.5, 3.4), "OpenCap Monocular": (4.8, 3.4)}
JOINTS = ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle")
#: The synthetic check's angles: the sagittal ones (issue 17's "Done when": mean <= 3 deg, root <= 3 cm).
SAGITTAL = ("hip_flexion", "knee_angle", "ankle_angle")
#: Issue 17's goals for the synthetic check: (mean sagittal RMSE deg, root translation RMSE cm).
SYNTHETIC_GOAL = (3.0, 3.0)


def _frames(text: str | None) -> range | None:
    if text is None:
        return None
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"--frames = {text!r}: expected START:STOP (frame numbers, STOP exclusive)") from None
    if not (0 <= a and b - a >= 12):
        raise ValueError(f"--frames = {text!r}: need START >= 0 and at least 12 frames")
    return range(a, b)


def _align_yaw_translation(mono: Any, ref: Any) -> tuple[Any, float]:
    """Rotation about z and horizontal translation taking ``mono`` (N, 3) onto ``ref`` (N, 3), least squares."""
    import numpy as np

    ok = np.isfinite(mono).all(axis=1) & np.isfinite(ref).all(axis=1)
    a, b = mono[ok, :2], ref[ok, :2]
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    h = (a - ca).T @ (b - cb)
    th = math.atan2(h[0, 1] - h[1, 0], h[0, 0] + h[1, 1])
    R = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    out = np.array(mono, dtype=float)
    out[:, :2] = (mono[:, :2] - ca) @ R.T + cb
    return out, math.degrees(th)


def monocular_check(frames: range | None = None, *, height_m: float | None = None, mass_kg: float = 70.0,
                    cutoff_hz: float = 6.0) -> dict[str, Any]:
    """Run the comparison; returns the JSON document (figures in deg and cm)."""
    import numpy as np

    from models.kinematics.landmark_ik import solve_landmark_ik
    from models.body.landmark_markerset import landmark_length_factors
    from models.body.registry import load_model
    from models.body.scaling import SubjectScale, scale_model
    from runtime.vision.calibration import read_qca
    from runtime.vision.footage import pose2sim_single_person
    from runtime.vision.pose_mediapipe import MediaPipePose
    from runtime.vision.triangulation import pose2sim_reference
    from runtime.vision.world import LEG_LENGTH_FRACTION_OF_HEIGHT, ground_monocular, pose_arrays, smooth_offline

    demo = pose2sim_single_person()
    cams = read_qca(demo["calibration"])
    fps = 60.0
    ref = pose2sim_reference(demo["videos"], cams, MediaPipePose, frames=frames, fps=fps)
    P = ref.points_m
    from runtime.vision.pose_types import BLAZEPOSE_LANDMARKS as NAMES

    def seg(a: str, b: str) -> Any:
        return np.linalg.norm(P[:, NAMES.index(a)] - P[:, NAMES.index(b)], axis=1)

    leg = np.concatenate([seg(f"{s}_hip", f"{s}_knee") + seg(f"{s}_knee", f"{s}_ankle") for s in ("left", "right")])
    leg_m = float(np.nanmedian(leg))
    height_src = "given"
    if height_m is None:
        height_m = leg_m / LEG_LENGTH_FRACTION_OF_HEIGHT
        height_src = f"from the triangulated leg length {leg_m:.3f} m / {LEG_LENGTH_FRACTION_OF_HEIGHT}"
    arrays = pose_arrays(ref.monocular, ref.time_s)
    mono = ground_monocular(arrays, cams[0], height_m, cutoff_hz=cutoff_hz)
    ref_s = smooth_offline(P, fps, cutoff_hz)
    template = load_model("myoleg")
    vis_ref = np.where(np.isfinite(ref_s).all(axis=2), 1.0, 0.0)
    # each side scales its own model from its own landmark segment lengths (the monocular path knows no reference)
    f_ref, seg_ref = landmark_length_factors(template.model, ref_s, NAMES)
    mono_vis = np.where(mono.visibility[..., None] >= 0.5, mono.smoothed_m, np.nan)
    f_mono, seg_mono = landmark_length_factors(template.model, mono_vis, NAMES)
    model_ref = scale_model(template, SubjectScale(mass_kg, height_m), length_by_body=f_ref).model
    model_mono = scale_model(template, SubjectScale(mass_kg, height_m), length_by_body=f_mono).model
    ik_ref = solve_landmark_ik(model_ref, ref.time_s, ref_s, vis_ref)
    ik_mono = solve_landmark_ik(model_mono, mono.time_s, mono.smoothed_m, mono.visibility)
    per_side: dict[str, float] = {}
    table: dict[str, float] = {}
    for j in JOINTS:
        vals = []
        for s in ("r", "l"):
            a, b = ik_mono.coordinate_deg(f"{j}_{s}"), ik_ref.coordinate_deg(f"{j}_{s}")
            ok = np.isfinite(a) & np.isfinite(b)
            r = float(np.sqrt(np.mean((a[ok] - b[ok]) ** 2))) if ok.any() else math.nan
            per_side[f"{j}_{s}_rmse_deg"] = r
            vals.append(r)
        table[f"{j}_rmse_deg"] = float(np.mean(vals))
    model_fit = _model_fit_vs_reference(ref, cams[0], ik_ref, height_m, mass_kg)
    root_mono, yaw = _align_yaw_translation(ik_mono.qpos[:, :3], ik_ref.qpos[:, :3])
    d = np.linalg.norm(root_mono - ik_ref.qpos[:, :3], axis=1)
    root_cm = float(np.sqrt(np.nanmean(d ** 2)) * 100)
    mean_deg = float(np.mean(list(table.values())))
    # grounding against the calibration (the Qualisys lab floor is z = 0, z up)
    true_up = cams[0].rotation_cw @ np.array([0.0, 0.0, 1.0])
    foot_z = P[:, [NAMES.index(n) for n in ("left_heel", "right_heel", "left_foot_index", "right_foot_index")], 2]
    grounding = {
        "floor_normal_error_deg": math.degrees(math.acos(float(np.clip(mono.floor_normal_camera @ true_up, -1, 1)))),
        "camera_height_estimated_m": mono.camera_height_m,
        "camera_height_calibrated_m": float(cams[0].center_world_m[2]),
        "reference_lowest_foot_z_m_p5": float(np.nanpercentile(foot_z, 5)),
        "scale": mono.scale,
    }
    return {
        "frames": [int(ref.time_s[0] * fps), int(round(ref.time_s[-1] * fps)) + 1],
        "subject": {"height_m": height_m, "height_source": height_src, "mass_kg": mass_kg,
                    "landmark_segments_m": {"triangulated": seg_ref, "monocular": seg_mono}},
        "joint_angle_rmse_deg": table, "joint_angle_rmse_deg_per_side": per_side,
        "mean_joint_angle_rmse_deg": mean_deg, "root_translation_rmse_cm": root_cm,
        "root_alignment_yaw_deg": yaw, "monocular_grounding_vs_calibration": grounding,
        "reference": ref.summary(),
        "ik_residual_rms_mm": {"triangulated_median": float(np.nanmedian(ik_ref.residual_rms_m) * 1e3),
                               "monocular_median": float(np.nanmedian(ik_mono.residual_rms_m) * 1e3)},
        "monocular": mono.summary(),
        "model_fit": model_fit,
        "anchors": {k: {"joint_angle_deg": v[0], "root_translation_cm": v[1]} for k, v in ANCHORS.items()},
        "backend": "mediapipe BlazePose full (legacy solution API)",
    }


def _model_fit_vs_reference(ref: Any, cam: Any, ik_ref: Any, height_m: float, mass_kg: float) -> dict[str, Any]:
    """The model fit of the first camera's 2-D landmarks against the triangulated reference's IK (deg, cm)."""
    import numpy as np

    from models.body.registry import load_model
    from models.body.scaling import SubjectScale, scale_model
    from models.kinematics.monocular_fit import PinholeCamera, fit_monocular
    from models.kinematics.monocular_model import LandmarkModel

    from runtime.vision.world import metric_scale

    n = len(ref.monocular)
    xy = np.full((n, 33, 2), np.nan)
    score = np.zeros((n, 33))
    bp_world = np.full((n, 33, 3), np.nan)
    for k, pose in enumerate(ref.monocular):
        if pose is not None:
            xy[k] = cam.undistort_pixels(np.asarray(pose.image_xy, dtype=float))
            score[k] = np.clip(pose.visibility, 0.0, 1.0)
            bp_world[k] = pose.world_xyz
    lm = LandmarkModel(scale_model(load_model("myoleg"), SubjectScale(mass_kg, height_m)).model)
    pin = PinholeCamera.from_calibration(cam)
    # BlazePose's world landmarks have camera-aligned axes (runtime.vision.world): scaled to the subject's leg
    # length and turned into the lab frame by the calibration, they are the fit's weak shape prior
    s, _ = metric_scale(bp_world, height_m)
    fit = fit_monocular(lm, pin, ref.time_s, xy, score, world_landmarks_m=(s * bp_world) @ pin.R_cw)
    table: dict[str, float] = {}
    per_side: dict[str, float] = {}
    for j in JOINTS:
        vals = []
        for s in ("r", "l"):
            a, b = np.degrees(fit.coordinate(f"{j}_{s}")), ik_ref.coordinate_deg(f"{j}_{s}")
            ok = np.isfinite(a) & np.isfinite(b)
            r = float(np.sqrt(np.mean((a[ok] - b[ok]) ** 2))) if ok.any() else math.nan
            per_side[f"{j}_{s}_rmse_deg"] = r
            vals.append(r)
        table[f"{j}_rmse_deg"] = float(np.mean(vals))
    root = fit.qpos[:, :3]
    aligned, yaw = _align_yaw_translation(root, ik_ref.qpos[:, :3])

    def rms_cm(p: Any) -> float:
        d = np.linalg.norm(p - ik_ref.qpos[:, :3], axis=1)
        return float(np.sqrt(np.nanmean(d ** 2)) * 100)

    mean_px = np.nanmean(np.where(np.isfinite(fit.reprojection_error_px), fit.reprojection_error_px, np.nan), axis=1)
    return {"joint_angle_rmse_deg": table, "joint_angle_rmse_deg_per_side": per_side,
            "mean_joint_angle_rmse_deg": float(np.mean(list(table.values()))),
            "root_translation_rmse_cm": rms_cm(aligned), "root_translation_rmse_cm_unaligned": rms_cm(root),
            "root_alignment_yaw_deg": yaw, "reprojection_px_median": float(np.nanmedian(mean_px)),
            "frames_converged": int(fit.converged.sum()), "frames": n, "solve_time_s": float(fit.solve_time_s),
            "segment_length_corrections": fit.shape, "notes": list(fit.notes)}


def _definition_floor(model: Any, syn: Any, ik: Any, solved: Any) -> dict[str, Any]:
    """What the keypoint definitions alone cost: landmark IK of the noise-free 3-D truth (the rendered joint
    centres and markers, all 12 modelled points, no camera) on the same model, against the marker IK (sagittal
    RMSE and mean error, deg).  A monocular fit cannot beat it: it is the disagreement between where the truth
    puts a keypoint (Harrington hip, epicondyles, malleoli, heel/toe markers, acromion) and where the model's
    landmark sites are."""
    import numpy as np

    from models.kinematics.landmark_ik import solve_landmark_ik

    vis = np.where(np.isfinite(syn.truth_world_m).all(axis=2), 1.0, 0.0)
    ik3 = solve_landmark_ik(model, ik.time_s, syn.truth_world_m, vis)
    rm: dict[str, float] = {}
    me: dict[str, float] = {}
    for j in SAGITTAL:
        for sd in ("r", "l"):
            a, b = ik3.coordinate_deg(f"{j}_{sd}"), ik.coordinate_deg(f"{j}_{sd}")
            ok = solved & np.isfinite(a) & np.isfinite(b)
            rm[f"{j}_{sd}_rmse_deg"] = float(np.sqrt(np.mean((a[ok] - b[ok]) ** 2)))
            me[f"{j}_{sd}_deg"] = float(np.mean(a[ok] - b[ok]))
    return {"sagittal_rmse_deg_per_side": rm, "mean_sagittal_rmse_deg": float(np.mean(list(rm.values()))),
            "mean_error_deg": me}


def synthetic_check(trc: str | Path, markerset: str | Path, *, mass_kg: float, height_m: float,
                    static_trc: str | Path | None = None, camera_side: str = "left", noise_px: float = 2.0,
                    seed: int = 0, distance_m: float = 7.0, fit_params: Any = None) -> dict[str, Any]:
    """The synthetic check (module docstring); returns the JSON document (deg, cm, px, s).  ``fit_params``: the fit's
    :class:`~models.kinematics.monocular_params.MonocularFitParams` (default: its defaults)."""
    import time

    import numpy as np

    from models.io.synthetic_keypoints import render_marker_trial
    from models.kinematics.monocular_fit import PinholeCamera, fit_monocular
    from models.kinematics.monocular_model import LandmarkModel
    from models.trial_analysis import AnalyzeParams, trial_kinematics

    params = AnalyzeParams(mass_kg, height_m, "left")
    kin = trial_kinematics(trc, markerset, params)
    ik = kin.ik
    syn = render_marker_trial(trc, markerset, static_trc=static_trc, side=camera_side, noise_px=noise_px, seed=seed,
                              distance_m=distance_m)
    kp = syn.keypoints
    if kp.n_frames != ik.time_s.size or not np.allclose(kp.time_s, ik.time_s, atol=1e-9):
        raise ValueError(f"{trc}: the rendered frames ({kp.n_frames}) do not match the marker IK's ({ik.time_s.size})")
    lm = LandmarkModel(kin.model)
    if tuple(lm.coordinate_names) != tuple(ik.coordinate_names):
        raise ValueError(f"the fit's coordinates {lm.coordinate_names} differ from the marker IK's {ik.coordinate_names}")
    cam = PinholeCamera(syn.camera.K, syn.camera.R_cw, syn.camera.t_cw)
    t0 = time.perf_counter()
    fit = fit_monocular(lm, cam, kp.time_s, kp.xy_px, kp.score, **({} if fit_params is None else {"params": fit_params}))
    wall = time.perf_counter() - t0
    solved = np.isfinite(ik.residual_rms_m)
    per_side: dict[str, float] = {}
    table: dict[str, float] = {}
    bias: dict[str, float] = {}  # mean of fit - marker IK
    for j in SAGITTAL:
        vals = []
        for sd in ("r", "l"):
            a, b = np.degrees(fit.coordinate(f"{j}_{sd}")), ik.coordinate_deg(f"{j}_{sd}")
            ok = solved & np.isfinite(a) & np.isfinite(b)
            r = float(np.sqrt(np.mean((a[ok] - b[ok]) ** 2)))
            per_side[f"{j}_{sd}_rmse_deg"] = r
            bias[f"{j}_{sd}_deg"] = float(np.mean(a[ok] - b[ok]))
            vals.append(r)
        table[f"{j}_rmse_deg"] = float(np.mean(vals))
    for c in ("pelvis_tilt", "pelvis_list", "pelvis_rotation"):
        bias[f"{c}_deg"] = float(np.mean(np.degrees(fit.coordinate(c))[solved] - ik.coordinate_deg(c)[solved]))
    floor = _definition_floor(kin.model, syn, ik, solved)
    tr = [ik.coordinate_names.index(f"pelvis_t{a}") for a in "xyz"]
    d = np.linalg.norm(fit.coordinates[:, tr] - ik.coordinates[:, tr], axis=1)[solved]
    root_cm = float(np.sqrt(np.mean(d ** 2)) * 100)
    mean_px = np.nanmean(fit.reprojection_error_px, axis=1)
    return {
        "trial": str(trc), "markerset": str(markerset), "frames": int(kp.n_frames),
        "time_s": [float(kp.time_s[0]), float(kp.time_s[-1])], "frames_compared": int(solved.sum()),
        "subject": {"mass_kg": mass_kg, "height_m": height_m, "model": "the marker chain's subject-scaled model"},
        "camera": {"side": camera_side, "distance_m": distance_m, "focal_px": float(syn.camera.K[0, 0]),
                   "image_size_px": list(syn.camera.image_size), "noise_px": noise_px, "seed": seed},
        "sagittal_rmse_deg": table, "sagittal_rmse_deg_per_side": per_side,
        "mean_sagittal_rmse_deg": float(np.mean(list(table.values()))), "root_translation_rmse_cm": root_cm,
        "definition_floor": floor, "mean_error_deg": bias, "root_mean_error_cm": {a: float(np.mean(e)) * 100 for a, e in
                                                        zip("xyz", (fit.coordinates[:, tr] - ik.coordinates[:, tr])[solved].T)},
        "fit": {"frames_converged": int(fit.converged.sum()), "reprojection_px_median": float(np.nanmedian(mean_px)),
                "landmarks_used_fraction_mean": float(np.mean(fit.landmarks_used_fraction)), "wall_s": wall,
                "segment_length_corrections": fit.shape, "notes": list(fit.notes)},
        "stance_fraction": {f: float(np.mean(fit.contact[:, i])) for i, f in enumerate(fit.foot_names)},
        "goal": {"mean_sagittal_rmse_deg": SYNTHETIC_GOAL[0], "root_translation_rmse_cm": SYNTHETIC_GOAL[1]},
        "render_notes": list(syn.notes), "misplaced_markers": [m.name for m in syn.misplaced],
        "marker_ik_residual_rms_mm_median": float(np.nanmedian(ik.residual_rms_m) * 1e3),
    }


def _print_synthetic(doc: dict[str, Any]) -> None:
    c = doc["camera"]
    print(f"synthetic monocular check: {Path(doc['trial']).name} rendered side-on ({c['side']}), {c['distance_m']:g} m, "
          f"f {c['focal_px']:g} px, {c['noise_px']:g} px noise; fit vs the marker IK, {doc['frames_compared']} frames")
    print(f"{'figure':<34}{'fit':>9}{'goal':>9}")
    t = doc["sagittal_rmse_deg"]
    for j in SAGITTAL:
        print(f"{j.replace('_', ' ') + ' RMSE (deg)':<34}{t[f'{j}_rmse_deg']:>9.2f}")
    print(f"{'mean sagittal RMSE (deg)':<34}{doc['mean_sagittal_rmse_deg']:>9.2f}{SYNTHETIC_GOAL[0]:>9.1f}")
    print(f"{'root translation RMSE (cm)':<34}{doc['root_translation_rmse_cm']:>9.2f}{SYNTHETIC_GOAL[1]:>9.1f}")
    print(f"definition floor (landmark IK of the noise-free 3-D truth vs the marker IK): mean sagittal "
          f"{doc['definition_floor']['mean_sagittal_rmse_deg']:.2f} deg")
    sh = doc["fit"].get("segment_length_corrections") or {}
    if sh:
        print("segment length corrections: " + ", ".join(f"{k} {100 * v:+.1f} %" for k, v in sh.items()))
    f = doc["fit"]
    print(f"fit: median reprojection {f['reprojection_px_median']:.2f} px, {f['frames_converged']} of {doc['frames']} "
          f"frames converged, {f['wall_s']:.1f} s")


def _print_table(doc: dict[str, Any]) -> None:
    t = doc["joint_angle_rmse_deg"]
    print(f"monocular ({doc['reference']['cameras'][0]}) vs triangulated ({len(doc['reference']['cameras'])} cameras), "
          f"frames {doc['frames'][0]}..{doc['frames'][1] - 1}, mean of both sides")
    f = doc["model_fit"]
    ft = f["joint_angle_rmse_deg"]
    print(f"{'figure':<34}{'before':>9}{'after':>9}{'seed target':>13}{'OpenCap Mono':>14}")
    print(f"{'':<34}{'(ground)':>9}{'(fit)':>9}")
    for j in JOINTS:
        print(f"{j.replace('_', ' ') + ' RMSE (deg)':<34}{t[f'{j}_rmse_deg']:>9.2f}{ft[f'{j}_rmse_deg']:>9.2f}"
              f"{4.5:>13.1f}{4.8:>14.1f}")
    print(f"{'mean joint angle RMSE (deg)':<34}{doc['mean_joint_angle_rmse_deg']:>9.2f}"
          f"{f['mean_joint_angle_rmse_deg']:>9.2f}{4.5:>13.1f}{4.8:>14.1f}")
    print(f"{'root translation RMSE (cm)':<34}{doc['root_translation_rmse_cm']:>9.2f}{f['root_translation_rmse_cm']:>9.2f}"
          f"{3.4:>13.1f}{3.4:>14.1f}")
    print(f"model fit: root {f['root_translation_rmse_cm_unaligned']:.2f} cm without the alignment (calibrated camera), "
          f"median reprojection {f['reprojection_px_median']:.1f} px, {f['frames_converged']} of {f['frames']} frames "
          "converged")
    r = doc["reference"]
    print(f"reference reprojection error: median {r['reprojection_px_median']:.1f} px, p95 {r['reprojection_px_p95']:.1f} px")
    g = doc["monocular_grounding_vs_calibration"]
    print(f"monocular floor normal {g['floor_normal_error_deg']:.1f} deg off the calibrated vertical; camera height "
          f"{g['camera_height_estimated_m']:.2f} m estimated, {g['camera_height_calibrated_m']:.2f} m calibrated")


def _cmd_synthetic(args: argparse.Namespace) -> int:
    if args.markerset is None:
        print("monocular-check --synthetic: needs --markerset (the .osim or marker .xml placing the trial's markers)",
              file=sys.stderr)
        return EXIT_USAGE
    if args.height_m is None:
        print("monocular-check --synthetic: needs --height-m (the subject's height, m)", file=sys.stderr)
        return EXIT_USAGE
    if not (0.0 <= args.noise_px <= 50.0):
        raise ValueError(f"--noise-px = {args.noise_px!r}: allowed 0..50 px")
    for flag, path in (("--synthetic", args.synthetic), ("--markerset", args.markerset), ("--static", args.static)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{flag} {path}: no such file")
    doc = synthetic_check(args.synthetic, args.markerset, mass_kg=args.mass_kg, height_m=args.height_m,
                          static_trc=args.static, camera_side=args.camera_side, noise_px=args.noise_px, seed=args.seed)
    _print_synthetic(doc)
    if args.json:
        p = Path(args.json)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(doc, indent=2, default=float))
        print(f"wrote {p}", file=sys.stderr)
    ok = math.isfinite(doc["mean_sagittal_rmse_deg"]) and math.isfinite(doc["root_translation_rmse_cm"])
    return EXIT_OK if ok else EXIT_FAILED


def cmd_monocular_check(args: argparse.Namespace) -> int:
    if args.height_m is not None and not (0.5 <= args.height_m <= 2.5):
        raise ValueError(f"--height-m = {args.height_m!r}: allowed 0.5..2.5 m")
    if not (20.0 <= args.mass_kg <= 250.0):
        raise ValueError(f"--mass-kg = {args.mass_kg!r}: allowed 20..250 kg")
    if args.synthetic:
        if args.frames:
            raise ValueError("--frames applies to the pose2sim demo, not to --synthetic (the whole trial is used)")
        return _cmd_synthetic(args)
    frames = _frames(args.frames)
    doc = monocular_check(frames, height_m=args.height_m, mass_kg=args.mass_kg)
    _print_table(doc)
    if args.json:
        p = Path(args.json)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(doc, indent=2, default=float))
        print(f"wrote {p}", file=sys.stderr)
    ok = all(math.isfinite(v) for v in doc["joint_angle_rmse_deg"].values()) and math.isfinite(doc["root_translation_rmse_cm"])
    ok = ok and all(math.isfinite(v) for v in doc["model_fit"]["joint_angle_rmse_deg"].values())
    return EXIT_OK if ok else EXIT_FAILED


def register(subparsers: Any) -> None:
    p = add_command(
        subparsers, "monocular-check", help="monocular joint angles vs a four-camera triangulated reference (pose2sim demo), "
                                        "or vs the marker IK of a rendered lab trial (--synthetic)",
        description="BlazePose on cam01 alone (monocular, grounded) and on all four calibrated cameras "
                    "(triangulated reference) of the pose2sim single-person demo; landmark IK on MyoLeg; RMSE per "
                    "joint (deg) and root translation error (cm) beside the anchors (seed 4.5 deg / 3.4 cm, OpenCap "
                    "Monocular 4.8 deg / 3.4 cm). The figures are meant over all 100 frames (no --frames); the example "
                    "takes the fewest it accepts (12).\n\n"
                    "With --synthetic TRC --markerset FILE --mass-kg M --height-m H: a lab marker trial rendered "
                    "through a virtual side-on camera with known truth, the model fitted to its 2-D keypoints and "
                    "compared with the project's own marker IK of the same trial (sagittal hip flexion, knee, ankle "
                    "RMSE in deg; root translation in cm; goal 3 deg / 3 cm), e.g. on ../shared/data/GC5_PS "
                    "(trc/PS_ngait_og_ss1.trc, model/GC5.osim, 75 kg, 1.8 m).",
        examples=["exo monocular-check --frames 0:12 --json runs/mono.json"])
    p.add_argument("--frames", help="START:STOP frame range of cam01 (default: all 100)")
    p.add_argument("--height-m", type=float, help="subject height in m (default: from the triangulated leg length)")
    p.add_argument("--mass-kg", type=float, default=70.0, help="subject mass in kg (default: %(default)s, the demo's Config.toml)")
    p.add_argument("--json", help="write the figures to this JSON file")
    p.add_argument("--synthetic", metavar="TRC", help="instead of the demo: this lab marker trial rendered through a "
                   "virtual side-on camera (1920x1080, f 1400 px, 7 m, --noise-px), fitted, and compared with the "
                   "project's marker IK of the same trial (sagittal RMSE deg, root cm); needs --markerset, --height-m")
    p.add_argument("--markerset", help="with --synthetic: the .osim or marker .xml placing the trial's markers")
    p.add_argument("--static", help="with --synthetic: the subject's static trial (.trc), to catch misplaced markers")
    p.add_argument("--camera-side", choices=["left", "right"], default="left",
                   help="with --synthetic: the side of the subject the virtual camera sees (default: %(default)s)")
    p.add_argument("--noise-px", type=float, default=2.0, help="with --synthetic: Gaussian pixel noise sigma "
                   "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="with --synthetic: noise seed (default: %(default)s)")
    p.set_defaults(fn=cmd_monocular_check)

"""The offline path from 2-D keypoints already detected: calibration -> model fit -> GRF -> ID -> KAM/KEM.

:func:`analyze_keypoints` (what ``exo analyze --keypoints2d PATH`` runs) is the ``--video`` chain
(:mod:`runtime.vision.video_analysis`) with the detector and the world grounding replaced:

1. **Keypoints**: :func:`models.io.keypoints2d.read_keypoints2d` (the CSV form, or an OpenPose-style JSON
   folder with ``fps``); pixels, origin top-left, y down; ``time_s`` kept exactly as read.
2. **Camera** (:func:`keypoint_camera`): the calibration file (:func:`runtime.vision.calibration
   .read_calibration`; it must hold exactly one camera, or ``camera`` names one of several); its image size
   must equal the keypoints' declared one. Pixels are undistorted with its lens model. Without a calibration
   the intrinsics are guessed (:func:`~runtime.vision.calibration.guess_intrinsics`, ``hfov_deg``, the image
   size from the keypoint file or ``image_size``) and the floor is estimated (:func:`estimate_level_camera`:
   the camera assumed level, its height above the floor from the lowest foot landmarks, said in the notes).
3. **Subject model**: ``models.body.scaling.scale_model`` of ``model`` by height and mass (2-D keypoints carry
   no metric segment lengths, so the landmark length factors of the video path do not apply).
4. **Fit** (:func:`models.kinematics.monocular_fit.fit_monocular`, offline smoother over the whole trial), then
   the kinematics-only chain of :mod:`models.trial_analysis` exactly as the video path: zero-lag derivatives at
   ``cutoff_hz``, GRF from kinematics alone, inverse dynamics, knee moments, the same CSVs. The chain runs on
   the uniform grid ``t0 + k / rate`` (``rate`` from the span, as the marker chain does for rounded lab stamps;
   a dropped frame is refused, :func:`uniform_rate_hz`); the outputs carry the input's ``time_s`` unchanged.

Outputs in ``out_dir``: ``joint_angles.csv`` and the other CSVs of ``exo analyze`` (same columns, units, and the
input's ``time_s``), ``fit_quality.csv`` (:func:`write_fit_quality_csv`) and ``keypoint_analysis.json``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from runtime.vision.calibration import DEFAULT_HFOV_DEG, CameraCalibration
from runtime.vision.video_analysis import json_default, plausibility_notes

__all__ = [
    "MAX_STEP_RATIO",
    "CalibrationError",
    "KeypointAnalysis",
    "analyze_keypoints",
    "estimate_level_camera",
    "fit_ik_trial",
    "keypoint_camera",
    "uniform_rate_hz",
    "write_fit_quality_csv",
]

#: A time step outside [1 / MAX_STEP_RATIO, MAX_STEP_RATIO] x the median step is a dropped (or doubled) frame:
#: the zero-lag derivatives of the kinetics chain need a uniform grid. 1.5 admits the +-1 ms rounding of lab
#: time stamps at 120 Hz (8 or 9 ms steps) and refuses any missing frame (a 2x step).
MAX_STEP_RATIO = 1.5


class CalibrationError(ValueError):
    """A calibration that cannot serve the keypoints; the message names the file."""


@dataclass
class KeypointAnalysis:
    """What :func:`analyze_keypoints` produced: the keypoints (``models.io.keypoints2d.Keypoints2D``), the camera
    used, the fit (``models.kinematics.monocular_fit.MonocularFit``), the trial dynamics
    (``models.trial_analysis.TrialAnalysis``), the files written and notes."""

    source: str
    camera: CameraCalibration
    fit: Any
    trial: Any
    files: list[Path]
    notes: list[str] = field(default_factory=list)

    def quality_summary(self) -> dict[str, Any]:
        """Per-trial figures of the per-frame quality (px, fractions)."""
        f = self.fit
        mean_px = np.nanmean(f.reprojection_error_px, axis=1) if np.isfinite(f.reprojection_error_px).any() else None
        return {
            "frames": int(f.time_s.size),
            "reprojection_error_px_median": float(np.nanmedian(mean_px)) if mean_px is not None else math.nan,
            "reprojection_error_px_p95": float(np.nanpercentile(mean_px, 95)) if mean_px is not None else math.nan,
            "landmarks_used_fraction_mean": float(np.mean(f.landmarks_used_fraction)),
            "frames_converged": int(np.sum(f.converged)),
            "frames_not_converged": int(np.sum(~f.converged)),
            "stance_fraction": {foot: float(np.mean(f.contact[:, i])) for i, foot in enumerate(f.foot_names)},
            "solve_time_s": float(f.solve_time_s),
            "segment_length_corrections": dict(f.shape),
        }

    def summary(self) -> dict[str, Any]:
        return {"keypoints": self.source, "camera": {"name": self.camera.name, "source": self.camera.source,
                                                     "assumption": self.camera.assumption,
                                                     "image_size_px": list(self.camera.image_size)},
                "time_s": [float(self.fit.time_s[0]), float(self.fit.time_s[-1])],
                "fit_quality": self.quality_summary(), "analysis": self.trial.summary(),
                "files": [str(p) for p in self.files], "notes": self.notes}


# --------------------------------------------------------------------------------------------------
# camera
# --------------------------------------------------------------------------------------------------


def _calibrated_camera(path: Path, camera_name: str | None, image_size: tuple[int, int] | None) -> CameraCalibration:
    from runtime.vision.calibration import read_calibration

    if not path.is_file():
        raise CalibrationError(f"calibration {path}: no such file")
    try:
        cams = read_calibration(path)
    except ValueError as exc:
        msg = str(exc)
        raise CalibrationError(msg if str(path.name) in msg else f"calibration {path}: {msg}") from None
    names = [c.name for c in cams]
    if camera_name is not None:
        if camera_name not in names:
            raise CalibrationError(f"calibration {path}: no camera {camera_name!r}; cameras: {names}")
        cam = cams[names.index(camera_name)]
    elif len(cams) != 1:
        raise CalibrationError(f"calibration {path}: {len(cams)} cameras ({', '.join(names)}); 2-D keypoints come "
                               "from one camera: name it with --camera NAME")
    else:
        cam = cams[0]
    if image_size is not None and tuple(image_size) != tuple(cam.image_size):
        raise CalibrationError(f"calibration {path}: camera {cam.name!r} is {cam.image_size[0]}x{cam.image_size[1]} "
                               f"px but the keypoints are declared {image_size[0]}x{image_size[1]} px")
    return cam


def estimate_level_camera(cam: CameraCalibration, xy_px: np.ndarray, score: np.ndarray, time_s: np.ndarray,
                          leg_length_m: float, contact_height_m: float, min_score: float = 0.5) -> tuple[CameraCalibration, str]:
    """An uncalibrated camera placed in a floor frame (world z up, floor z = 0): level (optical axis horizontal,
    image x horizontal; assumed), looking along world +y from ``(0, 0, h)``.

    ``h`` from the 2-D data and the body's size: at the body's depth ``Z = f / s`` (``s`` px per m from the legs'
    pixel length over ``leg_length_m``), a floor point seen ``v - c_y`` px below the principal point lies
    ``(v - c_y) / s`` m below the camera; the lowest foot landmark (heel or toe tip, undistorted ``xy_px``) of
    each frame stands ``contact_height_m`` above the floor, so ``h = (v - c_y) / s + contact_height_m``, median
    over the frames. Raises ValueError when no frame shows a foot and a leg.
    """
    from models.body.blazepose import BLAZEPOSE_33
    from models.kinematics.monocular_contact import image_scale_px_per_m

    s = image_scale_px_per_m(time_s, xy_px, score, leg_length_m, min_score)
    feet = [BLAZEPOSE_33.index(f"{side}_{p}") for side in ("left", "right") for p in ("heel", "foot_index")]
    v = np.where(score[:, feet] >= min_score, xy_px[:, feet, 1], np.nan)
    with np.errstate(all="ignore"):
        low = np.nanmax(np.where(np.isfinite(v), v, -np.inf), axis=1)
    low[~np.isfinite(low)] = np.nan
    fy, cy = float(cam.K[1, 1]), float(cam.K[1, 2])
    h = (low - cy) * (cam.K[0, 0] / fy) / s + contact_height_m
    ok = np.isfinite(h)
    if not ok.any():
        raise ValueError("floor estimate: no frame shows a foot (heel/foot_index) and a leg (hip, knee, ankle) with "
                         f"score >= {min_score}; give a calibration")
    height = float(np.median(h[ok]))
    if not height > 0.05:
        raise ValueError(f"floor estimate: camera height {height:.2f} m above the floor (the feet appear above the "
                         "image centre of a level camera); give a calibration")
    R = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # rows: camera x, y, z in the world
    centre = np.array([0.0, 0.0, height])
    placed = CameraCalibration(cam.name, cam.image_size, cam.K, cam.distortion, R, -R @ centre, source=cam.source,
                               assumption=cam.assumption + f"; camera assumed level, {height:.2f} m above the floor "
                               f"(estimated from the lowest foot landmarks of {int(ok.sum())} frames)")
    return placed, f"floor estimated: level camera {height:.2f} m above the floor (median of {int(ok.sum())} frames)"


def keypoint_camera(kp: Any, calibration: str | Path | None, *, camera_name: str | None = None,
                    image_size: tuple[int, int] | None = None, hfov_deg: float = DEFAULT_HFOV_DEG) -> CameraCalibration:
    """The camera of the keypoints ``kp``: from ``calibration`` (one camera, or ``camera_name``), else guessed
    intrinsics (``hfov_deg``) for the image size of ``kp`` or ``image_size`` (the floor is placed later by
    :func:`estimate_level_camera`). Raises :class:`CalibrationError` naming the file."""
    from runtime.vision.calibration import guess_intrinsics

    declared = kp.image_size
    if image_size is not None and declared is not None and tuple(image_size) != tuple(declared):
        raise ValueError(f"--image-size {image_size[0]}x{image_size[1]} differs from the {declared[0]}x{declared[1]} "
                         f"px declared in {kp.source}")
    size = declared if declared is not None else image_size
    if calibration is not None:
        return _calibrated_camera(Path(calibration), camera_name, size)
    if camera_name is not None:
        raise ValueError("--camera names a camera of a calibration file: give --calibration")
    if size is None:
        raise ValueError(f"{kp.source}: no image size (no '# image_size_px: W H' line); without a calibration the "
                         "guessed intrinsics need it: give --image-size WxH or --calibration")
    return guess_intrinsics(size[0], size[1], hfov_deg, name=Path(str(kp.source).split(" ")[0]).stem or "camera")


# --------------------------------------------------------------------------------------------------
# the fit as the kinetics chain's IK trial, and the quality file
# --------------------------------------------------------------------------------------------------


def uniform_rate_hz(time_s: np.ndarray, source: str) -> float:
    """The sample rate of ``time_s`` (s), refused (ValueError naming the frame) when a step is not uniform
    within :data:`MAX_STEP_RATIO`: the kinetics chain's zero-lag derivatives need a uniform grid."""
    t = np.asarray(time_s, dtype=float)
    if t.size < 12:
        raise ValueError(f"{source}: {t.size} frames; the kinetics chain needs at least 12")
    dt = np.diff(t)
    med = float(np.median(dt))
    bad = np.flatnonzero((dt > MAX_STEP_RATIO * med) | (dt < med / MAX_STEP_RATIO))
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"{source}: time_s step {dt[k]:.6g} s from frame {k} ({t[k]!r} s) to {k + 1} ({t[k + 1]!r} s) "
                         f"is not the median step {med:.6g} s (a dropped frame?); give every frame, with empty cells "
                         "where nothing was detected")
    return float((t.size - 1) / (t[-1] - t[0]))


def fit_ik_trial(fit: Any, lm: Any, cam: CameraCalibration) -> Any:
    """The fit as a :class:`models.kinematics.ik_types.IKTrial` for :mod:`models.trial_analysis`: the model's
    landmark sites as its markers; ``residual_rms_m`` / ``residual_max_m`` the RMS / max reprojection error in
    px converted to metres at the pelvis' depth (``px * Z / f``); ``status`` NOT_CONVERGED where the fit flags
    a frame, MARKERS_MISSING where landmarks were not used."""
    from models.kinematics.ik_types import IKStatus, IKTrial

    N = fit.time_s.size
    sel = [fit.landmark_names.index(n) for n in lm.landmark_names]
    err_px = fit.reprojection_error_px[:, sel]
    pelvis_w = np.stack([lm.sites(x)[[lm.landmark_names.index("left_hip"), lm.landmark_names.index("right_hip")]]
                         .mean(axis=0) for x in fit.coordinates])
    depth = pelvis_w @ cam.rotation_cw[2] + cam.translation_cw_m[2]
    m_per_px = depth / float(cam.K[0, 0])
    used = np.isfinite(err_px)
    with np.errstate(all="ignore"):
        rms = np.sqrt(np.nanmean(err_px ** 2, axis=1)) * m_per_px
        mx = np.nanmax(np.where(used, err_px, -np.inf), axis=1) * m_per_px
    rms[~used.any(axis=1)] = np.nan
    mx[~used.any(axis=1)] = np.nan
    status = np.where(fit.converged, int(IKStatus.OK), int(IKStatus.NOT_CONVERGED))
    status = status | np.where(used.all(axis=1), 0, int(IKStatus.MARKERS_MISSING))
    return IKTrial(time_s=fit.time_s.copy(), marker_names=tuple(lm.landmark_names),
                   coordinate_names=tuple(fit.coordinate_names), coordinates=fit.coordinates.copy(),
                   qpos=fit.qpos.copy(), residual_rms_m=rms, residual_max_m=mx, markers_used=used.sum(axis=1),
                   iterations=np.asarray(fit.iterations), status=status.astype(np.int64),
                   marker_error_m=err_px * m_per_px[:, None], solve_time_s=np.full(N, fit.solve_time_s / N))


def write_fit_quality_csv(path: Path, fit: Any) -> Path:
    """``fit_quality.csv``: ``time_s`` (the input's), ``reprojection_error_mean_px``, ``reprojection_error_max_px``
    (over the landmarks used), ``landmarks_used_frac`` (used / modelled), ``left_foot_contact``,
    ``right_foot_contact`` (1 in stance), ``left_contact_point``, ``right_contact_point`` (0 heel, 1 foot_index,
    -1 none), ``converged`` (1 / 0), then ``<landmark>_reprojection_px`` per modelled landmark (empty = not used)."""
    err = fit.reprojection_error_px
    modelled = [i for i in range(err.shape[1]) if np.isfinite(err[:, i]).any()]
    used = np.isfinite(err)
    with np.errstate(all="ignore"):
        mean = np.where(used.any(axis=1), np.nanmean(np.where(used, err, np.nan), axis=1), np.nan)
        mx = np.where(used.any(axis=1), np.nanmax(np.where(used, err, -np.inf), axis=1), np.nan)
    cols = ["time_s", "reprojection_error_mean_px", "reprojection_error_max_px", "landmarks_used_frac"]
    cols += [f"{f}_foot_contact" for f in fit.foot_names] + [f"{f}_contact_point" for f in fit.foot_names]
    cols += ["converged"] + [f"{fit.landmark_names[i]}_reprojection_px" for i in modelled]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(",".join(cols) + "\n")
        for k in range(fit.time_s.size):
            row = [repr(float(fit.time_s[k])), _g(mean[k]), _g(mx[k]), _g(fit.landmarks_used_fraction[k])]
            row += [str(int(c)) for c in fit.contact[k]] + [str(int(c)) for c in fit.contact_point[k]]
            row += [str(int(bool(fit.converged[k])))] + [_g(err[k, i]) for i in modelled]
            fh.write(",".join(row) + "\n")
    tmp.replace(path)
    return path


def _g(v: float) -> str:
    return f"{float(v):.6g}" if math.isfinite(float(v)) else ""


# --------------------------------------------------------------------------------------------------
# the chain
# --------------------------------------------------------------------------------------------------


def analyze_keypoints(path: str | Path, *, out_dir: str | Path, mass_kg: float, height_m: float,
                      side: Literal["left", "right"], fps: float | None = None, calibration: str | Path | None = None,
                      camera_name: str | None = None, image_size: tuple[int, int] | None = None,
                      hfov_deg: float = DEFAULT_HFOV_DEG, cutoff_hz: float = 6.0, model: str = "myoleg",
                      fit_params: Any = None) -> KeypointAnalysis:
    """Analyse 2-D keypoints of one walking person (see the module docstring). Bad keypoint input raises
    :class:`models.io.keypoints2d.KeypointsError` (file, line, column), a bad calibration
    :class:`CalibrationError` (the file), other bad input ValueError naming the field and value."""
    import dataclasses

    from models.body.registry import load_model
    from models.body.scaling import SubjectScale, scale_model
    from models.dynamics.opensim_state import kinematics_from_opensim
    from models.filters import smooth_derivatives
    from models.io.keypoints2d import read_keypoints2d
    from models.kinematics.monocular_fit import (
        MonocularFitParams,
        PinholeCamera,
        fit_monocular,
    )
    from models.kinematics.monocular_model import LandmarkModel
    from models.trial_analysis import (
        AnalyzeParams,
        TrialKinematics,
        kinematic_foot_wrenches,
        trial_dynamics,
        write_csvs,
    )

    params = AnalyzeParams(mass_kg=mass_kg, height_m=height_m, side=side, model=model, cutoff_hz=cutoff_hz)
    fp = fit_params if fit_params is not None else MonocularFitParams()
    kp = read_keypoints2d(path, fps)
    notes: list[str] = [f"keypoints: {kp.source}, {kp.n_frames} frames, time {kp.time_s[0]:.4f}..{kp.time_s[-1]:.4f} s"]
    rate = uniform_rate_hz(kp.time_s, kp.source)
    cam = keypoint_camera(kp, calibration, camera_name=camera_name, image_size=image_size, hfov_deg=hfov_deg)
    template = load_model(model)
    subject = scale_model(template, SubjectScale(mass_kg, height_m)).model
    notes.append(f"model: {model} scaled to height {height_m:g} m and mass {mass_kg:g} kg (every segment by height)")
    lm = LandmarkModel(subject)
    xy = cam.undistort_pixels(np.asarray(kp.xy_px)) if np.any(cam.distortion != 0) else np.asarray(kp.xy_px)
    if calibration is None:
        # the stance keypoint's height above the floor: the fit's own convention (its contact_height_m, else the
        # model's sole heights)
        foot = [i for i, n in enumerate(lm.landmark_names) if n.endswith(("_heel", "_foot_index"))]
        h_contact = fp.contact_height_m if fp.contact_height_m is not None else float(np.nanmean(lm.contact_height_m[foot]))
        cam, note = estimate_level_camera(cam, xy, np.asarray(kp.score), kp.time_s, lm.leg_length_m, h_contact,
                                          fp.min_score)
        notes += [cam.assumption.split(";")[0], note]
        if fit_params is None and fp.estimate_shape:
            # the floor and the focal length were sized by the model's own leg: segment lengths from the image
            # would only echo that guess, so the scaled model's lengths are kept
            import dataclasses

            fp = dataclasses.replace(fp, estimate_shape=False)
            notes.append("fit: segment lengths kept at the scaled model's (no calibration: the image cannot size them)")
    else:
        notes.append(f"camera: {cam.name} from {cam.source}" + (", pixels undistorted" if np.any(cam.distortion != 0) else ""))
    fit = fit_monocular(lm, PinholeCamera.from_calibration(cam), kp.time_s, xy, kp.score, params=fp)
    notes += [f"fit: {n}" for n in fit.notes]
    if fp.estimate_shape and fit.shape:
        notes.append("fit: segment lengths from the image (calibrated camera and floor): "
                     + ", ".join(f"{k} {100 * v:+.1f} %" for k, v in fit.shape.items()))
    nc = int(np.sum(~fit.converged))
    if nc:
        notes.append(f"fit: {nc} of {fit.time_s.size} frames flagged not converged (fit_quality.csv)")
    ik = fit_ik_trial(fit, lm, cam)
    sm = smooth_derivatives(ik.coordinates, rate, cutoff_hz=cutoff_hz, channel_names=ik.coordinate_names)
    mk = kinematics_from_opensim(subject, ik.coordinate_names, sm.position, sm.velocity, sm.acceleration)
    name = Path(str(path)).stem
    grid = kp.time_s[0] + np.arange(kp.n_frames) / rate  # the chain's uniform grid (rounded stamps: <= 1 step)
    kin = TrialKinematics(name, subject, ik, sm, mk, list(notes), grid, rate)
    dyn_notes: list[str] = []
    feet = kinematic_foot_wrenches(kin, params, dyn_notes)
    trial = dataclasses.replace(trial_dynamics(kin, feet, "kinematics", params, dyn_notes), time_s=kp.time_s.copy())
    dyn_notes.extend(plausibility_notes(trial))
    out = Path(out_dir)
    files = write_csvs(trial, out)
    files.append(write_fit_quality_csv(out / "fit_quality.csv", fit))
    res = KeypointAnalysis(kp.source, cam, fit, trial, files, notes + dyn_notes)
    js = out / "keypoint_analysis.json"
    js.write_text(json.dumps(res.summary(), indent=2, default=json_default))
    res.files.append(js)
    return res

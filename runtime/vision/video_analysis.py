"""The offline path from one video: pose -> world grounding -> landmark IK -> GRF -> ID -> KAM/KEM.

:func:`analyze_video` (what ``exo analyze --video FILE --bbox --mask --describe`` runs):

1. **Pose**: with a box prompt (``bbox``, or the box of a ``mask`` prompt) the prompted person is
   followed by :func:`runtime.vision.tracking.track_video` (detector candidates, appearance and
   motion gates, never switching identity; frames where the person is lost have no pose); without
   a prompt MediaPipe's own single-person tracker runs (the most prominent person; it can switch
   people, which the notes say).
2. **World grounding** (:func:`runtime.vision.world.ground_monocular`): intrinsics from
   ``calibration`` (a ``.toml``/``.qca.txt`` file, first camera) or guessed from the image size and
   ``hfov_deg`` (stated); metric scale from the subject's height; floor and walking direction from
   the data (project frame: z up, y = walking direction); zero-lag smoothing at ``cutoff_hz``.
3. **Subject model**: ``models.body.scaling.scale_model`` of ``model`` (MyoLeg): thigh, shank, foot and
   pelvis lengths from the grounded landmarks' distances
   (:func:`models.body.landmark_markerset.landmark_length_factors`), the rest by the height and mass
   from ``describe`` (``runtime.vision.prompts.split_description``: "tall male, 1.85 m, 90 kg";
   interaction words like "occlusion" go to the tracker) or from ``height_m``/``mass_kg``
   (explicit values win).
4. **Landmark IK** (:func:`models.kinematics.landmark_ik.solve_landmark_ik`), then the existing
   kinematics-only chain of :mod:`models.trial_analysis`: zero-lag derivatives, GRF from
   kinematics alone (``kinematic_foot_wrenches``), inverse dynamics and knee moments
   (``trial_dynamics``), CSVs (``write_csvs``).

Outputs in ``out_dir``: ``landmarks.csv`` (``time_s``, per landmark ``<name>_x_m/_y_m/_z_m`` in the
project frame (smoothed), ``<name>_u_px/_v_px`` image pixels, ``<name>_visibility`` 0..1),
``joint_angles.csv``, ``ground_reaction_force.csv``, ``joint_moments.csv``, ``knee_moments.csv``
(the same columns as ``exo analyze``), and ``video_analysis.json`` (summary and notes).

From 2-D keypoints already detected (any detector: the keypoint CSV or OpenPose-style JSON), the same chain
with the world grounding and landmark IK replaced by the model fit is :mod:`runtime.vision.keypoint_analysis`
(``exo analyze --keypoints2d``); it shares the plausibility notes below.

Honest limits: monocular BlazePose depth is noisy (``exo monocular-check``: mean joint-angle RMSE
12.8 deg against the four-camera reference); the kinematics-only GRF and knee moments computed from
it are flagged ``IMPLAUSIBLE`` in the notes, with the fraction of frames affected, for every estimate outside its
physiological envelope (``models.confidence.ENVELOPES``: vertical GRF, KAM, KEM, activation rate).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from runtime.vision.calibration import DEFAULT_HFOV_DEG

__all__ = ["VideoAnalysis", "analyze_video", "write_landmarks_csv", "BACKENDS"]

#: Pose backends accepted by :func:`analyze_video`.
BACKENDS = ("mediapipe",)


@dataclass
class VideoAnalysis:
    """What :func:`analyze_video` produced. ``grounded``: :class:`runtime.vision.world.GroundedTrajectory`;
    ``ik``: :class:`models.kinematics.inverse_kinematics.IKTrial`; ``trial``: :class:`models.trial_analysis.TrialAnalysis`;
    ``tracked``: per analysed frame, whether the subject's pose was found."""

    video: Path
    fps: float
    frames: range
    grounded: Any
    ik: Any
    trial: Any
    tracked: np.ndarray
    files: list[Path]
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"video": str(self.video), "fps": self.fps, "frames": [self.frames.start, self.frames.stop],
                "frames_with_pose": int(self.tracked.sum()), "frames_without_pose": int((~self.tracked).sum()),
                "grounding": self.grounded.summary(), "analysis": self.trial.summary(),
                "ik_residual_rms_mm_median": float(np.nanmedian(self.ik.residual_rms_m) * 1e3),
                "files": [str(p) for p in self.files], "notes": self.notes}


def _landmark_names() -> tuple[str, ...]:
    from runtime.vision.pose_types import BLAZEPOSE_LANDMARKS

    return BLAZEPOSE_LANDMARKS


def write_landmarks_csv(path: Path, time_s: np.ndarray, world_m: np.ndarray, image_px: np.ndarray,
                        visibility: np.ndarray) -> Path:
    """``landmarks.csv``: see the module docstring for the columns."""
    names = _landmark_names()
    cols = ["time_s"]
    blocks = [time_s[:, None]]
    for i, n in enumerate(names):
        cols += [f"{n}_x_m", f"{n}_y_m", f"{n}_z_m", f"{n}_u_px", f"{n}_v_px", f"{n}_visibility"]
        blocks += [world_m[:, i, :], image_px[:, i, :], visibility[:, i:i + 1]]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    np.savetxt(tmp, np.hstack(blocks), delimiter=",", header=",".join(cols), comments="", fmt="%.6g")
    tmp.replace(path)
    return path


def _frame_range(frames: range | tuple[int, int] | None, n_total: int) -> range:
    if frames is None:
        return range(0, n_total)
    r = frames if isinstance(frames, range) else range(int(frames[0]), int(frames[1]))
    if r.step != 1 or r.start < 0 or r.stop > n_total or len(r) < 12:
        raise ValueError(f"frames = {frames!r}: need a contiguous range of at least 12 frames within 0..{n_total}")
    return r


def _subject(describe: str | None, height_m: float | None, mass_kg: float | None) -> tuple[float, float, Any, list[str]]:
    from runtime.vision.prompts import Interaction, split_description

    notes: list[str] = []
    inter = Interaction()
    h, m = height_m, mass_kg
    if describe:
        attrs, inter = split_description(describe)
        notes.append(f"describe {describe!r} -> height {attrs.height_m} m, mass {attrs.mass_kg} kg, "
                     f"interaction {list(inter.labels)}")
        h = h if h is not None else attrs.height_m
        m = m if m is not None else attrs.mass_kg
    missing = [n for n, v in (("height_m", h), ("mass_kg", m)) if v is None]
    if missing:
        raise ValueError(f"subject: no {' and no '.join(missing)}; give them in --describe (e.g. '1.85 m, 90 kg') "
                         "or explicitly")
    return float(h), float(m), inter, notes


def _poses(path: Path, rng: range, fps: float, prompt: Any, interaction: Any, notes: list[str]) -> list[Any]:
    from runtime.vision.frame_sources import VideoFileSource

    if prompt is not None:
        from runtime.vision.tracking import track_video

        src = VideoFileSource(path, start=rng.start, stop=rng.stop)
        hist = track_video(src, prompt, start_index=rng.start, interaction=interaction)
        by = {f.index: f.pose for f in hist}
        lost = sum(1 for i in rng if by.get(i) is None)
        notes.append(f"pose: prompted tracker ({lost} of {len(rng)} frames without the subject)")
        return [by.get(i) for i in rng]
    from runtime.vision.pose_mediapipe import MediaPipePose

    src = VideoFileSource(path, start=rng.start, stop=rng.stop)
    out: dict[int, Any] = {}
    with MediaPipePose() as be:
        for fr in src:
            if fr.index >= rng.stop:
                break
            out[fr.index] = be.infer(fr.image, int(round(fr.index / fps * 1e9)))
    notes.append("pose: no prompt, MediaPipe's own single-person tracker (it may switch people when several are in view)")
    return [out.get(i) for i in rng]


def _resolve_prompt(bbox: Any, mask: Any, width: int, height: int, notes: list[str]) -> Any:
    """The prompt box (pixels) from ``bbox`` ("x0,y0,x1,y1" or a BoundingBox) or, failing that, ``mask``."""
    import cv2

    from runtime.vision.pose_types import BoundingBox
    from runtime.vision.prompts import mask_to_bbox, parse_bbox

    prompt = None
    if isinstance(bbox, str):
        prompt = parse_bbox(bbox, width, height)
    elif isinstance(bbox, BoundingBox):
        prompt = bbox
    elif bbox is not None:
        raise ValueError(f"bbox: expected 'x0,y0,x1,y1' or a BoundingBox, got {type(bbox).__name__}")
    if prompt is None and mask is not None:
        arr = mask
        if isinstance(mask, (str, Path)):
            arr = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
            if arr is None:
                raise ValueError(f"mask: cannot read image {mask}")
        arr = np.asarray(arr)
        if arr.shape[:2] != (height, width):
            raise ValueError(f"mask: shape {arr.shape[:2]} does not match the video's {height}x{width}")
        prompt = mask_to_bbox(arr if arr.dtype != bool else arr.astype(np.uint8))
        notes.append(f"mask prompt -> box {prompt}")
    return prompt


def _landmarks_to_trial(name: str, t: np.ndarray, grounded: Any, params: Any, fps: float,
                        notes: list[str]) -> tuple[Any, Any, list[str]]:
    """Grounded world landmarks -> the subject's scaled model, landmark IK, filtered kinematics and the
    kinematics-only dynamics. Returns the trimmed IK result, the trial dynamics and the dynamics notes."""
    import dataclasses

    from models.body.landmark_markerset import landmark_length_factors
    from models.body.registry import load_model
    from models.body.scaling import SubjectScale, scale_model
    from models.dynamics.opensim_state import kinematics_from_opensim
    from models.filters import smooth_derivatives
    from models.kinematics.landmark_ik import solve_landmark_ik
    from models.trial_analysis import TrialKinematics, kinematic_foot_wrenches, trial_dynamics

    model, h, m, cutoff_hz = params.model, params.height_m, params.mass_kg, params.cutoff_hz
    template = load_model(model)
    seen = np.where(grounded.visibility[..., None] >= 0.5, grounded.smoothed_m, np.nan)
    factors, segs = landmark_length_factors(template.model, seen, _landmark_names())
    subject_model = scale_model(template, SubjectScale(m, h), length_by_body=factors).model
    notes.append(f"model: {model} scaled to height {h:g} m and mass {m:g} kg; thigh, shank, foot and pelvis from the "
                 f"landmarks ({', '.join(f'{k} {v:.3f} m' for k, v in segs.items())})")
    ik = solve_landmark_ik(subject_model, t, grounded.smoothed_m, grounded.visibility)
    solved = np.isfinite(ik.coordinates).all(axis=1)
    first, last = int(np.argmax(solved)), int(len(solved) - np.argmax(solved[::-1]))
    if last - first < 12:
        raise ValueError(f"video {name}: landmark IK solved only {int(solved.sum())} frames")
    sl = slice(first, last)
    coords = ik.coordinates[sl]
    sm = smooth_derivatives(coords, fps, cutoff_hz=cutoff_hz, channel_names=ik.coordinate_names)
    mk = kinematics_from_opensim(subject_model, ik.coordinate_names, sm.position, sm.velocity, sm.acceleration)

    ik_trim = dataclasses.replace(
        ik, time_s=ik.time_s[sl], coordinates=coords, qpos=ik.qpos[sl], residual_rms_m=ik.residual_rms_m[sl],
        residual_max_m=ik.residual_max_m[sl], markers_used=ik.markers_used[sl], iterations=ik.iterations[sl],
        status=ik.status[sl], marker_error_m=ik.marker_error_m[sl], solve_time_s=ik.solve_time_s[sl])
    kin = TrialKinematics(name, subject_model, ik_trim, sm, mk, list(notes), t[sl], fps)
    dyn_notes: list[str] = []
    feet = kinematic_foot_wrenches(kin, params, dyn_notes)
    trial = trial_dynamics(kin, feet, "kinematics", params, dyn_notes)

    return ik_trim, trial, dyn_notes


def analyze_video(path: str | Path, *, bbox: Any = None, mask: Any = None, describe: str | None = None,
                  out_dir: str | Path, backend: str = "mediapipe", height_m: float | None = None,
                  mass_kg: float | None = None, side: Literal["left", "right"] = "left",
                  calibration: str | Path | None = None, hfov_deg: float = DEFAULT_HFOV_DEG,
                  frames: range | tuple[int, int] | None = None, cutoff_hz: float = 6.0,
                  model: str = "myoleg") -> VideoAnalysis:
    """Analyse a video of one walking person (see the module docstring).

    ``bbox``: a :class:`~runtime.vision.pose_types.BoundingBox` or ``"x0,y0,x1,y1"`` (pixels, first analysed
    frame). ``mask``: (H, W) array or an image file (person pixels non-zero) at the first analysed frame; its
    box is the prompt when ``bbox`` is None. ``frames``: ``range`` or ``(start, stop)`` of frame indices.
    """
    import cv2

    from models.trial_analysis import AnalyzeParams, write_csvs
    from runtime.vision.calibration import guess_intrinsics, read_calibration
    from runtime.vision.world import ground_monocular, pose_arrays

    video = Path(path)
    if not video.is_file():
        raise FileNotFoundError(f"video: no such file {video}")
    if backend not in BACKENDS:
        raise ValueError(f"backend = {backend!r}: allowed {', '.join(BACKENDS)}")
    h, m, inter, notes = _subject(describe, height_m, mass_kg)
    params = AnalyzeParams(mass_kg=m, height_m=h, side=side, model=model, cutoff_hz=cutoff_hz)
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ValueError(f"video: OpenCV cannot open {video}")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    n_total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"video {video}: no frame rate in the file (got {fps!r})")
    rng = _frame_range(frames, n_total)

    prompt = _resolve_prompt(bbox, mask, width, height, notes)

    if calibration is not None:
        cam = read_calibration(calibration)[0]
        if cam.image_size != (width, height):
            notes.append(f"calibration image size {cam.image_size} differs from the video's {(width, height)}")
    else:
        cam = guess_intrinsics(width, height, hfov_deg, name=video.stem)

    results = _poses(video, rng, fps, prompt, inter, notes)
    tracked = np.array([r is not None for r in results])
    if tracked.sum() < 12:
        raise ValueError(f"video {video.name}: the subject's pose was found in only {int(tracked.sum())} of "
                         f"{len(rng)} frames; nothing to analyse")
    t = np.arange(rng.start, rng.stop) / fps
    arrays = pose_arrays(results, t)
    grounded = ground_monocular(arrays, cam, h, heading="walking", cutoff_hz=cutoff_hz)
    notes.extend(grounded.notes)

    ik_trim, trial, dyn_notes = _landmarks_to_trial(video.stem, t, grounded, params, fps, notes)
    dyn_notes.extend(plausibility_notes(trial))
    out = Path(out_dir)
    files = [write_landmarks_csv(out / "landmarks.csv", t, grounded.smoothed_m, arrays.image_xy, arrays.visibility)]
    files += write_csvs(trial, out)
    result = VideoAnalysis(video, fps, rng, grounded, ik_trim, trial, tracked, files, notes + dyn_notes)
    js = out / "video_analysis.json"
    js.write_text(json.dumps(result.summary(), indent=2, default=json_default))
    result.files.append(js)
    return result


def plausibility_notes(trial: Any) -> list[str]:
    """Notes on figures a clinician should not read as measurements: every estimate outside its physiological
    envelope (``models.confidence``: vertical GRF of each foot, KAM, KEM, activation rate with muscles), with the
    fraction of frames affected (the chain itself does not judge them), and frames without moments."""
    from models.confidence import implausible_notes

    notes = implausible_notes(trial.envelope_flags())
    bad = int(np.sum(~np.isfinite(trial.moments_nm).all(axis=1)))
    if bad:
        notes.append(f"inverse dynamics: {bad} frames without moments (NaN)")
    return notes


def json_default(o: Any) -> Any:
    """``json.dumps`` default for the analysis summaries: numpy scalars and arrays as numbers, anything else as text."""
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)

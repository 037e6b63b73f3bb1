"""The live vision front end, one frame at a time: track the prompted person, anonymise, ground in the world.

    frame (RGB) --> PromptedTracker (pose on the prompted person's ROI)  --> PoseResult | lost
              \\-> Anonymiser (faces + every head) -> AnonymizedFrame, for every frame that leaves the stage
    PoseResult --> OnlineGrounding (scale, floor and heading from a warm-up window) --> landmarks (33, 3) world
               or FittedGrounding (the same warm-up places the camera, then the fixed-lag model fit,
                  ``models.kinematics.monocular_fit.MonocularFitter``) --> the model's landmark sites (world)

World frame: right-handed, z up, origin on the floor, y along the walking direction found in the
warm-up (``runtime.vision.world.ground_monocular`` with ``heading="walking"``). Before the warm-up is
complete the output is invalid (the estimation chain gets nothing; assistance stays zero).

:class:`FittedGrounding` answers ``lag_frames`` camera frames late (the fixed-lag window, set in time:
``MonocularFitParams.lag_s`` = 67 ms, 2 frames at 30 fps, 4 at 60 fps; :func:`check_fit_lag` refuses it where
the lag + one camera frame + one estimation cycle reaches the torque loop's staleness limit); its output carries the capture time of the frame it describes, so the measured command age
includes the lag. Per frame it also gives the mean reprojection error (px) and the fraction of the
model's landmarks used, which the estimation chain's confidence takes (its ``reprojection`` part).

Used by the vision process (:mod:`runtime.vision.process`); :func:`build_front_end` is its factory.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runtime.vision.pose_types import BLAZEPOSE_LANDMARKS, BoundingBox, PoseResult

BLAZEPOSE_33_INDEX = {n: i for i, n in enumerate(BLAZEPOSE_LANDMARKS)}


@dataclass
class FrontEndOutput:
    """One frame out of a front end: world landmarks (33, 3) z up floor at 0, visibility, and stage times."""

    valid: bool
    world_m: np.ndarray
    visibility: np.ndarray
    pose_s: float = 0.0
    anonymise_s: float = 0.0
    ground_s: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)
    #: capture time (ns) and source time (s) of the frame the landmarks describe, when not the frame just
    #: processed (the fixed-lag fit answers ``lag_frames`` frames late); None: the frame just processed
    described_capture_ns: int | None = None
    described_t_s: float | None = None
    #: mean reprojection error (px) and fraction of the model's landmarks used (NaN without a model fit)
    reprojection_px: float = math.nan
    landmarks_used_frac: float = math.nan


@dataclass
class GroundedFrame:
    """One grounded frame: world landmarks (33, 3) z up, visibility (33,), the frame's source time (s) and
    capture time (ns), and the fit's quality (NaN for :class:`OnlineGrounding`)."""

    world_m: np.ndarray
    visibility: np.ndarray
    t_s: float
    capture_ns: int
    reprojection_px: float = math.nan
    landmarks_used_frac: float = math.nan
    converged: bool = True


@dataclass(frozen=True)
class Prompt:
    """Who to follow: a box (pixels) in frame ``frame``; optional description and interaction labels."""

    bbox: BoundingBox
    frame: int = 0
    describe: str | None = None
    interaction: tuple[str, ...] = ()

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Prompt":
        if "bbox" not in d:
            raise ValueError("prompt: a bbox (x0, y0, x1, y1 in pixels) is required to choose the person to follow")
        b = d["bbox"]
        if len(b) != 4:
            raise ValueError(f"prompt.bbox = {b!r}: need 4 numbers x0,y0,x1,y1 (pixels)")
        frame = int(d.get("frame", 0))
        if frame < 0:
            raise ValueError(f"prompt.frame = {frame}: must be >= 0")
        return Prompt(BoundingBox(*map(float, b)), frame, d.get("describe"), tuple(d.get("interaction", ())))


#: Low-pass of the warm-up's grounding fit (Hz; ``runtime.vision.world.ground_monocular``'s default).
WARMUP_CUTOFF_HZ = 6.0


class OnlineGrounding:
    """Monocular BlazePose -> world landmarks, causally: the first ``warmup_frames`` tracked frames fix the
    metric scale (subject height), the floor plane and the heading (``ground_monocular`` on them); after
    that every frame is placed with its own root translation (least squares on its pixels)."""

    def __init__(self, camera: Any, height_m: float, warmup_frames: int = 30) -> None:
        if warmup_frames < 8:
            raise ValueError(f"warmup_frames = {warmup_frames}: need at least 8 frames to fit a floor")
        import models.filters  # noqa: F401  (scipy.signal, ≈ 0.7-1.9 s to import: here, not on the warm-up frame)

        self.camera, self.height_m, self.warmup_frames = camera, float(height_m), int(warmup_frames)
        self._buf: list[PoseResult] = []
        self._t: list[float] = []
        self.ready = False
        self.notes: list[str] = []
        self.scale = self._R = self._cam_pos = None
        self.warmup_fit_s = math.nan       # seconds the warm-up fit (ground_monocular) took (≈ 6 ms here)

    def step(self, pose: PoseResult | None, t_s: float) -> np.ndarray | None:
        """World landmarks (33, 3) for ``pose`` (None while warming up or without a pose)."""
        from runtime.vision.world import BLAZEPOSE_TO_CAMERA, ground_monocular, pose_arrays, root_translation

        if pose is None:
            return None
        if not self.ready:
            self._buf.append(pose)
            self._t.append(t_s)
            if len(self._buf) < self.warmup_frames:
                return None
            t0 = time.perf_counter()
            # frames dropped live thin the warm-up's rate: keep the smoothing's two-pass cutoff (× 1.25) below
            # its Nyquist frequency (measured: 30 warm-up frames over 2 s, 14.7 Hz, failed at the 6 Hz default)
            t = np.asarray(self._t)
            rate = (t.size - 1) / (t[-1] - t[0]) if t[-1] > t[0] else math.inf
            cutoff = min(WARMUP_CUTOFF_HZ, 0.38 * rate)
            g = ground_monocular(pose_arrays(self._buf, t), self.camera, self.height_m, heading="walking",
                                 cutoff_hz=cutoff)
            self.warmup_fit_s = time.perf_counter() - t0
            self.scale, self._R, self._cam_pos = g.scale, g.rotation_world_from_camera, g.camera_position_m
            self.notes = [*g.notes, (f"grounding fixed after {len(self._buf)} warm-up frames "
                                     f"(fit {self.warmup_fit_s * 1e3:.0f} ms)")]
            if cutoff < WARMUP_CUTOFF_HZ:
                self.notes.append(f"warm-up frames at {rate:.1f} Hz: smoothed at {cutoff:.2f} Hz, not "
                                  f"{WARMUP_CUTOFF_HZ:g} Hz")
            self.ready = True
            self._buf = []
        W = pose.world_xyz @ BLAZEPOSE_TO_CAMERA.T
        T = root_translation(W[None], pose.image_xy[None], pose.visibility[None], self.camera, self.scale)[0]
        if not np.isfinite(T).all():
            return None
        cam = self.scale * W + T
        return cam @ self._R.T + self._cam_pos

    @property
    def lag_frames(self) -> int:
        """Frames between a frame's arrival and its landmarks (0: every frame is placed at once)."""
        return 0

    def step_frame(self, pose: PoseResult | None, t_s: float, capture_ns: int) -> GroundedFrame | None:
        """:meth:`step` as a :class:`GroundedFrame` of this very frame (None without landmarks)."""
        world = self.step(pose, t_s)
        if world is None or pose is None:
            return None
        return GroundedFrame(world, pose.visibility, t_s, capture_ns)


def check_fit_lag(fps: float, stale_after_s: float, params: Any = None, loop_rate_hz: float = 60.0) -> float:
    """The fixed-lag fit's lag (s) at a camera of ``fps`` frames per second (``params.lag_s`` in whole frames,
    :meth:`~models.kinematics.monocular_params.MonocularFitParams.lag_frames_at`); ValueError when the oldest
    command it leads to reaches the torque loop's staleness limit ``stale_after_s`` (s).

    The torque loop measures a command's age from the capture of the frame it describes, and holds it until the
    next one: the age peaks at the lag + one camera frame (``1 / fps``, the hold) + one estimation cycle
    (``1 / loop_rate_hz``, ``estimation.rate_hz``: the new frame waits for the loop's next cycle), before any
    compute.  Measured (``exo demo`` on the 30 fps sports2d clip with the fit on, 67 ms = 2 frames of lag: 67 + 33 +
    17 = 117 ms predicted): capture -> first bus write p50 77.9 / max 95.3 ms, and the loop faulted STALE at 101.8
    ms after 2.5 s; with 233 ms of lag it faulted at once.  A lag alone under the limit is not enough."""
    from models.kinematics.monocular_params import MIN_LAG_FRAMES, MonocularFitParams

    p = params if params is not None else MonocularFitParams()
    for name, v in (("camera frame rate", fps), ("estimation.rate_hz", loop_rate_hz)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} {v!r}: the fit's lag needs a positive frame rate")
    frames = p.lag_frames_at(fps)
    lag_s = frames / fps
    worst_s = lag_s + 1.0 / fps + 1.0 / loop_rate_hz
    if worst_s >= stale_after_s - 1e-9:     # reaching it counts (6 / 60 s is 0.0999... in floating point)
        raise ValueError(f"estimation.monocular_fit: the fixed-lag fit answers {frames} frames late "
                         f"(MonocularFitParams.lag_s = {p.lag_s * 1e3:.0f} ms, at least {MIN_LAG_FRAMES} frames), "
                         f"{lag_s * 1e3:.0f} ms at {fps:g} fps; held for one camera frame ({1e3 / fps:.0f} ms) "
                         f"after waiting for an estimation cycle at {loop_rate_hz:g} Hz ({1e3 / loop_rate_hz:.0f} ms), "
                         f"a command gets {worst_s * 1e3:.0f} ms old, not below "
                         f"torque_loop.stale_after_s = {stale_after_s:g} s (the loop would fault STALE); turn "
                         "estimation.monocular_fit off, use a faster camera or a shorter MonocularFitParams.lag_s")
    return lag_s


#: Subject mass for the live fit's model, kg: the model's segment lengths (what the fit uses) follow the height
#: alone (``models.body.scaling.SubjectScale``); the mass only scales inertia, which the fit does not use.
FIT_MODEL_MASS_KG = 70.0


class FittedGrounding:
    """The warm-up of :class:`OnlineGrounding` places the camera in the floor frame (scale, floor, heading from
    ``ground_monocular``); from then on each frame's 2-D landmarks (pixels, visibility as score) go through the
    fixed-lag model fit (:class:`models.kinematics.monocular_fit.MonocularFitter`) on MyoLeg scaled to
    ``height_m``. :meth:`step_frame` returns the frame that became final (``lag_frames`` frames old): the
    model's landmark sites in the world (other landmarks NaN, visibility 0) with the frame's own times and the
    fit's reprojection error and fraction of landmarks used. The last ``lag_frames`` warm-up frames seed the
    window; frames without a pose are skipped (the fit's temporal prior spans the gap). BlazePose's world
    landmarks enter as the weak shape prior, as in the offline check (measured on the pose2sim demo's cam01 at
    67 ms: 11.5 deg mean joint RMSE with it, 13.9 without; the offline smoother 11.16).

    ``camera_in_floor_frame``: the camera's extrinsics already place it in the floor frame (a calibration with
    world z up, floor z = 0): no warm-up, the fit starts with the first frame.  ``fps``: the camera's frame rate,
    which sets the window's length in frames (``params.lag_s`` in whole frames)."""

    def __init__(self, camera: Any, height_m: float, warmup_frames: int = 30, model: str = "myoleg",
                 params: Any = None, camera_in_floor_frame: bool = False, *, fps: float) -> None:
        from models.body.registry import load_model
        from models.body.scaling import SubjectScale, scale_model
        from models.kinematics.monocular_fit import MonocularFitParams
        from models.kinematics.monocular_model import LandmarkModel

        self._online = OnlineGrounding(camera, height_m, warmup_frames)
        self.camera, self.height_m, self.warmup_frames = camera, float(height_m), int(warmup_frames)
        self.params = params if params is not None else MonocularFitParams()
        self.fps = float(fps)
        self._lag = self.params.lag_frames_at(fps)
        self.lm = LandmarkModel(scale_model(load_model(model), SubjectScale(FIT_MODEL_MASS_KG, height_m)).model)
        self._sel = np.array([BLAZEPOSE_33_INDEX[n] for n in self.lm.landmark_names])
        self.fitter: Any = None
        self._pending: deque[tuple[float, int, np.ndarray]] = deque()   # (t_s, capture_ns, visibility) in the window
        self._warm: list[tuple[PoseResult, float, int]] = []
        self.notes: list[str] = []
        self.step_s: list[float] = []
        if camera_in_floor_frame:
            self._start(camera.rotation_wc, camera.center_world_m, "camera placed by its calibration (floor frame)")

    @property
    def ready(self) -> bool:
        return self.fitter is not None

    @property
    def lag_frames(self) -> int:
        """Frames between a frame's arrival and its final estimate (the fit's fixed lag at ``fps``)."""
        return self._lag

    def _start(self, R_wc: np.ndarray, c: np.ndarray, how: str) -> None:
        """Start the fitter with the camera at ``c`` (world, m) with axes ``R_wc`` (world <- camera)."""
        from models.kinematics.monocular_fit import MonocularFitter, PinholeCamera

        R_wc, c = np.asarray(R_wc, dtype=float), np.asarray(c, dtype=float)
        cam = PinholeCamera(self.camera.K, R_wc.T, -R_wc.T @ c)
        self.fitter = MonocularFitter(self.lm, cam, self.params, fps=self.fps)
        self.notes = [how, (f"model fit: fixed lag {self.lag_frames} frames ({self.lag_frames / self.fps * 1e3:.0f} ms "
                            f"at {self.fps:g} fps), {self.params.live_iterations} "
                            f"LM iterations per frame, MyoLeg scaled to {self.height_m:g} m")]

    def _prior(self, pose: PoseResult) -> np.ndarray | None:
        """BlazePose's world landmarks (33, 3) in metres and world axes, the fit's weak shape prior
        (``MonocularFitParams.prior_sigma_m``), as the offline check uses them: scaled by the warm-up's metric scale
        (or, with the camera placed by its calibration, this frame's leg length against 0.491 x height) and turned
        by the camera's rotation; None when the pose has no usable world landmarks."""
        from runtime.vision.world import metric_scale

        W = np.asarray(pose.world_xyz, dtype=float)
        scale = self._online.scale
        if scale is None:
            try:
                scale, _ = metric_scale(W[None], self.height_m)
            except (ValueError, ZeroDivisionError):
                return None
        if not (math.isfinite(scale) and scale > 0):
            return None
        return (scale * W) @ self.fitter.camera.R_cw

    def _fit(self, pose: PoseResult, t_s: float, capture_ns: int) -> GroundedFrame | None:
        xy = self.camera.undistort_pixels(pose.image_xy) if np.any(self.camera.distortion != 0) else pose.image_xy
        t0 = time.perf_counter()
        out = self.fitter.step(t_s, xy, np.clip(pose.visibility, 0.0, 1.0), self._prior(pose))
        self.step_s.append(time.perf_counter() - t0)
        self._pending.append((t_s, capture_ns, np.asarray(pose.visibility, dtype=float)))
        return self._grounded(out) if out is not None else None

    def _grounded(self, fr: Any) -> GroundedFrame:
        while self._pending and self._pending[0][0] < fr.time_s:
            self._pending.popleft()     # frames the fitter dropped (nothing to start from)
        t_s, cap, vis = self._pending.popleft()
        world = np.full((33, 3), np.nan)
        world[self._sel] = self.lm.sites(fr.coordinates)
        v = np.zeros(33)
        v[self._sel] = vis[self._sel]
        used = np.isfinite(fr.reprojection_error_px)
        rep = float(np.mean(fr.reprojection_error_px[used])) if used.any() else math.nan
        return GroundedFrame(world, v, t_s, cap, rep, float(fr.landmarks_used_fraction), bool(fr.converged))

    def step_frame(self, pose: PoseResult | None, t_s: float, capture_ns: int) -> GroundedFrame | None:
        """The frame that became final with this one (None while warming up, filling the window, or without a pose)."""
        if pose is None:
            return None
        if self.fitter is None:
            self._warm.append((pose, t_s, capture_ns))
            self._online.step(pose, t_s)
            if not self._online.ready:
                return None
            g = self._online
            self._start(g._R, g._cam_pos, "; ".join(g.notes))
            seed, self._warm = self._warm[-(self.lag_frames + 1):-1], []
            for p, t, c in seed:
                self._fit(p, t, c)
        return self._fit(pose, t_s, capture_ns)


class LiveFrontEnd:
    """Tracker + anonymiser + online grounding; ``process(frame, capture_ns)`` per frame.

    ``live_anonymiser`` (:class:`runtime.vision.anonymise_live.LiveAnonymiser`, the live vision process): every
    frame is blurred inline on its bounded boxes after its landmarks are out (``on_landmarks``), the detectors
    run in its worker, and the frames that leave (``preview``) are written by the worker after its full pass.
    Without it (landmarks computed ahead), only the frames that leave are anonymised, inline, with every
    detector."""

    def __init__(self, tracker: Any, anonymiser: Any, grounding: OnlineGrounding | FittedGrounding, prompt: Prompt,
                 preview: Any = None, backend_name: str = "", live_anonymiser: Any = None) -> None:
        self.tracker, self.anonymiser, self.grounding, self.prompt = tracker, anonymiser, grounding, prompt
        self.live_anonymiser = live_anonymiser
        self.full_anonymiser = None
        if live_anonymiser is None:
            from runtime.vision.anonymise import Anonymiser

            self.full_anonymiser = Anonymiser()      # with its own person detector (frames before the prompt)
        self.preview = preview
        self.started = False
        self.stage = "idle"          # what process() is doing now (read by the frame grabber to explain a drop)
        self.counts = {"frames": 0, "before_prompt": 0, "tracked": 0, "lost": 0, "grounded": 0, "detector_runs": 0}
        self.description = (f"vision: prompted-person tracking ({backend_name}) from frame {prompt.frame} "
                            f"box {tuple(round(v) for v in (prompt.bbox.x0, prompt.bbox.y0, prompt.bbox.x1, prompt.bbox.y1))}"
                            f" -> anonymisation ("
                            + ("bounded: head of the current landmarks every frame, face detectors "
                               f"every {live_anonymiser.detect_every} frames, every detector on the frames that leave"
                               if live_anonymiser is not None else "faces + heads") +
                            f") -> monocular world grounding (warm-up {grounding.warmup_frames} frames)"
                            + (f" -> fixed-lag model fit (lag {grounding.lag_frames} frames)"
                               if isinstance(grounding, FittedGrounding) else ""))

    def _track(self, frame: Any, capture_ns: int) -> Any:
        """The tracker's frame (None before the prompt frame)."""
        if frame.index < self.prompt.frame:
            self.counts["before_prompt"] += 1
            return None
        if not self.started:
            tf = self.tracker.start(frame.image, frame.index, capture_ns, self.prompt.bbox)
            self.started = True
        else:
            tf = self.tracker.update(frame.image, frame.index, capture_ns)
        self.counts["tracked" if tf.pose is not None else "lost"] += 1
        self.counts["detector_runs"] += int(tf.detector_ran)
        return tf

    def _anonymise(self, frame: Any, capture_ns: int, tf: Any) -> None:
        pose = tf.pose if tf is not None else None
        poses = [pose] if pose is not None else []
        heads = tf.heads if tf is not None else []
        people = tf.others if tf is not None else []
        leaves = self.preview is not None and self.preview.wants(self.counts["frames"] - 1)
        if self.live_anonymiser is not None:
            self.live_anonymiser.anonymize(frame.image, capture_ns, poses, heads=heads, people=people, leaves=leaves)
        elif leaves:
            # Anonymised before it leaves this process (the only way out for an image); frames that are
            # neither stored, shown nor sent are not anonymised (nothing of them leaves the stage).
            # the tracker's own detections (every head and body it saw) spare a second detector pass; before the
            # prompt frame there are none, so the anonymiser's own detector runs
            if tf is not None:
                self.preview.write(self.anonymiser.anonymize(frame.image, capture_ns, poses, heads=heads, people=people))
            else:
                self.preview.write(self.full_anonymiser.anonymize(frame.image, capture_ns))

    def process(self, frame: Any, capture_ns: int, on_landmarks: Any = None) -> FrontEndOutput:
        """Track, ground, anonymise one frame. ``on_landmarks(out)`` is called as soon as the landmarks are
        known, before the anonymisation (the live process publishes them there); ``out.anonymise_s`` is set
        after."""
        self.counts["frames"] += 1
        t0 = time.perf_counter()
        self.stage = "pose"
        tf = self._track(frame, capture_ns)
        pose = tf.pose if tf is not None else None
        t1 = time.perf_counter()
        self.stage = "ground"
        g = self.grounding.step_frame(pose, frame.t_capture_ns * 1e-9, capture_ns)
        t2 = time.perf_counter()
        if g is None:
            out = FrontEndOutput(False, np.full((33, 3), np.nan), np.zeros(33), t1 - t0, 0.0, t2 - t1)
        else:
            self.counts["grounded"] += 1
            lagged = g.capture_ns != capture_ns
            out = FrontEndOutput(True, g.world_m, g.visibility, t1 - t0, 0.0, t2 - t1,
                                 described_capture_ns=g.capture_ns if lagged else None,
                                 described_t_s=g.t_s if lagged else None, reprojection_px=g.reprojection_px,
                                 landmarks_used_frac=g.landmarks_used_frac)
        out.extras["detector_ran"] = bool(tf.detector_ran) if tf is not None else False
        out.extras["tracked"] = pose is not None
        out.extras["posed"] = tf is not None          # the tracker ran (from the prompt frame on)
        if on_landmarks is not None:
            self.stage = "publish"
            on_landmarks(out)
        self.stage = "anonymise"
        self._anonymise(frame, capture_ns, tf)
        out.anonymise_s = time.perf_counter() - t2
        self.stage = "idle"
        return out

    def close(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.live_anonymiser is not None:
            out["anonymisation"] = self.live_anonymiser.close()
            regions = out["anonymisation"]["regions"]
        else:
            self.full_anonymiser.close()
            regions = dict(self.anonymiser.regions_by_source)
            for k, v in self.full_anonymiser.regions_by_source.items():
                regions[k] = regions.get(k, 0) + v
        if self.preview is not None:
            self.preview.close()
        self.anonymiser.close()
        out.update({**self.counts, "grounding": self.grounding.notes, "anonymised_regions": regions,
                    "grounding_lag_frames": self.grounding.lag_frames})
        if isinstance(self.grounding, FittedGrounding) and self.grounding.step_s:
            ms = np.asarray(self.grounding.step_s) * 1e3
            out["model_fit_ms_per_frame"] = {"median": float(np.median(ms)), "p95": float(np.percentile(ms, 95)),
                                             "max": float(ms.max()), "frames": int(ms.size)}
        return out


class SnapshotWriter:
    """Every ``every``-th anonymised frame as a PNG in ``folder`` (for the run report); only
    :class:`runtime.core.privacy.AnonymizedFrame` objects are accepted (``runtime.report.image_sinks``)."""

    def __init__(self, folder: str, every: int = 30) -> None:
        from pathlib import Path

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.every, self.n, self.written = int(every), 0, 0

    def wants(self, n: int) -> bool:
        """Whether the ``n``-th processed frame is written."""
        return n % self.every == 0

    def write(self, frame: Any) -> None:
        from runtime.report.image_sinks import write_report_image

        write_report_image(frame, self.folder / f"frame_{self.written:05d}.png")
        self.written += 1

    def close(self) -> None:
        pass


#: Live: the tracker's search after a lost track spends at most this many detector views per frame (cycling over
#: the whole frame and its tiles), so no frame holds the whole tiled search (60-125 ms here, several camera periods)
LIVE_SEARCH_VIEWS_PER_FRAME = 1


def build_front_end(spec: Any) -> LiveFrontEnd:
    """The factory the vision process calls with its :class:`runtime.vision.process.VisionSpec`."""
    from runtime.vision.anonymise import Anonymiser
    from runtime.vision.calibration import guess_intrinsics
    from runtime.vision.frame_sources import open_source
    from runtime.vision.prompts import parse_interactions
    from runtime.vision.tracking import PromptedTracker, tracker_backend

    prompt = Prompt.from_dict(spec.prompt)
    src = open_source(spec.source)
    width, height, fps = getattr(src, "width", None), getattr(src, "height", None), getattr(src, "fps", None)
    src.close()
    if not width or not height:
        raise ValueError(f"source {spec.source!r}: image size unknown; cannot set up the camera model")
    camera = guess_intrinsics(width, height)
    pose, detector, settings = tracker_backend(spec.backend)   # ONNX when built, else mediapipe (reason printed)
    interaction = parse_interactions(", ".join(prompt.interaction)) if prompt.interaction else None
    bounded = getattr(spec, "anonymise", "full") == "bounded"
    if bounded and settings.detector == "when_needed":      # live: bounded detector cost per frame
        from dataclasses import replace

        settings = replace(settings, roi_search=True, search_views_per_frame=LIVE_SEARCH_VIEWS_PER_FRAME)
    tracker = PromptedTracker(pose, detector, settings, interaction=interaction)
    preview = SnapshotWriter(spec.preview_path) if spec.preview_path else None
    grounding: OnlineGrounding | FittedGrounding = (
        FittedGrounding(camera, spec.subject_height_m, fps=_fit_fps(spec.source, fps)) if spec.monocular_fit
        else OnlineGrounding(camera, spec.subject_height_m))
    live = _live_anonymiser(pose, preview, width, height) if bounded else None
    if bounded:
        _warm_up_pose(pose, width, height)
    # a tracker that skips its detector while tracking gives no bystander heads: the anonymiser then finds them itself
    return LiveFrontEnd(tracker, Anonymiser(use_person_detector=settings.detector != "every_frame"), grounding, prompt, preview,
                        backend_name=pose.name, live_anonymiser=live)


def _fit_fps(source: Any, fps: Any) -> float:
    """The source's frame rate for the fit's window (frames/s); ValueError naming the source when it has none."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"source {source!r}: frame rate {fps!r} unknown; the monocular fit's window "
                         "(MonocularFitParams.lag_s) needs the camera's frame rate")
    return float(fps)


def _live_anonymiser(pose: Any, preview: Any, width: int, height: int) -> Any:
    """The live process's :class:`runtime.vision.anonymise_live.LiveAnonymiser`: the face detectors loaded now (not
    on a frame); the person detector and bystander pose of the frames that leave run on the tracker's ONNX sessions (``run`` is thread-safe) through a tracker object of their
    own (the tracker's ROI state and detector count are never touched; a second pair of sessions measurably slowed
    the tracker here), or MediaPipe's when the tracker runs on MediaPipe."""
    from runtime.vision.anonymise import Anonymiser
    from runtime.vision.anonymise_live import LiveAnonymiser

    kw: dict[str, Any] = {}
    if hasattr(pose, "detector_runner"):
        from runtime.vision.pose_onnx import BlazePoseTracker, OnnxPersonDetector

        helper = BlazePoseTracker(pose.detector_runner, pose.landmark_runner, f"{pose.name} (anonymiser)",
                                  pose.min_detection_confidence, pose.min_tracking_confidence)
        kw = {"person_detector": OnnxPersonDetector(helper), "follow_pose": helper}
    faces = Anonymiser(use_person_detector=False, follow_people=False, hold_frames=1)
    faces._face_boxes(np.zeros((height, width, 3), np.uint8))   # load the graphs now, at the frame's size
    return LiveAnonymiser(Anonymiser(**kw), sink=preview.write if preview is not None else None, faces=faces)


def warm_grounding_kernels(rate_hz: float = 30.0) -> float:
    """Load the compiled (numba) filter kernels of the grounding warm-up fit before the first frame; returns the
    seconds it took. Measured live: the first call of ``runtime.vision.world.smooth_offline`` (its filtfilt kernel
    loading from numba's cache) took 324 ms inline on the warm-up frame, dropping 11 frames and latching STALE."""
    from runtime.vision.world import smooth_offline

    t0 = time.perf_counter()
    x = np.sin(np.linspace(0.0, 2.0, 24))[:, None, None] * np.ones((1, 4, 3))     # (N, K, 3), as the warm-up's
    y = smooth_offline(x, rate_hz, cutoff_hz=min(6.0, 0.38 * rate_hz))
    if not np.isfinite(y).all():
        raise RuntimeError("grounding kernel warm-up: non-finite output on a finite input")
    return time.perf_counter() - t0


#: warm-up passes of the pose models before the clock starts: after a single pass the prompt frame still took
#: 68-98 ms (the detector and landmark runs each 2-3x their steady cost), after three 30 ms (sports2d clip, cpu1)
WARM_UP_PASSES = 3


def _warm_up_pose(pose: Any, width: int, height: int, passes: int = WARM_UP_PASSES) -> None:
    """``passes`` detector and landmark runs on a blank frame: ONNX Runtime's first runs allocate its arena and
    are slower than the steady state."""
    if not hasattr(pose, "landmarks"):
        return
    from runtime.vision.pose_anchors import Roi

    runs = pose.detector_runs
    blank = np.zeros((height, width, 3), np.uint8)
    for _ in range(passes):
        pose.detect(blank)
        pose.detect(blank, Roi(width / 2.0, height / 2.0, 0.5 * min(width, height), 0.0))
        pose.landmarks(blank, Roi(width / 2.0, height / 2.0, float(min(width, height)), 0.0))
    pose.reset()
    pose.detector_runs = runs           # the warm-up is not a detector run of the tracker


@dataclass
class LandmarkTrack:
    """The front end's output for every frame of a source, computed ahead (``precompute_landmarks``).

    ``t_s`` (N,) the source's timeline: row k is what the front end gave when frame k arrived; ``world_m`` (N, 33,
    3) z up (NaN where invalid); ``visibility`` (N, 33); ``valid`` (N,); ``stage_s`` per-frame seconds of pose,
    anonymisation, grounding; ``summary``. ``described_t_s`` (N,) the time of the frame row k's landmarks describe
    (= ``t_s`` without a lag; ``lag_frames`` frames earlier with the fixed-lag fit); ``reprojection_px`` (N,) and
    ``landmarks_used_frac`` (N,) the fit's quality (NaN without a model fit).
    """

    source: str
    t_s: np.ndarray
    world_m: np.ndarray
    visibility: np.ndarray
    valid: np.ndarray
    stage_s: dict[str, np.ndarray]
    summary: dict[str, Any]
    described_t_s: np.ndarray | None = None
    reprojection_px: np.ndarray | None = None
    landmarks_used_frac: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = np.asarray(self.t_s).shape[0]
        if self.described_t_s is None:
            self.described_t_s = np.asarray(self.t_s, dtype=float).copy()
        for k in ("reprojection_px", "landmarks_used_frac"):
            if getattr(self, k) is None:
                setattr(self, k, np.full(n, np.nan))
        for k in ("described_t_s", "reprojection_px", "landmarks_used_frac"):
            if np.asarray(getattr(self, k)).shape != (n,):
                raise ValueError(f"LandmarkTrack.{k}: expected shape ({n},), got {np.asarray(getattr(self, k)).shape}")

    def save(self, path: str) -> None:
        import json

        np.savez_compressed(path, t_s=self.t_s, world_m=self.world_m, visibility=self.visibility, valid=self.valid,
                            described_t_s=self.described_t_s, reprojection_px=self.reprojection_px,
                            landmarks_used_frac=self.landmarks_used_frac,
                            **{f"stage_{k}": v for k, v in self.stage_s.items()},
                            meta=np.array(json.dumps({"source": self.source, "summary": self.summary})))

    @staticmethod
    def load(path: str) -> "LandmarkTrack":
        import json

        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            stages = {k[len("stage_"):]: z[k] for k in z.files if k.startswith("stage_")}
            extra = {k: z[k] for k in ("described_t_s", "reprojection_px", "landmarks_used_frac") if k in z.files}
            return LandmarkTrack(meta["source"], z["t_s"], z["world_m"], z["visibility"], z["valid"], stages,
                                 meta["summary"], **extra)


def precompute_landmarks(spec: Any, progress: Any = None) -> LandmarkTrack:
    """Run the live front end (same code, same causal grounding) over every frame of ``spec.source``, unpaced."""
    from runtime.vision.frame_sources import open_source

    front = build_front_end(spec)
    src = open_source(spec.source)
    rows: list[tuple[float, Any]] = []
    n_total = getattr(src, "frame_count", 0) or 0
    try:
        for frame in src:
            out = front.process(frame, frame.t_capture_ns)
            rows.append((frame.t_capture_ns * 1e-9, out))
            if progress is not None and (len(rows) % 10 == 0):
                progress(len(rows), n_total)
            if spec.max_frames is not None and len(rows) >= spec.max_frames:
                break
    finally:
        src.close()
        summary = front.close()
    n = len(rows)
    if n == 0:
        raise ValueError(f"source {spec.source!r}: no frames")
    stage = {k: np.array([getattr(o, f"{k}_s") for _, o in rows]) for k in ("pose", "anonymise", "ground")}
    tracked = stage["pose"][np.array([o.valid for _, o in rows])] if any(o.valid for _, o in rows) else stage["pose"]
    summary["pose_ms_per_frame"] = {"median": float(np.median(tracked) * 1e3), "p99": float(np.percentile(tracked, 99) * 1e3)}
    t = np.array([t for t, _ in rows])
    described = np.array([o.described_t_s if o.described_t_s is not None else tk for tk, o in rows])
    return LandmarkTrack(str(spec.source), t, np.stack([o.world_m for _, o in rows]),
                         np.stack([o.visibility for _, o in rows]), np.array([o.valid for _, o in rows]), stage, summary,
                         described_t_s=described, reprojection_px=np.array([o.reprojection_px for _, o in rows]),
                         landmarks_used_frac=np.array([o.landmarks_used_frac for _, o in rows]))

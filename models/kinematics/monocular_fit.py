"""Model-based monocular kinematics: the subject's scaled model fitted to one camera's 2-D keypoints.

Why: monocular depth is the dominant error of lifting BlazePose's 3-D landmarks (``runtime.vision.world``:
12.7 deg with BlazePose's depth, 5.8 deg with the true one along the same rays).  Here depth is not read from
a detector: the scaled model's segment lengths fix the body's size, so its distance from the camera follows
from its image size, and the floor (a stance foot's lowest heel/toe keypoint ``contact_height_m`` above z = 0,
not sliding) fixes its height and anchors it along the walking line.

Input: undistorted pixels (the caller applies ``runtime.vision.calibration``'s ``undistort_pixels``) of the
33 BlazePose landmarks ``xy_px`` (N, 33, 2), px, origin top-left, y down, NaN where not detected; ``score``
(N, 33) 0-1; ``time_s`` (N,) strictly increasing (kept unchanged in the output); an ideal pinhole
:class:`~models.kinematics.monocular_camera.PinholeCamera` (world z up, floor z = 0).  Only the landmarks of
:func:`models.body.landmark_markerset.blazepose_markerset` (hips, knees, ankles, heels, toe tips, shoulders)
are on the model; the rest are ignored.

Unknowns and output: the marker chain's coordinates (:attr:`InverseKinematics.coordinate_names`: OpenSim
pelvis coordinates, then hip flexion/adduction/rotation, knee and ankle angles of both legs; rad and m) and the
full ``qpos``.  The cost, every weight and every threshold: :class:`MonocularFitParams`; the residuals and the
solver: :mod:`models.kinematics.monocular_problem`; stance: :mod:`models.kinematics.monocular_contact`.

Offline (:func:`fit_monocular`): a fixed-interval smoother over the whole trial, initialised by a per-frame fit
(window of one frame, the previous two fixed, warm-started by constant-velocity extrapolation); the first frame
(and any frame whose warm start ends above ``reinit_error_px``) is cold-started: the pelvis placed on the ray of
the hip keypoints at the depth ``f / s`` (``s`` px per m: the 2-D leg length over the model's), upright, at
``cold_headings`` headings, the best fit kept.  Live (:class:`MonocularFitter`): fixed-lag, the lag set in time
(``MonocularFitParams.lag_s``, 67 ms) and turned into frames at the camera's rate (``lag_frames_at(fps)``: 2 frames
at 30 fps, 4 at 60 fps); a window of lag + 1 frames re-solved with ``live_iterations`` LM iterations per new frame,
the previous two final frames fixed; each frame is final (returned) when it leaves the window, lag frames after it
arrived.  Live, each frame's left/right labels are repaired on arrival against the previous frame
(:class:`~models.kinematics.monocular_swaps.LeftRightRepair`, causal), offline over the whole trial.

Measured (2 px noise, side-on 1920x1080 camera, f = 1400 px, 7 m):

* model-generated walk (:mod:`models.kinematics.monocular_synthetic`, 3 s at 60 fps, tests/test_monocular_fit.py):
  sagittal RMSE 1.3-1.7 deg per coordinate (mean 1.5), root 2.1 cm mean; live, 67 ms lag: 1.4-1.7 deg (mean
  1.56), root 5.8 cm at 60 fps; at 30 fps (offline 1.82 deg) 1.4-2.2 deg (mean 1.90), root 6.8 cm.
* shared lab trials rendered by ``models.io.synthetic_keypoints`` against the project's marker IK of the same
  trial on the same scaled model (``exo monocular-check --synthetic``; mean sagittal RMSE / root RMSE, with the
  segment-length corrections of :mod:`models.kinematics.monocular_shape`; before them in brackets): PS ss1 5.78
  deg / 7.4 cm (5.64 / 6.9), ss3 6.48 / 3.3 (6.31 / 5.0), ss8 5.68 / 4.2 (5.62 / 4.9); DM og1 3.85 / 7.4 (4.38 /
  28.7), og3 3.49 / 6.2 (4.32 / 26.4), og4 3.30 / 7.4 (3.83 / 26.8), og5 3.72 / 8.2 (4.18 / 27.2), og6 3.48 / 7.3
  (4.04 / 27.4).  The DM model is scaled by height only (DM_markers.xml carries no bodies): the fit finds its
  thighs 7-8 % and its trunk 12-13 % too long (the rendered joint centres say 6-9 % and 13-14 %), which had put the
  body 4 % (27 cm) too far away.  What is left is mostly where the keypoints are defined, not the fit: landmark IK
  of the noise-free 3-D truth on the same model (the "definition floor" of the check) is already 5.0-5.4 deg off
  on PS and 2.0-2.4 deg on DM, because (1) hip flexion is relative to the pelvis, whose tilt only the shoulders show
  here, through MyoLeg's rigid trunk: PS stands with its trunk 11 deg further back on its pelvis than DM (both
  hip flexions +11 deg, pelvis tilt -11 deg, in the floor as in the fit; a trunk joint would need a tilt prior that
  two subjects 9 deg apart cannot give); (2) DM's right knee centre uses a mirrored medial epicondyle (its
  marker is misplaced in DM_markers.xml): the 3-point knee angle of the truth differs from the model's by 3 deg
  on that side only; (3) the lab heel and toe markers stand 6 and 5 cm above the floor in stance (median over the
  detected stance frames of all 8 trials; ``contact_height_m`` 0.05), not at the model's heel and toe-tip sites,
  and their line is 2-5 deg off the model's sole.  Depth follows the contact height: 1 cm of it moves the body by
  7-8 cm along the camera axis at this camera (7 m, camera at hip height), which bounds the root error.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.body.blazepose import BLAZEPOSE_33
from models.kinematics.monocular_camera import PinholeCamera
from models.kinematics.monocular_contact import FEET, FOOT_POINTS, detect_stance, image_scale_px_per_m
from models.kinematics.monocular_model import LandmarkModel
from models.kinematics.monocular_params import MonocularFitParams
from models.kinematics.monocular_problem import LMResult, Window, WindowData, solve_lm, solve_scipy
from models.kinematics.monocular_shape import SHAPE_NAMES
from models.kinematics.monocular_swaps import MIRROR_INDEX, LeftRightRepair, repair_left_right
from models.kinematics.opensim_pelvis import T_OSIM_TO_ZUP

__all__ = ["MonocularFit", "MonocularFitParams", "LiveFrame", "MonocularFitter", "PinholeCamera",
           "LandmarkModel", "fit_monocular", "fit_keypoints"]

SOLVERS = ("lm", "scipy")


@dataclass
class MonocularFit:
    """Result of :func:`fit_monocular` (N frames).

    ``time_s`` (N,) as given; ``coordinate_names`` / ``coordinates`` (N, n) rad and m (the marker chain's);
    ``qpos`` (N, nq); ``reprojection_error_px`` (N, 33) px, NaN where the landmark was not used;
    ``landmarks_used_fraction`` (N,) used / modelled landmarks; ``contact`` (N, 2) stance per foot
    (``foot_names``), ``contact_point`` (N, 2) 0 heel / 1 foot_index / -1; ``converged`` (N,) the solver
    converged and the frame's median reprojection error is within ``converged_error_px`` with enough landmarks;
    ``iterations`` (N,) LM iterations spent on the frame (its initialisation plus the smoother's);
    ``solve_time_s`` wall time of the whole fit; ``shape`` the segment-length corrections (relative, 0 = the
    scaled model; :mod:`models.kinematics.monocular_shape`) the sites were fitted with (``qpos`` is the
    unstretched model's).
    """

    time_s: np.ndarray
    coordinate_names: tuple[str, ...]
    coordinates: np.ndarray
    qpos: np.ndarray
    reprojection_error_px: np.ndarray
    landmarks_used_fraction: np.ndarray
    contact: np.ndarray
    contact_point: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    solve_time_s: float = 0.0
    landmark_names: tuple[str, ...] = BLAZEPOSE_33
    foot_names: tuple[str, ...] = FEET
    notes: tuple[str, ...] = field(default_factory=tuple)
    shape: dict[str, float] = field(default_factory=dict)

    def coordinate(self, name: str) -> np.ndarray:
        """(N,) one coordinate by name."""
        if name not in self.coordinate_names:
            raise KeyError(f"no coordinate {name!r}; coordinates: {list(self.coordinate_names)}")
        return self.coordinates[:, self.coordinate_names.index(name)]


@dataclass
class LiveFrame:
    """One final frame of :class:`MonocularFitter` (fields as one row of :class:`MonocularFit`)."""

    time_s: float
    coordinates: np.ndarray
    qpos: np.ndarray
    reprojection_error_px: np.ndarray
    landmarks_used_fraction: float
    contact: np.ndarray
    contact_point: np.ndarray
    converged: bool
    iterations: int
    swapped: bool = False            # its left/right labels were mirrored back on arrival (LeftRightRepair)


# --------------------------------------------------------------------------------------------------
# input checks and per-frame data
# --------------------------------------------------------------------------------------------------


def _check_inputs(time_s: Any, xy_px: Any, score: Any, world: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    t = np.asarray(time_s, dtype=float).reshape(-1)
    xy = np.asarray(xy_px, dtype=float)
    sc = np.asarray(score, dtype=float)
    N = t.size
    if N == 0:
        raise ValueError("time_s is empty: nothing to fit")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"time_s must be finite, got a non-finite value at index {int(np.flatnonzero(~np.isfinite(t))[0])}")
    if N >= 2 and not np.all(np.diff(t) > 0):
        k = int(np.flatnonzero(np.diff(t) <= 0)[0])
        raise ValueError(f"time_s must be strictly increasing; time_s[{k + 1}]={t[k + 1]!r} <= time_s[{k}]={t[k]!r}")
    if xy.shape != (N, 33, 2):
        raise ValueError(f"xy_px must have shape ({N}, 33, 2) (frames, BlazePose landmarks, px), got {xy.shape}")
    if sc.shape != (N, 33):
        raise ValueError(f"score must have shape ({N}, 33), got {sc.shape}")
    if np.any(sc[np.isfinite(sc)] < 0) or np.any(sc[np.isfinite(sc)] > 1):
        raise ValueError("score must lie in 0..1")
    w = None
    if world is not None:
        w = np.asarray(world, dtype=float)
        if w.shape != (N, 33, 3):
            raise ValueError(f"world_landmarks_m must have shape ({N}, 33, 3) (world, z up, m), got {w.shape}")
    return t, xy, np.nan_to_num(sc, nan=0.0), w


class _Frames:
    """The model-landmark view of the keypoints: uv (N, M, 2), weight (N, M), contact (N, 2), prior."""

    def __init__(self, lm: LandmarkModel, p: MonocularFitParams, xy: np.ndarray, sc: np.ndarray,
                 world: np.ndarray | None) -> None:
        sel = [BLAZEPOSE_33.index(n) for n in lm.landmark_names]
        self.sel = np.array(sel)
        lw = np.array([p.shoulder_weight if n.endswith("_shoulder") else 1.0 for n in lm.landmark_names])
        self.uv = xy[:, sel]
        s = sc[:, sel]
        ok = (s >= p.min_score) & np.isfinite(self.uv).all(axis=-1)
        self.weight = np.where(ok, s * lw, 0.0)
        self.used = ok
        self.prior = world[:, sel] if world is not None else None
        self._code_to_idx = np.array([[lm.landmark_names.index(f"{f}_{q}") for q in FOOT_POINTS] for f in FEET])

    def contact_index(self, codes: np.ndarray) -> np.ndarray:
        """Contact-point codes (K, 2) -> landmark indices (-1 none)."""
        out = np.full(codes.shape, -1, dtype=np.int64)
        for f in range(2):
            c = codes[:, f]
            out[c >= 0, f] = self._code_to_idx[f, c[c >= 0]]
        return out


def _window(lm: LandmarkModel, cam: PinholeCamera, p: MonocularFitParams, fr: _Frames, t: np.ndarray,
            contact: np.ndarray, a: int, b: int, context: np.ndarray, estimate_shape: bool = False) -> Window:
    """The window of unknown frames a..b-1 with ``context`` (C, n) the frames just before a."""
    C = context.shape[0]
    prior = fr.prior[a:b] if fr.prior is not None else None
    return Window(lm, cam, p, WindowData(time_s=t[a - C:b], uv=fr.uv[a:b], weight=fr.weight[a:b],
                                         contact=contact[a - C:b], context=context, prior=prior),
                  estimate_shape=estimate_shape)


def _frame_quality(cam: PinholeCamera, fr: _Frames, k: int, sites: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(33,) reprojection error px (NaN unused), used fraction, median error px of frame k."""
    err = np.full(33, np.nan)
    u = fr.used[k]
    e = np.linalg.norm(cam.project(sites) - fr.uv[k], axis=-1)
    err[fr.sel[u]] = e[u]
    med = float(np.median(e[u])) if u.any() else math.inf
    return err, float(u.mean()), med


# --------------------------------------------------------------------------------------------------
# cold start and per-frame fit
# --------------------------------------------------------------------------------------------------


def _cold_start(lm: LandmarkModel, cam: PinholeCamera, p: MonocularFitParams, fr: _Frames, t: np.ndarray,
                contact: np.ndarray, k: int, scale: float) -> LMResult:
    """Fit frame k alone from upright poses at ``cold_headings`` headings, the pelvis on the hip keypoints' ray
    at the depth f / scale; the lowest-cost fit."""
    names = lm.landmark_names
    u = fr.used[k]
    hips = [names.index("left_hip"), names.index("right_hip")]
    anchor = fr.uv[k, hips][u[hips]].mean(axis=0) if u[hips].any() else fr.uv[k, u].mean(axis=0)
    if not math.isfinite(scale):
        scale = float(np.ptp(fr.uv[k, u, 1])) / (1.05 * lm.leg_length_m) if u.sum() >= 2 else math.nan
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"frame {k} (time_s={t[k]!r}): cannot size the body in the image (no legs visible)")
    depth = cam.K[0, 0] / scale
    ray = np.linalg.solve(cam.K, np.array([anchor[0], anchor[1], 1.0]))
    target = cam.R_cw.T @ (depth * ray - cam.t_cw)
    best: LMResult | None = None
    used_hips = [i for i in hips]
    for j in range(p.cold_headings):
        x = lm.x0.copy()
        x[:3] = (0.0, 0.0, -math.pi + 2.0 * math.pi * j / p.cold_headings)
        P = lm.sites(x)
        x[3:6] += T_OSIM_TO_ZUP.T @ (target - P[used_hips].mean(axis=0))
        win = _window(lm, cam, p, fr, t, contact, k, k + 1, np.zeros((0, lm.n)))
        res = solve_lm(win, x[None], 2 * p.frame_iterations, p.tolerance)
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    return best


def _initial_fit(lm: LandmarkModel, cam: PinholeCamera, p: MonocularFitParams, fr: _Frames, t: np.ndarray,
                 contact: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame fits, warm-started (the smoother's initial trajectory) and their iteration counts.

    Each frame is fitted with only the previous frame fixed: the acceleration prior (1.4 mm of root travel per
    frame at 60 fps) is far tighter than one frame's reprojection noise (~1 cm), so against a fixed, noisy
    history it would lock the fit to an extrapolation; it acts in the smoother, where all frames move."""
    N = t.size
    X = np.zeros((N, lm.n))
    iters = np.zeros(N, dtype=np.int64)
    started = False
    for k in range(N):
        enough = int(fr.used[k].sum()) >= p.min_landmarks
        if not started:
            if not enough:
                continue
            res = _cold_start(lm, cam, p, fr, t, contact, k, float(scale[k]))
            X[:k + 1] = res.X[0]  # frames before the first solvable one hold its pose
            iters[k] = res.iterations
            started = True
            continue
        pred = 2.0 * X[k - 1] - X[k - 2] if k >= 2 else X[k - 1].copy()
        pred = np.clip(pred, lm.lower, lm.upper)
        if not enough:
            X[k] = pred
            continue
        ctx = X[k - 1:k]  # one fixed frame: velocity and slide terms, no acceleration (see _initial_fit)
        res = solve_lm(_window(lm, cam, p, fr, t, contact, k, k + 1, ctx), pred[None], p.frame_iterations, p.tolerance)
        it = res.iterations
        _, _, med = _frame_quality(cam, fr, k, res.sites[0])
        if med > p.reinit_error_px:
            cold = _cold_start(lm, cam, p, fr, t, contact, k, float(scale[k]))
            it += cold.iterations
            if cold.cost < res.cost:
                res = cold
        X[k] = res.X[0]
        iters[k] = it
    if not started:
        raise ValueError(f"no frame has {p.min_landmarks} landmarks with score >= {p.min_score}: nothing to fit")
    return X, iters


# --------------------------------------------------------------------------------------------------
# offline smoother
# --------------------------------------------------------------------------------------------------


def fit_monocular(model: Any, camera: PinholeCamera, time_s: Any, xy_px: Any, score: Any, *,
                  params: MonocularFitParams = MonocularFitParams(), world_landmarks_m: Any = None,
                  solver: str = "lm") -> MonocularFit:
    """Fit the scaled ``model`` (an ``MjModel``, an object with ``.mj_model``, or a :class:`LandmarkModel`) to
    2-D keypoints over the whole trial (see the module docstring).  ``world_landmarks_m`` (N, 33, 3), world z
    up, m (optional): BlazePose's 3-D landmarks as a weak shape prior.  ``solver``: ``"lm"`` (this project's
    sparse LM) or ``"scipy"`` (``scipy.optimize.least_squares``, for comparison)."""
    if solver not in SOLVERS:
        raise ValueError(f"solver {solver!r} not supported; valid: {list(SOLVERS)}")
    if not isinstance(camera, PinholeCamera):
        raise TypeError(f"camera must be a PinholeCamera, got {type(camera).__name__}")
    t0 = time.perf_counter()
    t, xy, sc, world = _check_inputs(time_s, xy_px, score, world_landmarks_m)
    # a single camera's left/right label swaps mirrored back by temporal consistency (models.kinematics.monocular_swaps)
    xy, sc, swapped = repair_left_right(xy, sc, min_score=params.min_score)
    if world is not None:
        world = np.where(swapped[:, None, None], world[:, MIRROR_INDEX], world)
    lm = model if isinstance(model, LandmarkModel) else LandmarkModel(model)
    fr = _Frames(lm, params, xy, sc, world)
    codes = detect_stance(t, xy, sc, camera, lm.leg_length_m, stance_speed_m_s=params.stance_speed_m_s,
                          stance_window_s=params.stance_window_s, stance_height_m=params.stance_height_m,
                          min_score=params.min_score)
    contact = fr.contact_index(codes)
    scale = image_scale_px_per_m(t, xy, sc, lm.leg_length_m, params.min_score)
    X0, iters = _initial_fit(lm, camera, params, fr, t, contact, scale)
    win = _window(lm, camera, params, fr, t, contact, 0, t.size, np.zeros((0, lm.n)),
                  estimate_shape=params.estimate_shape and solver == "lm")
    if solver == "lm":
        res = solve_lm(win, X0, params.max_iterations, params.tolerance)
    else:
        res = solve_scipy(win, X0, params.max_iterations, params.tolerance)
    return _assemble(lm, camera, params, fr, t, codes, res, iters + res.iterations, time.perf_counter() - t0,
                     (f"solver {solver}: {res.iterations} iterations, converged {res.converged}",
                      f"left/right labels mirrored back on {int(swapped.sum())} frames"))


def _assemble(lm: LandmarkModel, cam: PinholeCamera, p: MonocularFitParams, fr: _Frames, t: np.ndarray,
              codes: np.ndarray, res: LMResult, iters: np.ndarray, dt: float, notes: tuple[str, ...]) -> MonocularFit:
    N = t.size
    err = np.full((N, 33), np.nan)
    frac = np.zeros(N)
    conv = np.zeros(N, dtype=bool)
    qpos = np.zeros((N, lm.model.nq))
    for k in range(N):
        err[k], frac[k], med = _frame_quality(cam, fr, k, res.sites[k])
        conv[k] = res.converged and med <= p.converged_error_px and int(fr.used[k].sum()) >= p.min_landmarks
        qpos[k] = lm.qpos(res.X[k])
    shape = {} if res.shape is None else {n: float(v) for n, v in zip(SHAPE_NAMES, res.shape)}
    return MonocularFit(time_s=t.copy(), coordinate_names=lm.coordinate_names, coordinates=res.X.copy(), qpos=qpos,
                        reprojection_error_px=err, landmarks_used_fraction=frac, contact=codes >= 0,
                        contact_point=codes.copy(), converged=conv, iterations=iters, solve_time_s=dt, notes=notes,
                        shape=shape)


def fit_keypoints(model: Any, camera: PinholeCamera, keypoints: Any, **kw: Any) -> MonocularFit:
    """:func:`fit_monocular` of an object with ``time_s``, ``xy_px`` and ``score`` (e.g. ``models.io.keypoints2d
    .Keypoints2D``)."""
    return fit_monocular(model, camera, keypoints.time_s, keypoints.xy_px, keypoints.score, **kw)


# --------------------------------------------------------------------------------------------------
# live fixed-lag fitter
# --------------------------------------------------------------------------------------------------


class MonocularFitter:
    """Fixed-lag monocular fit for the live loop (see the module docstring); one instance per thread.

    ``fps``: the camera's frame rate (frames/s), which turns the window's ``params.lag_s`` into frames
    (:meth:`MonocularFitParams.lag_frames_at`).  :meth:`step` takes one frame and returns the frame that became
    final (:attr:`lag_frames` frames old), or None while the window fills; :meth:`flush` returns the frames still in
    the window.  :attr:`latest` is the newest frame's current (lag 0, provisional) coordinates.  A camera that drops
    frames stretches the lag in time (the window counts frames): the output carries its own frame's time.
    """

    def __init__(self, model: Any, camera: PinholeCamera, params: MonocularFitParams = MonocularFitParams(), *,
                 fps: float) -> None:
        if not isinstance(camera, PinholeCamera):
            raise TypeError(f"camera must be a PinholeCamera, got {type(camera).__name__}")
        self.lm = model if isinstance(model, LandmarkModel) else LandmarkModel(model)
        self.camera = camera
        self.params = params
        self.fps = float(fps)
        self._lag = params.lag_frames_at(fps)
        self._swaps = LeftRightRepair(min_score=params.min_score)
        self.reset()

    @property
    def lag_frames(self) -> int:
        """Frames between a frame's arrival and its final estimate (``params.lag_s`` at ``fps``)."""
        return self._lag

    @property
    def lag_s(self) -> float:
        """The lag in seconds at the nominal frame rate (:attr:`lag_frames` / ``fps``)."""
        return self._lag / self.fps

    def reset(self) -> None:
        """Forget everything: the next frame is cold-started."""
        self._t: list[float] = []
        self._xy: list[np.ndarray] = []
        self._sc: list[np.ndarray] = []
        self._world: list[np.ndarray | None] = []
        self._X: list[np.ndarray] = []      # coordinates of every buffered frame (context first)
        self._codes: list[np.ndarray] = []  # contact codes of every buffered frame
        self._iters: list[int] = []
        self._swapped: list[bool] = []      # labels mirrored back on arrival, per buffered frame
        self._swaps.reset()
        self._n_ctx = 0                     # leading buffered frames that are final (at most 2 kept)
        self._sites: np.ndarray | None = None
        self.latest: np.ndarray | None = None

    def step(self, time_s: float, xy_px: np.ndarray, score: np.ndarray,
             world_landmarks_m: np.ndarray | None = None) -> LiveFrame | None:
        """Add one frame (``xy_px`` (33, 2) undistorted px, ``score`` (33,), optional world landmarks (33, 3))."""
        xy = np.asarray(xy_px, dtype=float)
        sc = np.nan_to_num(np.asarray(score, dtype=float), nan=0.0)
        if xy.shape != (33, 2) or sc.shape != (33,):
            raise ValueError(f"xy_px must have shape (33, 2) and score (33,), got {xy.shape} and {sc.shape}")
        if self._t and not time_s > self._t[-1]:
            raise ValueError(f"time_s must increase: {time_s!r} after {self._t[-1]!r}")
        xy, sc, swapped = self._swaps.step(xy, sc)
        world = None if world_landmarks_m is None else np.asarray(world_landmarks_m, dtype=float)
        if swapped and world is not None:
            world = world[MIRROR_INDEX]
        self._t.append(float(time_s))
        self._xy.append(xy)
        self._sc.append(sc)
        self._world.append(world)
        self._codes.append(np.full(2, -1, dtype=np.int64))
        self._iters.append(0)
        self._swapped.append(swapped)
        self._solve_window()
        if len(self._t) - self._n_ctx > self._lag:
            return self._finalise()
        return None

    def flush(self) -> list[LiveFrame]:
        """The frames still in the window, final now (oldest first); the fitter is then reset."""
        outs = []
        while len(self._t) > self._n_ctx:
            outs.append(self._finalise())
        self.reset()
        return outs

    # -- internals -------------------------------------------------------------------------------------

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        t = np.array(self._t)
        xy = np.stack(self._xy)
        sc = np.stack(self._sc)
        world = None
        if any(w is not None for w in self._world):
            world = np.stack([w if w is not None else np.full((33, 3), np.nan) for w in self._world])
        return t, xy, sc, world

    def _solve_window(self) -> None:
        p, lm, cam = self.params, self.lm, self.camera
        t, xy, sc, world = self._arrays()
        fr = _Frames(lm, p, xy, sc, world)
        C = self._n_ctx
        # stance of the unfinished frames from the whole buffer (centred where the data reach, else one-sided)
        codes = detect_stance(t, xy, sc, cam, lm.leg_length_m, stance_speed_m_s=p.stance_speed_m_s,
                              stance_window_s=p.stance_window_s, stance_height_m=p.stance_height_m,
                              min_score=p.min_score)
        for k in range(C, len(t)):
            self._codes[k] = codes[k]
        codes = np.stack(self._codes)
        contact = fr.contact_index(codes)
        k = len(t) - 1
        if not self._X:
            if int(fr.used[k].sum()) < p.min_landmarks:
                for buf in (self._t, self._xy, self._sc, self._world, self._codes, self._iters, self._swapped):
                    buf.pop()
                return  # nothing to start from yet: the frame is dropped
            scale = image_scale_px_per_m(t, xy, sc, lm.leg_length_m, p.min_score)[k]
            res = _cold_start(lm, cam, p, fr, t, contact, k, float(scale))
            self._X.append(res.X[0].copy())
            self._iters[k] += res.iterations
            self._sites = res.sites
            self.latest = res.X[0].copy()
            return
        X = self._X
        pred = 2.0 * X[-1] - X[-2] if len(X) >= 2 else X[-1].copy()
        X.append(np.clip(pred, lm.lower, lm.upper))
        ctx = np.array(X[:C]).reshape(C, lm.n)
        win = _window(lm, cam, p, fr, t, contact, C, len(t), ctx)
        res = solve_lm(win, np.array(X[C:]), p.live_iterations, p.tolerance)
        for j in range(res.X.shape[0]):
            X[C + j] = res.X[j].copy()
            self._iters[C + j] += res.iterations
        self._sites = res.sites
        self.latest = res.X[-1].copy()

    def _finalise(self) -> LiveFrame:
        """Make the oldest unfinished frame final and return it; keep at most two final frames as context."""
        p, lm, cam = self.params, self.lm, self.camera
        C = self._n_ctx
        t, xy, sc, world = self._arrays()
        fr = _Frames(lm, p, xy, sc, world)
        x = self._X[C]
        sites = self._sites[0] if self._sites is not None else lm.sites(x)
        err, frac, med = _frame_quality(cam, fr, C, sites)
        codes = self._codes[C]
        conv = med <= p.converged_error_px and int(fr.used[C].sum()) >= p.min_landmarks
        out = LiveFrame(time_s=self._t[C], coordinates=x.copy(), qpos=lm.qpos(x), reprojection_error_px=err,
                        landmarks_used_fraction=frac, contact=codes >= 0, contact_point=codes.copy(),
                        converged=bool(conv), iterations=int(self._iters[C]), swapped=self._swapped[C])
        if self._sites is not None:
            self._sites = self._sites[1:] if self._sites.shape[0] > 1 else None
        self._n_ctx += 1
        while self._n_ctx > 2:
            for buf in (self._t, self._xy, self._sc, self._world, self._X, self._codes, self._iters, self._swapped):
                buf.pop(0)
            self._n_ctx -= 1
        return out

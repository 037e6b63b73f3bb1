"""World grounding of monocular BlazePose: metric, floor-aligned, right-handed z-up trajectories.

BlazePose gives per frame (see :mod:`runtime.vision.pose_types`) 2D landmarks in pixels and
"world" landmarks in metres with the origin at the hips midpoint and camera-aligned axes (x image
right, y image down, z away from the camera: OpenCV's camera axes, a right-handed frame). Measured
on the pose2sim demo's cam01 against the four-camera reference: the best rotation between the
BlazePose skeleton and the true one (camera frame) is 6-15 deg about varying axes, with 5-8 cm of
shape error left after it, i.e. the axes are camera-aligned up to BlazePose's own error. Both are used:

1. **Metric scale** ``s``: BlazePose's metres come from an average-body prior. The subject's
   height fixes them: the median thigh + shank length (hip -> knee -> ankle, both sides) over the
   trial is the leg length, which is 0.491 of standing height (thigh 0.245 H + leg 0.246 H;
   Winter, *Biomechanics and Motor Control of Human Movement*, 4th ed., 2009, table 4.1), so
   ``s = 0.491 H / median leg length``.
2. **Root translation** (camera frame, m): with camera-aligned axes, landmark i is at
   ``X_i = s W_i + T`` in the camera frame. Its undistorted pixel ``(u_i, v_i)`` gives two equations
   linear in ``T`` (``fx (X + Tx) = (u - cx)(Z + Tz)``, same for y), solved by weighted least squares
   over the visible landmarks (weight = visibility). Depth is the least certain component.
   The intrinsics come from a calibration or :func:`runtime.vision.calibration.guess_intrinsics`
   (assumed field of view, stated in the result's notes).
   With ``snap_to_rays`` (default) each landmark is then moved along its depth plane onto the ray of its
   2D pixel (``X = ray(u, v) * Z``): the 2D landmarks are more accurate than BlazePose's 3D offsets,
   whose error is mostly in depth. Measured on the pose2sim demo (``exo monocular-check``): mean
   joint-angle RMSE 13.9 deg without, 12.7 deg with; with the true depth along the same rays (from
   the triangulated reference) it would be 5.8 deg, so depth is the dominant monocular error.
3. **Floor**: its normal (up) is the mean over the trial of the ankles-midpoint -> hips-midpoint
   direction: in walking the legs swing symmetrically about the vertical. A plane fitted to the
   stance feet was tried first and dropped: on the pose2sim demo the feet of a short walk lie
   nearly on a line, which leaves the plane free to roll about it (25 deg off the calibrated
   vertical even with the triangulated feet, 15 deg with the monocular ones), while the leg
   direction is 6.6 deg off (triangulated) and 6.9 deg (monocular). Height: the median, over stance
   frames (lowest foot landmark moving slower than ``stance_speed_m_s``), of the lowest heel/toe
   landmark along the normal, minus :data:`FOOT_LANDMARK_HEIGHT_M`. This gives the camera's pitch
   and roll and its height above the floor.
4. **Project frame** (right-handed, z up, m): z = floor normal; y = the camera's viewing direction
   projected on the floor (``heading="camera"``) or the walking direction (the principal
   horizontal direction of the root's path, oriented along the motion; ``heading="walking"``);
   x = y x z; origin on the floor below the first frame's hips midpoint.
5. **Smoothing**: live, :class:`models.filters.CausalDerivativeFilter` (2nd-order Butterworth,
   ``cutoff_hz``), whose lag is reported (``lag_s``: 36 ms at 6 Hz / 60 fps); offline,
   :func:`models.filters.smooth_derivatives` (zero lag, ``filtfilt``), segment by segment between
   missing stretches longer than ``max_gap_s``.
6. **Jitter metric**: the variance over time of the frame-to-frame acceleration
   ``(p[k+1] - 2 p[k] + p[k-1]) / dt^2`` of every landmark coordinate, averaged over the 33 x 3
   coordinates (m^2/s^4), before and after smoothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import numpy as np

from models.body.blazepose import BLAZEPOSE_33
from runtime.vision.calibration import CameraCalibration

__all__ = [
    "LEG_LENGTH_FRACTION_OF_HEIGHT",
    "FOOT_LANDMARK_HEIGHT_M",
    "BLAZEPOSE_TO_CAMERA",
    "PoseArrays",
    "GroundedTrajectory",
    "pose_arrays",
    "metric_scale",
    "root_translation",
    "fit_floor",
    "ground_monocular",
    "jitter",
    "smooth_offline",
    "smooth_causal",
]

#: Thigh + leg (hip -> knee -> ankle) as a fraction of standing height (Winter 2009, table 4.1).
LEG_LENGTH_FRACTION_OF_HEIGHT = 0.491
#: Height of the lowest foot landmark (heel or toe tip) above the floor in stance, m: the median per-frame lowest
#: heel/toe landmark of the four-camera triangulated pose2sim demo subject stands 0.056 m above the lab floor.
FOOT_LANDMARK_HEIGHT_M = 0.05
#: BlazePose world axes are the camera's (x right, y down, z away): identity (named for clarity).
BLAZEPOSE_TO_CAMERA = np.eye(3)

_IDX = {n: i for i, n in enumerate(BLAZEPOSE_33)}
_FOOT = [_IDX[n] for n in ("left_heel", "right_heel", "left_foot_index", "right_foot_index")]
_HIPS = [_IDX["left_hip"], _IDX["right_hip"]]
_ANKLES = [_IDX["left_ankle"], _IDX["right_ankle"]]


@dataclass
class PoseArrays:
    """Per-frame backend outputs as arrays (NaN / 0 where no pose): ``image_xy`` (N, 33, 2) px,
    ``visibility`` (N, 33), ``world_xyz`` (N, 33, 3) BlazePose world m, ``time_s`` (N,)."""

    time_s: np.ndarray
    image_xy: np.ndarray
    visibility: np.ndarray
    world_xyz: np.ndarray


def pose_arrays(results: Sequence[Any], time_s: np.ndarray) -> PoseArrays:
    """Stack :class:`~runtime.vision.pose_types.PoseResult` (or None) per frame into :class:`PoseArrays`."""
    n = len(results)
    t = np.asarray(time_s, dtype=float).reshape(-1)
    if t.size != n:
        raise ValueError(f"time_s has {t.size} samples for {n} results")
    xy = np.full((n, 33, 2), np.nan)
    vis = np.zeros((n, 33))
    w = np.full((n, 33, 3), np.nan)
    for k, r in enumerate(results):
        if r is None:
            continue
        xy[k] = r.image_xy
        vis[k] = r.visibility
        w[k] = r.world_xyz
    return PoseArrays(t, xy, vis, w)


def metric_scale(world_xyz: np.ndarray, height_m: float) -> tuple[float, float]:
    """``(s, leg_length_m)``: scale making the median hip-knee-ankle length 0.491 x ``height_m`` (see step 1)."""
    if not (math.isfinite(height_m) and 0.5 <= height_m <= 2.5):
        raise ValueError(f"height_m must lie in 0.5..2.5 m, got {height_m!r}")
    w = np.asarray(world_xyz, dtype=float)
    legs = []
    for s in ("left", "right"):
        h, k, a = w[:, _IDX[f"{s}_hip"]], w[:, _IDX[f"{s}_knee"]], w[:, _IDX[f"{s}_ankle"]]
        legs.append(np.linalg.norm(k - h, axis=1) + np.linalg.norm(a - k, axis=1))
    leg = np.concatenate(legs)
    leg = leg[np.isfinite(leg)]
    if leg.size == 0:
        raise ValueError("metric_scale: no frame has hip, knee and ankle landmarks")
    med = float(np.median(leg))
    return LEG_LENGTH_FRACTION_OF_HEIGHT * float(height_m) / med, med


def root_translation(world_xyz: np.ndarray, image_xy: np.ndarray, visibility: np.ndarray,
                     camera: CameraCalibration, scale: float, min_visibility: float = 0.5) -> np.ndarray:
    """(N, 3) hips-midpoint position in the camera frame (m) by linear least squares (see step 2)."""
    W = np.asarray(world_xyz, dtype=float) * scale
    uv = camera.undistort_pixels(np.asarray(image_xy, dtype=float))
    fx, fy, cx, cy = camera.K[0, 0], camera.K[1, 1], camera.K[0, 2], camera.K[1, 2]
    n = W.shape[0]
    T = np.full((n, 3), np.nan)
    for k in range(n):
        w = np.where(np.isfinite(uv[k]).all(axis=1) & np.isfinite(W[k]).all(axis=1)
                     & (visibility[k] >= min_visibility), visibility[k], 0.0)
        if (w > 0).sum() < 4:
            continue
        du, dv = uv[k, :, 0] - cx, uv[k, :, 1] - cy
        X, Y, Z = (np.nan_to_num(W[k, :, i]) for i in range(3))
        A = np.zeros((2 * 33, 3))
        b = np.zeros(2 * 33)
        A[:33, 0], A[:33, 2], b[:33] = fx, -np.nan_to_num(du), np.nan_to_num(du) * Z - fx * X
        A[33:, 1], A[33:, 2], b[33:] = fy, -np.nan_to_num(dv), np.nan_to_num(dv) * Z - fy * Y
        sw = np.sqrt(np.concatenate([w, w]))
        T[k] = np.linalg.lstsq(A * sw[:, None], b * sw, rcond=None)[0]
    return T


def fit_floor(foot_points_cam: np.ndarray, hips_cam: np.ndarray, ankles_cam: np.ndarray, dt: float,
              stance_speed_m_s: float = 0.5) -> tuple[np.ndarray, float, int]:
    """Floor in the camera frame: ``(unit normal, up; camera height above the floor m; stance frames used)``.

    ``foot_points_cam`` (N, K, 3) heel and toe landmarks, ``hips_cam`` (N, 3) and ``ankles_cam`` (N, 3) the
    midpoints of both hips and both ankles; see step 3 of the module docstring.
    """
    leg = np.asarray(hips_cam, dtype=float) - np.asarray(ankles_cam, dtype=float)
    leg = leg[np.isfinite(leg).all(axis=1)]
    if leg.shape[0] < 3:
        raise ValueError(f"fit_floor: only {leg.shape[0]} frames with hips and ankles; cannot find the vertical")
    up = leg.mean(axis=0)
    up /= np.linalg.norm(up)
    P = np.asarray(foot_points_cam, dtype=float)
    h = np.einsum("nkj,j->nk", P, up)
    low = np.min(np.where(np.isfinite(h), h, np.inf), axis=1)
    ok = np.isfinite(low)
    idx = np.argmin(np.where(np.isfinite(h), h, np.inf), axis=1)
    pts = P[np.arange(P.shape[0]), idx]
    speed = np.full(P.shape[0], np.inf)
    d = np.linalg.norm(np.diff(pts, axis=0), axis=1) / dt
    if d.size > 1:
        speed[1:-1] = np.fmax(d[:-1], d[1:])
    still = ok & (speed <= stance_speed_m_s)
    use = still if still.sum() >= 3 else ok
    if use.sum() < 3:
        raise ValueError(f"fit_floor: only {int(use.sum())} frames with foot landmarks; cannot place the floor")
    floor_level = float(np.median(low[use])) - FOOT_LANDMARK_HEIGHT_M
    return up, -floor_level, int(use.sum())


def _segments(valid: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """[start, end) spans of ``valid`` frames whose internal gaps are at most ``max_gap`` frames."""
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return []
    spans, start, prev = [], idx[0], idx[0]
    for i in idx[1:]:
        if i - prev - 1 > max_gap:
            spans.append((int(start), int(prev) + 1))
            start = i
        prev = i
    spans.append((int(start), int(prev) + 1))
    return spans


def smooth_offline(x: np.ndarray, rate_hz: float, cutoff_hz: float = 6.0, max_gap_s: float = 0.1) -> np.ndarray:
    """Zero-lag smoothing of (N, ...) samples (``models.filters.smooth_derivatives``) per segment; NaN elsewhere.
    Segments shorter than 12 frames are left unsmoothed."""
    from models.filters import smooth_derivatives

    a = np.asarray(x, dtype=float)
    flat = a.reshape(a.shape[0], -1)
    out = np.full_like(flat, np.nan)
    valid = np.isfinite(flat).all(axis=1)
    for s, e in _segments(valid, int(round(max_gap_s * rate_hz))):
        seg = flat[s:e].copy()
        seg[~np.isfinite(seg).all(axis=1)] = np.nan
        if e - s < 12:
            out[s:e] = seg
            continue
        out[s:e] = smooth_derivatives(seg, rate_hz, cutoff_hz=cutoff_hz, max_gap_s=max_gap_s).position
    return out.reshape(a.shape)


def smooth_causal(x: np.ndarray, rate_hz: float, cutoff_hz: float = 6.0) -> tuple[np.ndarray, float]:
    """Causal smoothing of (N, ...) samples frame by frame (``CausalDerivativeFilter``; NaN samples held);
    returns ``(smoothed, lag_s)`` with the filter's low-frequency lag."""
    from models.filters import CausalDerivativeFilter, LowPassParams

    a = np.asarray(x, dtype=float)
    flat = a.reshape(a.shape[0], -1)
    f = CausalDerivativeFilter(flat.shape[1], LowPassParams(cutoff_hz=cutoff_hz, sample_rate_hz=rate_hz))
    out = np.full_like(flat, np.nan)
    pos, vel, acc = (np.empty(flat.shape[1]) for _ in range(3))
    for k in range(flat.shape[0]):
        f.step(flat[k], pos, vel, acc)
        out[k] = pos
    return out.reshape(a.shape), f.lag_position_s


def jitter(x: np.ndarray, rate_hz: float) -> float:
    """Mean over coordinates of the variance over time of the frame-to-frame acceleration, (m/s^2)^2."""
    a = np.asarray(x, dtype=float)
    flat = a.reshape(a.shape[0], -1)
    acc = (flat[2:] - 2 * flat[1:-1] + flat[:-2]) * rate_hz ** 2
    with np.errstate(all="ignore"):
        v = np.nanvar(acc, axis=0)
    return float(np.nanmean(v))


@dataclass
class GroundedTrajectory:
    """Monocular landmarks grounded in the project frame (right-handed, z up, metres).

    ``landmarks_m`` (N, 33, 3) raw (per-frame solution), ``smoothed_m`` zero-lag smoothed, ``causal_m``
    causally smoothed (lag ``causal_lag_s``); ``root_m`` (N, 3) hips midpoint (raw); ``rotation_world_from_camera``
    and ``camera_position_m`` place the camera; ``scale`` multiplies BlazePose's metres; ``jitter`` holds the
    metric (m^2/s^4) for ``raw``, ``causal`` and ``offline``.
    """

    time_s: np.ndarray
    landmarks_m: np.ndarray
    smoothed_m: np.ndarray
    causal_m: np.ndarray
    causal_lag_s: float
    root_m: np.ndarray
    visibility: np.ndarray
    scale: float
    leg_length_blazepose_m: float
    floor_normal_camera: np.ndarray
    camera_height_m: float
    rotation_world_from_camera: np.ndarray
    camera_position_m: np.ndarray
    jitter: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        tilt = math.degrees(math.acos(float(np.clip(-self.floor_normal_camera[1], -1, 1))))
        return {"frames": int(self.time_s.size), "scale": self.scale, "camera_height_m": self.camera_height_m,
                "camera_tilt_from_level_deg": tilt, "causal_lag_s": self.causal_lag_s,
                "jitter_m2_s4": self.jitter, "notes": self.notes}


def ground_monocular(arrays: PoseArrays, camera: CameraCalibration, height_m: float, *,
                     heading: Literal["camera", "walking"] = "camera", cutoff_hz: float = 6.0,
                     min_visibility: float = 0.5, stance_speed_m_s: float = 0.5,
                     max_gap_s: float = 0.1, snap_to_rays: bool = True) -> GroundedTrajectory:
    """Steps 1-6 of the module docstring on one camera's per-frame poses."""
    if heading not in ("camera", "walking"):
        raise ValueError(f"heading = {heading!r}: allowed 'camera' or 'walking'")
    t = np.asarray(arrays.time_s, dtype=float)
    if t.size < 4:
        raise ValueError(f"ground_monocular: need at least 4 frames, got {t.size}")
    rate = float((t.size - 1) / (t[-1] - t[0]))
    notes: list[str] = []
    if camera.assumption:
        notes.append(f"intrinsics: {camera.assumption}")
    s, leg = metric_scale(arrays.world_xyz, height_m)
    notes.append(f"scale {s:.3f} from height {height_m:g} m (BlazePose leg length {leg:.3f} m, 0.491 H)")
    W = arrays.world_xyz @ BLAZEPOSE_TO_CAMERA.T
    T = root_translation(W, arrays.image_xy, arrays.visibility, camera, s, min_visibility)
    cam_pts = s * W + T[:, None, :]
    if snap_to_rays:
        cam_pts = camera.pixel_rays_camera(arrays.image_xy) * cam_pts[..., 2:3]
    hips = cam_pts[:, _HIPS].mean(axis=1)
    ankles = cam_pts[:, _ANKLES].mean(axis=1)
    up, cam_h, n_used = fit_floor(cam_pts[:, _FOOT], hips, ankles, 1.0 / rate, stance_speed_m_s)
    notes.append(f"floor from {n_used} stance frames; camera {cam_h:.2f} m above it")
    fwd = np.array([0.0, 0.0, 1.0]) - up * up[2]
    if heading == "walking":
        path = hips[np.isfinite(hips).all(axis=1)]
        if path.shape[0] >= 2:
            d = path - path.mean(axis=0)
            d = d - np.outer(d @ up, up)
            _, _, vt = np.linalg.svd(d, full_matrices=False)
            cand = vt[0] - up * (vt[0] @ up)
            if (path[-1] - path[0]) @ cand < 0:
                cand = -cand
            if np.linalg.norm(cand) > 1e-6:
                fwd = cand
    y = fwd / np.linalg.norm(fwd)
    x = np.cross(y, up)
    R = np.vstack([x, y, up])                          # world <- camera (rows: world axes in camera coords)
    first = hips[np.isfinite(hips).all(axis=1)][0]
    origin_c = first - up * ((first - (np.zeros(3) - up * cam_h)) @ up)   # on the floor below the first hips
    lm = (cam_pts - origin_c) @ R.T
    root = (hips - origin_c) @ R.T
    cam_pos = (np.zeros(3) - origin_c) @ R.T
    off = smooth_offline(lm, rate, cutoff_hz, max_gap_s)
    cau, lag = smooth_causal(lm, rate, cutoff_hz)
    jit = {"raw": jitter(lm, rate), "causal": jitter(cau, rate), "offline": jitter(off, rate)}
    notes.append(f"jitter (acceleration variance, m^2/s^4): raw {jit['raw']:.4g}, causal {jit['causal']:.4g} "
                 f"(lag {lag * 1e3:.0f} ms), offline {jit['offline']:.4g}")
    return GroundedTrajectory(time_s=t, landmarks_m=lm, smoothed_m=off, causal_m=cau, causal_lag_s=lag, root_m=root,
                              visibility=arrays.visibility, scale=s, leg_length_blazepose_m=leg,
                              floor_normal_camera=up, camera_height_m=cam_h, rotation_world_from_camera=R,
                              camera_position_m=cam_pos, jitter=jit, notes=notes)

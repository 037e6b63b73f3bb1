"""Multi-view triangulation of 2D landmarks, and the 3D reference of the pose2sim single-person demo.

Maths (:func:`triangulate`): for each landmark, each view ``c`` with undistorted pixel ``(u, v)``
and projection ``P_c = K_c [R_c | t_c]`` contributes the two rows ``u P_c[2] - P_c[0]`` and
``v P_c[2] - P_c[1]`` of ``A X = 0`` (direct linear transform, homogeneous ``X``). Each row is
normalised to unit length and multiplied by the view's weight (the landmark's visibility), so a
weight of 0 removes the view; the solution is the right singular vector of the smallest singular
value. Views below ``min_weight`` are dropped; with fewer than 2 views the point is NaN. Then,
while more than ``min_views`` views remain and the worst view's reprojection error exceeds
``outlier_px``, that view is dropped and the point re-solved. Reprojection error: distance in
pixels between the observed (distorted) pixel and the point projected through the full camera
model, per view; the per-point figure is the RMS over the views used.

Bystander (:func:`consistent_views`): a camera whose detector locked on another person gives 2D
landmarks that no 3D skeleton explains together with the other views. Per frame, every pair of
cameras is triangulated and reprojected into all cameras; a camera is *consistent* with a pair when
its median landmark reprojection error is below ``threshold_px``; the pair explaining the most
cameras (ties: the lower summed error) defines the consistent set. :func:`pose2sim_reference` then
re-runs the pose backend on the inconsistent cameras inside the box of the consistent skeleton
reprojected there, which puts them back on the subject. Before that, :func:`fix_left_right` undoes
BlazePose's left/right label swaps (on the demo, cam02 swaps the legs in frames 45-70 while the
subject turns: 250 px median error as given, a few px mirrored).

Frames: the world frame is the calibration's (pose2sim: Qualisys lab, metres, z up).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from models.body.blazepose import BLAZEPOSE_MIRROR_INDEX
from runtime.vision.calibration import CameraCalibration

__all__ = [
    "Triangulation",
    "triangulate",
    "reprojection_errors",
    "consistent_views",
    "fix_left_right",
    "estimate_time_offsets",
    "MultiViewReference",
    "pose2sim_reference",
]


@dataclass(frozen=True, eq=False)
class Triangulation:
    """Result of :func:`triangulate` for F frames, L landmarks and V views.

    ``points_m`` (F, L, 3) world, m (NaN where fewer than 2 views); ``reprojection_px`` (F, L) RMS over
    the views used; ``view_error_px`` (F, L, V) per view (NaN for views not observed); ``used`` (F, L, V)
    bool; ``n_views`` (F, L).
    """

    points_m: np.ndarray
    reprojection_px: np.ndarray
    view_error_px: np.ndarray
    used: np.ndarray
    n_views: np.ndarray


def _check_inputs(cameras: Sequence[CameraCalibration], uv: np.ndarray, weights: np.ndarray | None
                  ) -> tuple[np.ndarray, np.ndarray]:
    uv = np.asarray(uv, dtype=float)
    V = len(cameras)
    if V < 2:
        raise ValueError(f"cameras: need at least 2 views, got {V}")
    if uv.ndim != 4 or uv.shape[1] != V or uv.shape[3] != 2:
        raise ValueError(f"uv must have shape (frames, {V} views, landmarks, 2), got {uv.shape}")
    if weights is None:
        w = np.where(np.isfinite(uv).all(axis=-1), 1.0, 0.0)
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != uv.shape[:3]:
            raise ValueError(f"weights must have shape {uv.shape[:3]} (frames, views, landmarks), got {w.shape}")
        if np.any(w[np.isfinite(w)] < 0):
            raise ValueError("weights must be >= 0 (visibility 0..1)")
        w = np.where(np.isfinite(w) & np.isfinite(uv).all(axis=-1), w, 0.0)
    return uv, w


def _solve_dlt(P: np.ndarray, und: np.ndarray, w: np.ndarray) -> np.ndarray:
    """P (V, 3, 4); und (N, V, 2) undistorted px; w (N, V) -> (N, 3) (NaN where < 2 weighted views)."""
    u = und[..., 0:1]
    v = und[..., 1:2]
    r1 = u * P[None, :, 2, :] - P[None, :, 0, :]           # (N, V, 4)
    r2 = v * P[None, :, 2, :] - P[None, :, 1, :]
    A = np.concatenate([r1, r2], axis=1)                    # (N, 2V, 4)
    ww = np.concatenate([w, w], axis=1)
    norm = np.linalg.norm(A, axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        A = A / np.where(norm > 0, norm, 1.0)[..., None] * ww[..., None]
    A = np.nan_to_num(A)
    ok = (w > 0).sum(axis=1) >= 2
    X = np.full((und.shape[0], 3), np.nan)
    if ok.any():
        _, _, vt = np.linalg.svd(A[ok], full_matrices=False)
        h = vt[:, -1, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            X[ok] = h[:, :3] / h[:, 3:4]
    return X


def reprojection_errors(cameras: Sequence[CameraCalibration], points_m: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """(..., V) pixel distance between observed ``uv`` (..., V, 2) and ``points_m`` (..., 3) projected (with distortion)."""
    errs = []
    for c, cam in enumerate(cameras):
        proj = cam.project(points_m)
        errs.append(np.linalg.norm(proj - uv[..., c, :], axis=-1))
    return np.stack(errs, axis=-1)


def triangulate(cameras: Sequence[CameraCalibration], uv: np.ndarray, weights: np.ndarray | None = None, *,
                min_weight: float = 0.3, outlier_px: float = 30.0, min_views: int = 2,
                undistort: bool = True) -> Triangulation:
    """Weighted DLT of ``uv`` (F, V, L, 2) distorted pixels seen by ``cameras`` (V); ``weights`` (F, V, L)
    visibility 0..1 (default 1 where finite). See the module docstring."""
    uv, w = _check_inputs(cameras, uv, weights)
    if not 2 <= int(min_views) <= len(cameras):
        raise ValueError(f"min_views must lie in 2..{len(cameras)}, got {min_views!r}")
    F, V, L, _ = uv.shape
    w = np.where(w >= min_weight, w, 0.0)
    und = np.stack([cam.undistort_pixels(uv[:, c]) if undistort else uv[:, c] for c, cam in enumerate(cameras)],
                   axis=1)                                    # (F, V, L, 2)
    P = np.stack([c.projection_matrix for c in cameras])
    und_n = und.transpose(0, 2, 1, 3).reshape(F * L, V, 2)
    uv_n = uv.transpose(0, 2, 1, 3).reshape(F * L, V, 2)
    w_n = w.transpose(0, 2, 1).reshape(F * L, V).copy()
    X = _solve_dlt(P, np.nan_to_num(und_n), w_n)
    for _ in range(V - 2):
        err = reprojection_errors(cameras, X, uv_n)
        err = np.where(w_n > 0, err, -np.inf)
        worst = np.argmax(err, axis=1)
        worst_err = err[np.arange(err.shape[0]), worst]
        drop = (worst_err > outlier_px) & ((w_n > 0).sum(axis=1) > min_views)
        if not drop.any():
            break
        w_n[np.flatnonzero(drop), worst[drop]] = 0.0
        X[drop] = _solve_dlt(P, np.nan_to_num(und_n[drop]), w_n[drop])
    err = reprojection_errors(cameras, X, uv_n)
    used = w_n > 0
    err_used = np.where(used, err, np.nan)
    with np.errstate(invalid="ignore"):
        n = used.sum(axis=1)
        rms = np.sqrt(np.nansum(err_used ** 2, axis=1) / np.maximum(n, 1))
    rms[~np.isfinite(X).all(axis=1)] = np.nan
    return Triangulation(
        points_m=X.reshape(F, L, 3),
        reprojection_px=rms.reshape(F, L),
        view_error_px=np.where(np.isfinite(uv_n).all(axis=-1), err, np.nan).reshape(F, L, V),
        used=used.reshape(F, L, V),
        n_views=n.reshape(F, L),
    )


#: BlazePose index of each landmark's mirror (left <-> right), for label-swap checks.
_MIRROR_INDEX = np.array(BLAZEPOSE_MIRROR_INDEX)


def fix_left_right(cameras: Sequence[CameraCalibration], uv: np.ndarray, weights: np.ndarray,
                   consistent: np.ndarray, *, ratio: float = 0.5, min_weight: float = 0.3
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undo BlazePose's left/right label swaps: per frame, the consistent views are triangulated and every
    camera whose landmarks, mirrored (left <-> right), reproject with less than ``ratio`` times the median error
    of its labels as given gets the mirrored labels. Returns ``(uv, weights, swapped (F, V) bool)`` (copies)."""
    uv = np.array(uv, dtype=float)
    w = np.array(weights, dtype=float)
    F, V = uv.shape[:2]
    swapped = np.zeros((F, V), dtype=bool)
    tri = triangulate(cameras, uv, np.where(consistent[:, :, None], w, 0.0), min_weight=min_weight)
    for c, cam in enumerate(cameras):
        proj = cam.project(tri.points_m)                               # (F, L, 2)
        ok = w[:, c] >= min_weight
        e_cur = np.where(ok, np.linalg.norm(proj - uv[:, c], axis=-1), np.nan)
        mir = uv[:, c][:, _MIRROR_INDEX]
        ok_m = w[:, c][:, _MIRROR_INDEX] >= min_weight
        e_mir = np.where(ok_m, np.linalg.norm(proj - mir, axis=-1), np.nan)
        with np.errstate(all="ignore"):
            m_cur = np.nanmedian(e_cur[:, 23:], axis=1)              # hips down: where swaps matter
            m_mir = np.nanmedian(e_mir[:, 23:], axis=1)
        sw = np.isfinite(m_cur) & np.isfinite(m_mir) & (m_mir < ratio * m_cur)
        swapped[:, c] = sw
        uv[sw, c] = uv[sw, c][:, _MIRROR_INDEX]
        w[sw, c] = w[sw, c][:, _MIRROR_INDEX]
    return uv, w, swapped


def _shift(a: np.ndarray, lag: int, fill: float) -> np.ndarray:
    """``out[k] = a[k + lag]`` along axis 0, ``fill`` where out of range."""
    out = np.full_like(a, fill)
    n = a.shape[0]
    if abs(lag) >= n:
        return out
    if lag >= 0:
        out[: n - lag] = a[lag:]
    else:
        out[-lag:] = a[:lag]
    return out


def estimate_time_offsets(cameras: Sequence[CameraCalibration], uv: np.ndarray, weights: np.ndarray, *,
                          max_lag: int = 10, rounds: int = 2) -> list[int]:
    """Integer frame offsets that synchronise the views to the first camera (offset 0): camera ``c``'s frame
    ``k + offset[c]`` shows the instant of the first camera's frame ``k``. Coordinate descent: each other camera's
    offset in ``-max_lag..max_lag`` minimising the median reprojection error of all views over the frames
    every candidate covers. ``uv`` (F, V, L, 2), ``weights`` (F, V, L)."""
    uv, w = _check_inputs(cameras, uv, weights)
    F, V = uv.shape[:2]
    if not 0 <= max_lag < F // 3:
        raise ValueError(f"max_lag must lie in 0..{F // 3 - 1} for {F} frames, got {max_lag!r}")
    off = [0] * V
    core = slice(max_lag, F - max_lag)
    for _ in range(rounds):
        changed = False
        for c in range(1, V):
            best = (math.inf, off[c])
            for lag in range(-max_lag, max_lag + 1):
                o = list(off)
                o[c] = lag
                u = np.stack([_shift(uv[:, i], o[i], np.nan) for i in range(V)], axis=1)
                ww = np.stack([_shift(w[:, i], o[i], 0.0) for i in range(V)], axis=1)
                tri = triangulate(cameras, u[core], ww[core], outlier_px=math.inf)
                e = float(np.nanmedian(tri.reprojection_px)) if np.isfinite(tri.reprojection_px).any() else math.inf
                if e < best[0] - 1e-9:
                    best = (e, lag)
            changed |= best[1] != off[c]
            off[c] = best[1]
        if not changed:
            break
    return off


def consistent_views(cameras: Sequence[CameraCalibration], uv: np.ndarray, weights: np.ndarray | None = None, *,
                     threshold_px: float = 25.0, min_weight: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, which cameras see the same person: ``(consistent (F, V) bool, median error (F, V) px)``.

    ``uv`` (F, V, L, 2), ``weights`` (F, V, L). Every camera pair is triangulated (landmarks visible in
    both), reprojected into all cameras; see the module docstring for the choice.
    """
    uv, w = _check_inputs(cameras, uv, weights)
    F, V, L, _ = uv.shape
    best_sets = np.zeros((F, V), dtype=bool)
    best_err = np.full((F, V), np.nan)
    best_score = np.full(F, -1.0)
    best_sum = np.full(F, np.inf)
    for a, b in itertools.combinations(range(V), 2):
        sub = [cameras[a], cameras[b]]
        wab = np.where(w[:, [a, b]] >= min_weight, 1.0, 0.0)
        tri = triangulate(sub, uv[:, [a, b]], wab, min_weight=0.5, outlier_px=math.inf)
        err = reprojection_errors(cameras, tri.points_m, uv.transpose(0, 2, 1, 3))   # (F, L, V)
        vis = (w >= min_weight).transpose(0, 2, 1) & np.isfinite(err)
        med = np.full((F, V), np.nan)
        for c in range(V):
            e = np.where(vis[:, :, c], err[:, :, c], np.nan)
            with np.errstate(all="ignore"):
                enough = np.sum(np.isfinite(e), axis=1) >= 4
                m = np.nanmedian(np.where(enough[:, None], e, np.nan), axis=1) if np.any(enough) else np.full(F, np.nan)
            med[:, c] = m
        ok = med <= threshold_px
        score = ok.sum(axis=1).astype(float)
        ssum = np.where(ok, med, 0.0).sum(axis=1)
        better = (score > best_score) | ((score == best_score) & (ssum < best_sum))
        best_sets[better] = ok[better]
        best_err[better] = med[better]
        best_score[better] = score[better]
        best_sum[better] = ssum[better]
    return best_sets, best_err


# ------------------------------------------------------------------------------------- reference


@dataclass
class MultiViewReference:
    """3D landmark trajectory triangulated from several calibrated videos.

    ``points_m`` (F, 33, 3) world (calibration frame, m); ``reprojection_px`` (F, 33); ``time_s`` (F,);
    ``uv`` (F, V, 33, 2) and ``visibility`` (F, V, 33) the 2D inputs; ``consistent`` (F, V) which camera saw the
    subject; ``re_detected`` (V,) frames per camera re-run inside the reprojected box; ``monocular`` the first
    camera's :class:`~runtime.vision.pose_types.PoseResult` per frame from pass 1 (that camera alone, never
    corrected by the other views; None where nobody), kept so a monocular estimate can be compared without
    running the backend again.
    """

    time_s: np.ndarray
    points_m: np.ndarray
    reprojection_px: np.ndarray
    uv: np.ndarray
    visibility: np.ndarray
    consistent: np.ndarray
    re_detected: np.ndarray
    cameras: list[CameraCalibration]
    monocular: list[Any] = field(default_factory=list)
    swapped: np.ndarray | None = None
    offsets: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def segment_lengths(self) -> dict[str, dict[str, float]]:
        """Median and standard deviation over frames (m) of thigh and shank per side: a rigid-body check of the
        reference (a bone does not change length; BlazePose's joints are not exactly bony landmarks)."""
        from runtime.vision.pose_types import BLAZEPOSE_LANDMARKS as names

        out = {}
        for side in ("left", "right"):
            for seg, (a, b) in (("thigh", ("hip", "knee")), ("shank", ("knee", "ankle"))):
                d = np.linalg.norm(self.points_m[:, names.index(f"{side}_{a}")] - self.points_m[:, names.index(f"{side}_{b}")],
                                   axis=1)
                d = d[np.isfinite(d)]
                out[f"{side}_{seg}"] = {"median_m": float(np.median(d)) if d.size else math.nan,
                                        "std_m": float(np.std(d)) if d.size else math.nan}
        return out

    def summary(self) -> dict[str, Any]:
        rp = self.reprojection_px
        return {"frames": int(self.time_s.size), "cameras": [c.name for c in self.cameras],
                "reprojection_px_median": float(np.nanmedian(rp)) if np.isfinite(rp).any() else None,
                "reprojection_px_p95": float(np.nanpercentile(rp, 95)) if np.isfinite(rp).any() else None,
                "consistent_fraction_per_camera": self.consistent.mean(axis=0).round(3).tolist(),
                "re_detected_frames_per_camera": self.re_detected.tolist(), "time_offsets_frames": self.offsets,
                "segment_lengths": self.segment_lengths(),
                "notes": self.notes}


def _iter_frames(path: Path, frames: Sequence[int]) -> Iterator[np.ndarray]:
    """RGB frames ``frames`` (sorted, unique indices) of a video, decoded sequentially, one at a time."""
    import cv2

    wanted = sorted(set(int(i) for i in frames))
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"video {path}: cannot be opened")
    try:
        i, w = 0, 0
        while w < len(wanted):
            ok, bgr = cap.read()
            if not ok:
                raise ValueError(f"video {path}: frame {wanted[w]} not readable (the file has {i} frames)")
            if i == wanted[w]:
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                w += 1
            i += 1
    finally:
        cap.release()


def _pose_arrays(res: Any) -> tuple[np.ndarray, np.ndarray]:
    if res is None:
        return np.full((33, 2), np.nan), np.zeros(33)
    return np.asarray(res.image_xy, dtype=float), np.asarray(res.visibility, dtype=float)


def _box_around(points_px: np.ndarray, size: tuple[int, int], margin: float = 0.25) -> Any:
    from runtime.vision.pose_types import BoundingBox

    p = points_px[np.isfinite(points_px).all(axis=1)]
    if p.shape[0] < 4:
        return None
    x0, y0 = p.min(axis=0)
    x1, y1 = p.max(axis=0)
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    x0, x1 = max(0.0, x0 - mx), min(size[0] - 1.0, x1 + mx)
    y0, y1 = max(0.0, y0 - my), min(size[1] - 1.0, y1 + my)
    if x1 <= x0 or y1 <= y0:
        return None
    return BoundingBox(float(x0), float(y0), float(x1), float(y1))


def pose2sim_reference(videos: Sequence[str | Path], cameras: Sequence[CameraCalibration],
                       backend_factory: Callable[[], Any], *, frames: range | None = None,
                       fps: float = 60.0, threshold_px: float = 50.0, max_lag: int = 0) -> MultiViewReference:
    """Triangulated BlazePose landmarks of the subject seen by ``videos`` (one per camera).

    ``backend_factory()`` makes one :class:`~runtime.vision.pose_types.PoseBackend` per camera (tracking state
    is per camera). ``frames``: a contiguous range of the first camera's frames (default: all). Steps: each
    camera alone (pass 1, ``max_lag`` extra frames on each side); time offsets to the first camera
    (:func:`estimate_time_offsets`, only when ``max_lag`` > 0; default 0: on the demo the estimate is not stable
    (all 100 frames: [0, 1, 3, 1]; frames 20-60: [0, -3, 4, -1]) and lowers the median reprojection error by
    less than 1 px, so the videos are taken as synchronised); left/right label
    swaps undone (:func:`fix_left_right`); cameras inconsistent with the others (:func:`consistent_views`)
    re-run inside the box of the consistent skeleton reprojected there (fresh backend state per frame); all
    views triangulated with visibility weights.
    """
    if len(videos) != len(cameras):
        raise ValueError(f"videos: {len(videos)} files for {len(cameras)} cameras")
    import cv2

    cap = cv2.VideoCapture(str(videos[0]))
    n_total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    rng = range(n_total) if frames is None else frames
    if len(rng) < 4 or rng.step != 1:
        raise ValueError(f"frames: need a contiguous range of at least 4 frames, got {rng!r}")
    F, V = len(rng), len(cameras)
    lo = max(0, rng.start - max_lag)
    hi = min(n_total, rng.stop + max_lag)
    ext = list(range(lo, hi))                   # frames read from every camera
    E = len(ext)
    uv = np.full((E, V, 33, 2), np.nan)
    vis = np.zeros((E, V, 33))
    results0: list[Any] = []
    for c, path in enumerate(videos):             # frames are decoded one camera at a time, not kept
        be = backend_factory()
        for k, img in enumerate(_iter_frames(Path(path), ext)):
            res = be.infer(img, int(round(ext[k] / fps * 1e9)))
            uv[k, c], vis[k, c] = _pose_arrays(res)
            if c == 0:
                results0.append(res)
    notes: list[str] = []
    lag = max_lag if E >= 3 * max_lag + 3 else 0
    offsets = estimate_time_offsets(cameras, uv, vis, max_lag=lag) if lag else [0] * V
    notes.append(f"time offsets to {cameras[0].name} (frames): {offsets}")
    a = rng.start - lo                          # index of the first wanted frame in ext
    sel = [np.arange(a, a + F) + offsets[c] for c in range(V)]
    if any(s_.min() < 0 or s_.max() >= E for s_ in sel):
        raise ValueError(f"frames {rng!r}: the time offsets {offsets} reach outside the videos; choose frames "
                         f"at least {max(abs(o) for o in offsets)} frames from either end")
    uv = np.stack([uv[sel[c], c] for c in range(V)], axis=1)
    vis = np.stack([vis[sel[c], c] for c in range(V)], axis=1)
    monocular = [results0[i] for i in sel[0]]
    consistent, _ = consistent_views(cameras, uv, vis, threshold_px=threshold_px)
    uv, vis, swapped = fix_left_right(cameras, uv, vis, consistent)
    if swapped.any():
        notes.append(f"left/right labels swapped back: {swapped.sum(axis=0).tolist()} frames per camera")
        consistent, _ = consistent_views(cameras, uv, vis, threshold_px=threshold_px)
    re_detected = np.zeros(V, dtype=int)
    if not consistent.all():
        tri0 = triangulate(cameras, uv, np.where(consistent[:, :, None], vis, 0.0))
        for c in range(V):
            todo = [int(k) for k in np.flatnonzero(~consistent[:, c])]
            if not todo:
                continue
            be = backend_factory()
            want = sorted({ext[int(sel[c][k])] for k in todo})
            imgs = dict(zip(want, _iter_frames(Path(videos[c]), want)))
            for k in todo:
                proj = cameras[c].project(tri0.points_m[k])
                box = _box_around(proj, cameras[c].image_size)
                if box is None:
                    continue
                be.reset()
                j = int(sel[c][k])
                res = be.infer(imgs[ext[j]], int(round(ext[j] / fps * 1e9)), roi=box)
                uv[k, c], vis[k, c] = _pose_arrays(res)
                re_detected[c] += 1
        consistent, _ = consistent_views(cameras, uv, vis, threshold_px=threshold_px)
        notes.append(f"re-detected inside the reprojected box: {re_detected.tolist()} frames per camera")
    tri = triangulate(cameras, uv, np.where(consistent[:, :, None], vis, 0.0))
    return MultiViewReference(time_s=np.asarray(list(rng), dtype=float) / fps, points_m=tri.points_m,
                              reprojection_px=tri.reprojection_px, uv=uv, visibility=vis, consistent=consistent,
                              re_detected=re_detected, cameras=list(cameras), monocular=monocular,
                              swapped=swapped, offsets=offsets, notes=notes)

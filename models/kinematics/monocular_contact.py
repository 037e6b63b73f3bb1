"""Stance (foot-floor contact) from 2-D keypoints alone, for model-based monocular fitting.

Per frame and foot: the foot's *lowest* landmark (heel or foot_index, whichever lies further along the image
direction in which a world point moves when lowered, :meth:`PinholeCamera.down_direction`) is the contact
candidate.  The foot is in stance when that landmark moves slower than ``stance_speed_m_s`` (image speed over
a centred ``stance_window_s``, one-sided at the ends of the data, converted to m/s with the body's image scale)
and lies no more than ``stance_height_m`` above the other foot's lowest landmark.  Image scale (px per m at the
body's depth): the longer of the two legs' hip -> knee -> ankle pixel lengths over the scaled model's leg
length, median over a 1 s centred window (a leg seen side-on is in the image plane; the longer one is the
less foreshortened).
"""
from __future__ import annotations

import numpy as np

from models.body.blazepose import BLAZEPOSE_33
from models.kinematics.monocular_camera import PinholeCamera

__all__ = ["FEET", "FOOT_POINTS", "image_scale_px_per_m", "detect_stance"]

#: Feet in the order of the contact columns.
FEET: tuple[str, ...] = ("left", "right")
#: Contact candidates of each foot, in the order of the contact-point codes (0 = heel, 1 = foot_index).
FOOT_POINTS: tuple[str, ...] = ("heel", "foot_index")

_IDX = {n: i for i, n in enumerate(BLAZEPOSE_33)}
_SCALE_WINDOW_S = 1.0


def _valid(xy: np.ndarray, score: np.ndarray, min_score: float) -> np.ndarray:
    return np.where((score >= min_score)[..., None] & np.isfinite(xy), xy, np.nan)


def image_scale_px_per_m(time_s: np.ndarray, xy_px: np.ndarray, score: np.ndarray, leg_length_m: float,
                         min_score: float = 0.5) -> np.ndarray:
    """(N,) px per metre at the body's depth (see the module docstring); NaN where no leg is visible nearby."""
    p = _valid(xy_px, score, min_score)
    legs = []
    for s in FEET:
        h, k, a = (p[:, _IDX[f"{s}_{j}"]] for j in ("hip", "knee", "ankle"))
        legs.append(np.linalg.norm(h - k, axis=-1) + np.linalg.norm(k - a, axis=-1))
    leg = np.fmax(legs[0], legs[1])
    t = np.asarray(time_s, dtype=float)
    out = np.full(t.shape, np.nan)
    lo = np.searchsorted(t, t - _SCALE_WINDOW_S / 2, side="left")
    hi = np.searchsorted(t, t + _SCALE_WINDOW_S / 2, side="right")
    for k in range(t.size):
        seg = leg[lo[k]:hi[k]]
        seg = seg[np.isfinite(seg)]
        if seg.size:
            out[k] = float(np.median(seg)) / leg_length_m
    return out


def detect_stance(time_s: np.ndarray, xy_px: np.ndarray, score: np.ndarray, camera: PinholeCamera,
                  leg_length_m: float, *, stance_speed_m_s: float = 0.5, stance_window_s: float = 0.1,
                  stance_height_m: float = 0.05, min_score: float = 0.5) -> np.ndarray:
    """(N, 2) contact-point codes per foot (columns :data:`FEET`): 0 heel, 1 foot_index, -1 not in stance.

    ``xy_px`` (N, 33, 2) undistorted pixels (BlazePose order, NaN where missing), ``score`` (N, 33);
    ``leg_length_m`` the scaled model's hip -> knee -> ankle length.
    """
    t = np.asarray(time_s, dtype=float)
    N = t.size
    p = _valid(np.asarray(xy_px, dtype=float), np.asarray(score, dtype=float), min_score)
    scale = image_scale_px_per_m(t, xy_px, score, leg_length_m, min_score)
    lo = np.searchsorted(t, t - stance_window_s / 2, side="left")
    hi = np.searchsorted(t, t + stance_window_s / 2, side="right") - 1
    lowest = np.full((N, 2, 2), np.nan)  # (frame, foot, uv) of the lowest point
    code = np.full((N, 2), -1, dtype=np.int64)
    depth = np.full((N, 2), np.nan)  # coordinate along the image's down direction, px
    for f, s in enumerate(FEET):
        pts = np.stack([p[:, _IDX[f"{s}_{q}"]] for q in FOOT_POINTS], axis=1)  # (N, 2, 2)
        down = camera.down_direction(np.nan_to_num(pts))
        dcoord = np.einsum("npi,npi->np", pts, down)
        dfill = np.where(np.isfinite(dcoord), dcoord, -np.inf)
        best = np.argmax(dfill, axis=1)
        ok = np.isfinite(dfill[np.arange(N), best])
        code[ok, f] = best[ok]
        lowest[ok, f] = pts[np.flatnonzero(ok), best[ok]]
        depth[ok, f] = dcoord[np.flatnonzero(ok), best[ok]]
    out = np.full((N, 2), -1, dtype=np.int64)
    track = {(f, c): p[:, _IDX[f"{FEET[f]}_{FOOT_POINTS[c]}"]] for f in range(2) for c in range(len(FOOT_POINTS))}
    fin = {key: np.isfinite(v).all(axis=1) for key, v in track.items()}
    for f in range(2):
        for k in range(N):
            c = int(code[k, f])
            if c < 0 or not np.isfinite(scale[k]):
                continue
            pt, ok = track[(f, c)], fin[(f, c)]
            a, b = lo[k], hi[k]
            while a < k and not ok[a]:
                a += 1
            while b > k and not ok[b]:
                b -= 1
            if b <= a:
                continue
            speed = float(np.linalg.norm(pt[b] - pt[a])) / (t[b] - t[a]) / scale[k]
            if speed >= stance_speed_m_s:
                continue
            other = depth[k, 1 - f]
            if np.isfinite(other) and depth[k, f] < other - stance_height_m * scale[k]:
                continue
            out[k, f] = c
    return out

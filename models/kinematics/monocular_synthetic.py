"""A model-generated walk seen by a virtual camera: known coordinates -> landmark sites -> pixels + noise.

For tests and the benchmark of model-based monocular fitting (the lab-trial renderer is
``models.io.synthetic_keypoints``).  The walk: gait cycle ``cycle_s``; right hip flexion ``0.05 + 0.42 sin(phi)``
rad, knee ``0.1 + 0.55 ((1 + cos(phi + 0.3)) / 2)^2`` rad (flexed in swing), ankle ``0.12 sin(phi - 0.4)`` rad,
hip adduction ``0.04 sin(phi)``, hip rotation ``0.03 sin(phi)``; the left leg half a cycle later; pelvis tilt,
list and rotation small sinusoids (0.03, 0.04, 0.06 rad).  The root is then placed so that the foot landmark
that is lowest (heel or toe tip of either foot, measured by its height minus its standing contact height)
touches the floor and does not move horizontally while it is the lowest: a rolling, non-slipping contact, so the
feet really stand and the body really advances (about 1.2 m/s).  Walking along world +x.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.body.blazepose import BLAZEPOSE_33
from models.kinematics.monocular_camera import PinholeCamera
from models.kinematics.monocular_model import LandmarkModel

__all__ = ["SyntheticWalk", "synthetic_walk", "side_camera"]


@dataclass
class SyntheticWalk:
    """``time_s`` (N,); ``coordinates`` (N, n) truth (``coordinate_names``); ``sites_m`` (N, M, 3) world;
    ``xy_px`` (N, 33, 2) noisy pixels (NaN for landmarks not on the model); ``score`` (N, 33);
    ``stance`` (N, 2) true stance per foot (left, right)."""

    time_s: np.ndarray
    coordinate_names: tuple[str, ...]
    coordinates: np.ndarray
    sites_m: np.ndarray
    xy_px: np.ndarray
    score: np.ndarray
    stance: np.ndarray


#: Standard deviation of the Gaussian smoothing of the root path, s.
SMOOTH_S = 0.02


def _smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian smoothing (edges padded with the end values)."""
    r = int(math.ceil(3 * sigma_frames))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma_frames) ** 2)
    k /= k.sum()
    return np.convolve(np.pad(x, r, mode="edge"), k, mode="valid")


def _leg_profiles(phase: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hip flexion, knee and ankle angles (rad) at gait phases 0..1 (0 = heel strike): stance 60 % of the
    cycle with the hip extending at a constant rate (so the body moves at a nearly steady speed), swing 40 %
    with the knee flexed to 60 deg; corners rounded by a periodic Gaussian smoothing of 0.03 cycles."""
    g = np.linspace(0.0, 1.0, 400, endpoint=False)
    a = 0.38
    hip = np.where(g < 0.6, a * (1.0 - 2.0 * g / 0.6), 0.0)
    u = 1.0 - (1.0 - np.clip((g - 0.6) / 0.4, 0.0, 1.0)) ** 2  # the hip flexes early in swing
    hip = np.where(g < 0.6, hip, -a + 2.0 * a * (3 * u ** 2 - 2 * u ** 3)) + 0.05

    def bump(c: float, w: float) -> np.ndarray:
        d = np.mod(g - c + 0.5, 1.0) - 0.5
        return np.exp(-0.5 * (d / w) ** 2)

    knee = 0.08 + 0.2 * bump(0.15, 0.06) + 1.0 * bump(0.72, 0.08)
    ankle = -0.05 + 0.2 * bump(0.45, 0.12) - 0.3 * bump(0.63, 0.04) + 0.15 * bump(0.8, 0.08)
    sig = 0.03 * g.size
    r = int(3 * sig)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sig) ** 2)
    k /= k.sum()
    out = []
    for y in (hip, knee, ankle):
        ys = np.convolve(np.concatenate([y[-r:], y, y[:r]]), k, mode="valid")
        out.append(np.interp(phase, g, ys, period=1.0))
    return out[0], out[1], out[2]


def side_camera(distance_m: float = 7.0, f_px: float = 1400.0, image_size: tuple[int, int] = (1920, 1080),
                height_m: float = 1.0) -> PinholeCamera:
    """A level camera ``distance_m`` to the walker's right (world -y) looking at the walking line (x axis)."""
    return PinholeCamera.look_at(f_px, image_size, np.array([0.0, -distance_m, height_m]),
                                 np.array([0.0, 0.0, height_m]))


def synthetic_walk(lm: LandmarkModel, camera: PinholeCamera, *, duration_s: float = 3.0, fps: float = 60.0,
                   cycle_s: float = 1.1, noise_px: float = 2.0, seed: int = 0, start_x_m: float = -1.8,
                   landmark_floor_height_m: float | None = 0.05) -> SyntheticWalk:
    """The walk of the module docstring on ``lm``'s model, projected by ``camera`` with Gaussian pixel noise.

    ``landmark_floor_height_m``: height of the pinned (lowest) foot landmark above the floor, m (0.05: where
    detectors put the heel/toe points, see :class:`MonocularFitParams` ``contact_height_m``; None: the model's
    own site heights above its sole, :attr:`LandmarkModel.contact_height_m`)."""
    N = int(round(duration_s * fps))
    t = 10.0 + np.arange(N) / fps  # not starting at 0: the fit must keep the input's time stamps
    names = lm.coordinate_names
    ix = {n: i for i, n in enumerate(names)}
    X = np.tile(lm.x0, (N, 1))
    phase = np.mod(t / cycle_s, 1.0)
    for s, ph in (("r", phase), ("l", np.mod(phase + 0.5, 1.0))):
        hip, knee, ankle = _leg_profiles(ph)
        X[:, ix[f"hip_flexion_{s}"]] = hip
        X[:, ix[f"knee_angle_{s}"]] = knee
        X[:, ix[f"ankle_angle_{s}"]] = ankle
        X[:, ix[f"hip_adduction_{s}"]] = 0.04 * np.sin(2.0 * math.pi * ph)
        X[:, ix[f"hip_rotation_{s}"]] = 0.03 * np.sin(2.0 * math.pi * ph)
    phi = 2.0 * math.pi * phase
    X[:, ix["pelvis_tilt"]] = 0.03 * np.sin(2.0 * phi)
    X[:, ix["pelvis_list"]] = 0.04 * np.sin(phi)
    X[:, ix["pelvis_rotation"]] = 0.06 * np.sin(phi)
    X[:, 3:6] = 0.0
    foot = np.flatnonzero(np.isfinite(lm.contact_height_m))
    h = lm.contact_height_m.copy() if landmark_floor_height_m is None else np.where(
        np.isfinite(lm.contact_height_m), landmark_floor_height_m, np.nan)
    rel = np.stack([lm.sites(x) for x in X])  # pelvis origin at the OpenSim ground origin
    height = rel[:, foot, 2] - h[foot]
    low = np.argmin(height, axis=1)
    # OpenSim ground: x forward, y up, z right; world: x forward, y left, z up
    X[:, ix["pelvis_ty"]] = -height[np.arange(N), low]
    px = np.zeros(N)
    py = np.zeros(N)
    px[0], py[0] = start_x_m, 0.0
    for k in range(1, N):
        i = foot[low[k]]
        px[k] = px[k - 1] - (rel[k, i, 0] - rel[k - 1, i, 0])
        py[k] = py[k - 1] - (rel[k, i, 1] - rel[k - 1, i, 1])
    # the pinned point switches (heel -> toe -> other heel) make the root velocity jump; a Gaussian smoothing
    # of SMOOTH_S keeps the root accelerations walking-like (the stance foot then slides by a few mm/s)
    X[:, ix["pelvis_tx"]] = _smooth(px, SMOOTH_S * fps)
    X[:, ix["pelvis_tz"]] = -_smooth(py, SMOOTH_S * fps)
    X[:, ix["pelvis_ty"]] = _smooth(X[:, ix["pelvis_ty"]], SMOOTH_S * fps)
    sites = np.stack([lm.sites(x) for x in X])
    rng = np.random.default_rng(seed)
    xy = np.full((N, 33, 2), np.nan)
    sel = [BLAZEPOSE_33.index(n) for n in lm.landmark_names]
    xy[:, sel] = camera.project(sites) + rng.normal(0.0, noise_px, (N, len(sel), 2))
    score = np.zeros((N, 33))
    score[:, sel] = 0.9
    # true stance: the foot's lowest landmark at its floor height (within 1 cm) and nearly still (below 0.25 m/s, half the
    # detector's threshold; the smoothed root lets a planted foot creep by a few cm/s)
    stance = np.zeros((N, 2), dtype=bool)
    for f, side in enumerate(("left", "right")):
        pts = [lm.landmark_names.index(f"{side}_{q}") for q in ("heel", "foot_index")]
        hz = sites[:, pts, 2] - h[pts]
        j = np.argmin(hz, axis=1)
        v = np.zeros(N)
        v[1:-1] = np.linalg.norm(sites[2:, pts][np.arange(N - 2), j[1:-1], :2]
                                 - sites[:-2, pts][np.arange(N - 2), j[1:-1], :2], axis=1) * fps / 2.0
        v[0], v[-1] = v[1], v[-2]
        stance[:, f] = (hz[np.arange(N), j] < 0.01) & (v < 0.25)
    return SyntheticWalk(time_s=t, coordinate_names=names, coordinates=X, sites_m=sites, xy_px=xy, score=score,
                         stance=stance)

"""Floor height from foot sole points (z up): where a still foot's lowest point sits."""

from __future__ import annotations

import numpy as np

from models.grf.smoothing import ZeroLagLowPass

__all__ = ["estimate_floor_height"]


def estimate_floor_height(foot_points_m: np.ndarray, rate_hz: float, *, speed_m_s: float = 0.4,
                          cutoff_hz: float = 12.0) -> float:
    """Floor height (m, z up) from foot sole points (N, 2, P, 3): the median, over frames where a foot is still
    (every point slower than ``speed_m_s``), of that foot's lowest point.  A foot flat on the floor has its lowest
    sole point on the floor; the median ignores the toe rolling into the floor at push-off (MyoLeg's toes are rigid
    in the lab IK, whose ``mtp_angle`` is locked at 0).  Falls back to the 5th percentile of the lowest points when
    no foot is ever still."""
    p = np.asarray(foot_points_m, float)
    if p.ndim != 4 or p.shape[1] != 2 or p.shape[-1] != 3:
        raise ValueError(f"foot_points_m must have shape (N, 2, P, 3), got {p.shape}")
    ok = np.all(np.isfinite(p), axis=(1, 2, 3))
    p = p[ok]
    if p.shape[0] < 3:
        raise ValueError("need at least 3 finite frames of foot points to estimate the floor")
    zl = ZeroLagLowPass(2, cutoff_hz if cutoff_hz < 0.45 * rate_hz else None, rate_hz)
    v = zl.central_velocity(zl(p))
    speed = np.linalg.norm(v, axis=-1).max(axis=-1)  # (n, 2)
    low = p[..., 2].min(axis=-1)  # (n, 2)
    still = speed < speed_m_s
    if still.any():
        return float(np.median(low[still]))
    return float(np.percentile(low, 5))

"""Is a force-plate reference consistent with the kinematics it is compared with?  Scale and time lag of the plates'
total vertical force against the whole-body vertical force the kinematics demand, ``m (a_com - g)_z``.

Where every foot the kinematics put on the floor stands on a plate, the plates' summed vertical force and
``m (a_com - g)_z`` are the same physical quantity: the ratio is 1 for a correct body mass and plate calibration,
and the lag is 0 for synchronised marker and analog clocks.  :func:`plate_consistency` fits, over those frames, the
scale ``s`` (least squares, ``plate ~ s * kinematic``) at each integer frame lag within ``max_lag_s`` and keeps the
lag with the smallest RMS misfit.  A lag > 0 means the plates' signal comes later than the kinematics'.

On the shared trials (``make validate``; 2026-12-07): GC6 DM, s = 1.005-1.010 at lag 0 (RMS 16-21 N); GC5 PS,
s = 1.10 at lag +17 ms (two 120 Hz frames; RMS 22-26 N, 32-36 N at lag 0): the PS plates carry 10 % more than the
recorded 75 kg can push (their impulse over the trial's one gait cycle gives 82.7-83.0 kg) and lag the markers.
Pure computation (numpy, scipy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_dilation

__all__ = ["PlateConsistency", "corrected_plate_force", "plate_consistency"]


@dataclass(frozen=True)
class PlateConsistency:
    """Result of :func:`plate_consistency`: ``scale`` (plate / kinematic, 1), ``lag_s`` (s, > 0: plates later),
    ``rms_n`` (N) misfit at that lag and scale, ``rms_zero_lag_n`` (N) at lag 0 with its own best scale,
    ``frames`` used."""

    scale: float
    lag_s: float
    rms_n: float
    rms_zero_lag_n: float
    frames: int


def _window(kin_contact: np.ndarray, plate_loaded: np.ndarray, plate_total_n: np.ndarray, margin: int) -> np.ndarray:
    ok = np.ones(plate_total_n.size, bool)
    for f in range(kin_contact.shape[1]):
        on_plate = binary_dilation(plate_loaded[:, f], iterations=margin)
        near_contact = binary_dilation(kin_contact[:, f], iterations=margin)
        ok &= on_plate | ~near_contact
    ok &= plate_total_n > 20.0
    ok[:margin] = False
    ok[-margin:] = False
    return ok


def plate_consistency(kin_total_z_n: np.ndarray, plate_total_z_n: np.ndarray, kin_contact: np.ndarray,
                      plate_loaded: np.ndarray, rate_hz: float, *, max_lag_s: float = 0.05,
                      margin_s: float = 0.067) -> PlateConsistency | None:
    """Scale and lag of the plates' total vertical force (N, (n,)) against the kinematic one (N, (n,)), over the
    frames where each foot in kinematic contact (``kin_contact`` (n, 2) bool) is on a plate (``plate_loaded``
    (n, 2) bool), both widened by ``margin_s`` (s).  ``None`` when fewer than 20 such frames exist."""
    k = np.asarray(kin_total_z_n, float)
    p = np.asarray(plate_total_z_n, float)
    if k.shape != p.shape or k.ndim != 1:
        raise ValueError(f"kin_total_z_n and plate_total_z_n must be equal 1-D arrays, got {k.shape}, {p.shape}")
    if not (np.isfinite(rate_hz) and rate_hz > 0):
        raise ValueError(f"rate_hz must be a finite number > 0, got {rate_hz!r}")
    margin = max(1, round(margin_s * rate_hz))
    idx = np.flatnonzero(_window(np.asarray(kin_contact, bool), np.asarray(plate_loaded, bool), p, margin)
                         & np.isfinite(k) & np.isfinite(p))
    if idx.size < 20:
        return None
    max_lag = max(0, round(max_lag_s * rate_hz))
    fits = []
    for lag in range(-max_lag, max_lag + 1):
        ii = idx[(idx + lag >= 0) & (idx + lag < p.size)]
        e, m = k[ii], p[ii + lag]
        s = float(np.dot(e, m) / np.dot(e, e))
        fits.append((float(np.sqrt(np.mean((s * e - m) ** 2))), lag, s))
    rms, lag, s = min(fits)
    rms0 = next(f[0] for f in fits if f[1] == 0)
    return PlateConsistency(scale=s, lag_s=lag / rate_hz, rms_n=rms, rms_zero_lag_n=rms0, frames=int(idx.size))


def corrected_plate_force(plate_z_n: np.ndarray, check: PlateConsistency, rate_hz: float) -> np.ndarray:
    """A plate force (N, (n,)) moved by the fitted lag and divided by the fitted scale: what the plates would read
    if they agreed with the kinematics' mass and clock (a diagnostic; NaN where the shift leaves no sample)."""
    p = np.asarray(plate_z_n, float)
    lag = round(check.lag_s * rate_hz)
    out = np.full(p.shape, np.nan)
    if lag >= 0:
        out[:p.size - lag] = p[lag:]
    else:
        out[-lag:] = p[:p.size + lag]
    return out / check.scale

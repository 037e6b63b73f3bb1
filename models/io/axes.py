"""Lab axes to the model's world: OpenSim's ground (x forward, y up, z right) -> z up (x forward, y left, z up).

Readers keep lab frames exactly as recorded; callers convert with :func:`opensim_to_z_up`.  Pure numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["opensim_to_z_up"]


def opensim_to_z_up(p: np.ndarray) -> np.ndarray:
    """Map points from OpenSim axes (x forward, y up, z right) to z-up (x forward, y left, z up).

    Works on any array whose last axis has length 3 (a proper rotation, NaN preserved):
    ``(x, y, z) -> (x, -z, y)``.
    """
    p = np.asarray(p, dtype=float)
    if p.shape[-1:] != (3,):
        raise ValueError(f"opensim_to_z_up expects a last axis of length 3, got shape {p.shape}")
    out = np.empty_like(p)
    out[..., 0] = p[..., 0]
    out[..., 1] = -p[..., 2]
    out[..., 2] = p[..., 1]
    return out

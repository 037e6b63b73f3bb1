"""OpenSim's ``ground_pelvis`` coordinates from the pelvis frame of the model's z-up world.

OpenSim ground: x forward, y up, z right; the world: x forward, y left, z up (see :func:`models.io.axes
.opensim_to_z_up`).  The pelvis angles are body-fixed Z-X-Y (tilt, list, rotation), rad; the origin in m.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["T_OSIM_TO_ZUP", "pelvis_opensim"]

#: OpenSim ground (x fwd, y up, z right) -> world z up (x fwd, y left, z up); see models.io.axes.opensim_to_z_up
T_OSIM_TO_ZUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def pelvis_opensim(xmat: np.ndarray, xpos: np.ndarray, out: np.ndarray) -> None:
    """OpenSim ground_pelvis coordinates from the pelvis frame's world pose (z up): tilt, list, rotation
    (body-fixed Z-X-Y), rad, and the origin in OpenSim ground (x fwd, y up, z right), m."""
    r = T_OSIM_TO_ZUP.T @ xmat.reshape(3, 3)
    out[1] = math.asin(max(-1.0, min(1.0, r[2, 1])))
    out[0] = math.atan2(-r[0, 1], r[1, 1])
    out[2] = math.atan2(-r[2, 0], r[2, 2])
    out[3:6] = T_OSIM_TO_ZUP.T @ xpos

"""Parameters, flags and outputs of marker inverse kinematics (:class:`models.kinematics.inverse_kinematics
.InverseKinematics`).

Units: rad for hinge coordinates, m for translations and marker errors; frames as in the IK module (world, z up).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

__all__ = [
    "DEFAULT_COORDINATES",
    "PELVIS_COORDINATES",
    "SOURCE_FRAMES",
    "IKParams",
    "IKStatus",
    "IKFrame",
    "IKTrial",
]

#: Coordinates solved by default besides the free root (the lab's OpenSim IK locks subtalar and mtp).
DEFAULT_COORDINATES: tuple[str, ...] = tuple(
    f"{c}_{s}"
    for s in ("r", "l")
    for c in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle")
)
#: OpenSim ground_pelvis coordinates derived from the solved root (rad, rad, rad, m, m, m).
PELVIS_COORDINATES: tuple[str, ...] = (
    "pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz",
)
#: Accepted ``source_frame`` values of :meth:`InverseKinematics.run`.
SOURCE_FRAMES: tuple[str, ...] = ("opensim_y_up", "z_up")


class IKStatus(enum.IntFlag):
    """Per-frame flags (a frame can carry several)."""

    OK = 0
    MARKERS_MISSING = 1  #: some markers were NaN and dropped for this frame
    TOO_FEW_MARKERS = 2  #: fewer than ``min_markers``: not solved, previous pose held, residuals NaN
    NOT_CONVERGED = 4  #: iteration cap reached before ``max |dq| < tolerance``
    AT_LIMIT = 8  #: at least one solved coordinate ended at a joint limit
    COLD_START = 16  #: solved from the neutral pose (first frame, after reset, or re-initialised)
    REINITIALISED = 32  #: the warm start ended above ``reinit_rms_m`` and a cold start was tried


@dataclass(frozen=True, slots=True)
class IKParams:
    """Parameters of :class:`InverseKinematics` (validated at construction).

    ``coordinates``: hinge/slide joints solved besides the free root.  ``marker_weights``: marker name ->
    weight (default 1.0; 0 ignores the marker).  ``damping_m2``: Levenberg damping lambda added to
    ``J^T W J`` (m^2 per rad^2 or per m^2 of step); it slows, but does not bias, convergence.
    ``tolerance``: converged when the largest step component is below it (rad or m); the final error is
    a few times that (Gauss-Newton converges linearly when the markers do not fit the model exactly).
    ``predict``: warm-start from a constant-velocity extrapolation of the last two solved frames (same
    optimum, fewer iterations) instead of the last solution.
    ``max_step_rad``/``max_step_m``: caps on one iteration's rotation/translation step.
    ``min_markers``: fewer visible markers -> frame not solved.  ``reinit_rms_m``: warm-started frames
    ending with an RMS marker error above this are re-solved from a cold start (the better one is kept).
    ``initial_heading_rad``: root yaw used only when a cold start sees fewer than 3 pelvis markers.
    ``pelvis_body``: body whose frame gives the OpenSim pelvis coordinates.
    """

    coordinates: tuple[str, ...] = DEFAULT_COORDINATES
    marker_weights: Mapping[str, float] = field(default_factory=dict)
    damping_m2: float = 1e-5
    max_iterations: int = 30
    initial_max_iterations: int = 300
    tolerance: float = 1e-5
    predict: bool = True
    max_step_rad: float = 0.3
    max_step_m: float = 0.1
    min_markers: int = 4
    reinit_rms_m: float = 0.05
    initial_heading_rad: float = math.pi / 2
    pelvis_body: str = "pelvis"

    def __post_init__(self) -> None:
        object.__setattr__(self, "coordinates", tuple(self.coordinates))
        if len(set(self.coordinates)) != len(self.coordinates):
            raise ValueError(f"IKParams.coordinates has duplicates: {self.coordinates}")
        w = dict(self.marker_weights)
        for k, v in w.items():
            if not (math.isfinite(float(v)) and float(v) >= 0):
                raise ValueError(f"IKParams.marker_weights[{k!r}] must be finite and >= 0, got {v!r}")
        object.__setattr__(self, "marker_weights", MappingProxyType({k: float(v) for k, v in w.items()}))
        for name in ("damping_m2", "tolerance", "max_step_rad", "max_step_m", "reinit_rms_m"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"IKParams.{name} must be finite and > 0, got {v!r}")
        for name in ("max_iterations", "initial_max_iterations", "min_markers"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise ValueError(f"IKParams.{name} must be an integer >= 1, got {v!r}")


@dataclass(slots=True, eq=False)
class IKFrame:
    """Output of :meth:`InverseKinematics.step` (preallocated by :meth:`InverseKinematics.new_frame`).

    ``qpos``: (nq,) the model's full generalised coordinates (free root: position m + quaternion).
    ``coordinates``: (nc,) values named by :attr:`InverseKinematics.coordinate_names`: the OpenSim pelvis
    coordinates (rad, m) then the solved coordinates (rad for hinges, m for slides).
    ``marker_error_m``: (M,) distance model-to-measured marker, NaN where missing; ``marker_used``: (M,).
    ``residual_rms_m``/``residual_max_m``: over the used markers (unweighted), NaN when not solved.
    """

    qpos: np.ndarray
    coordinates: np.ndarray
    marker_error_m: np.ndarray
    marker_used: np.ndarray
    residual_rms_m: float = math.nan
    residual_max_m: float = math.nan
    markers_used: int = 0
    iterations: int = 0
    converged: bool = False
    status: IKStatus = IKStatus.OK


@dataclass(frozen=True, eq=False)
class IKTrial:
    """Output of :meth:`InverseKinematics.run` for N frames and M markers.

    ``coordinates`` (N, nc): rad for angles, m for translations, named by ``coordinate_names``.
    ``status`` holds :class:`IKStatus` values as ints.  ``solve_time_s``: wall time of each ``step``.
    ``markers_not_in_trial``: marker-set markers the trial lacks (NaN throughout);
    ``trial_markers_unused``: trial markers the marker set does not place.
    """

    time_s: np.ndarray
    marker_names: tuple[str, ...]
    coordinate_names: tuple[str, ...]
    coordinates: np.ndarray
    qpos: np.ndarray
    residual_rms_m: np.ndarray
    residual_max_m: np.ndarray
    markers_used: np.ndarray
    iterations: np.ndarray
    status: np.ndarray
    marker_error_m: np.ndarray
    solve_time_s: np.ndarray
    markers_not_in_trial: tuple[str, ...] = ()
    trial_markers_unused: tuple[str, ...] = ()

    @property
    def n_frames(self) -> int:
        return int(self.time_s.shape[0])

    def coordinate(self, name: str) -> np.ndarray:
        """(N,) one coordinate, rad or m."""
        try:
            return self.coordinates[:, self.coordinate_names.index(name)]
        except ValueError:
            raise KeyError(f"no coordinate {name!r}; coordinates: {list(self.coordinate_names)}") from None

    def coordinate_deg(self, name: str) -> np.ndarray:
        """(N,) one angular coordinate in degrees."""
        if name.endswith(("_tx", "_ty", "_tz")):
            raise ValueError(f"{name!r} is a translation (m), not an angle")
        return np.rad2deg(self.coordinate(name))

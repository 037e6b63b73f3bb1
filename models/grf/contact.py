"""Foot contact: the sole points of each foot, each point's contact likelihood, contact state, and the CoP rule.

Point likelihood (module doc of :mod:`models.grf.estimator`)::

    l_j = sigmoid((h0 - h_j) / sh) * sigmoid((v0 - |v_j|) / sv)      h_j: height above the floor (m, z up),
                                                                   v_j: point velocity (m/s)

A foot is in contact with hysteresis (on above ``contact_on``, off below ``contact_off``); offline, contacts shorter
than ``min_contact_s`` are dropped.  CoP per foot: the likelihood x prior weighted mean of its points on the floor,
so it never leaves the foot's support polygon; a foot with no point in contact puts it under its lowest point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.grf.smoothing import true_runs
from models.grf.params import GroundReactionParams

__all__ = [
    "FEET",
    "FootGeometry",
    "FootPoint",
    "cop_batch",
    "cop_weights",
    "drop_short",
    "hysteresis",
    "myoleg_feet",
    "point_likelihood",
    "refine_contact_edges",
    "sigmoid_",
]

#: Order of the feet along every ``(..., 2, ...)`` axis.
FEET: tuple[str, str] = ("right", "left")


@dataclass(frozen=True, slots=True)
class FootPoint:
    """A point of a foot's sole: ``body`` name, ``pos_m`` in that body's frame, CoP ``weight`` prior, ``name``."""

    name: str
    body: str
    pos_m: tuple[float, float, float]
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class FootGeometry:
    """The sole points of one foot (at least one).  Their convex hull on the floor is the foot's support polygon."""

    name: str
    points: tuple[FootPoint, ...]

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError(f"FootGeometry {self.name!r}: needs at least one point")
        for p in self.points:
            if not (math.isfinite(p.weight) and p.weight > 0):
                raise ValueError(f"FootGeometry {self.name!r}: point {p.name!r} weight must be > 0, got {p.weight!r}")


def myoleg_feet() -> tuple[FootGeometry, FootGeometry]:
    """MyoLeg sole points (right, left), read off the foot collision capsules (radius 20 mm, sole at y = -0.02 m in
    the ``calcn`` frame: x forward, y up, z right; mirrored in z on the left).

    heel: the posterior ends of the two calcaneal capsules (x = 0.02, z = -/+ 0.02 m); mt1/mt5: the anterior ends of
    the medial (x = 0.175) and lateral (x = 0.141) capsules; hallux: the toe capsules' anterior underside in ``toes``.
    """

    def foot(side: str, sgn: float) -> FootGeometry:
        return FootGeometry(
            name="right" if side == "r" else "left",
            points=(
                FootPoint("heel_medial", f"calcn_{side}", (0.02, -0.02, -0.02 * sgn), 1.0),
                FootPoint("heel_lateral", f"calcn_{side}", (0.02, -0.02, 0.02 * sgn), 1.0),
                FootPoint("mt1_head", f"calcn_{side}", (0.175, -0.02, -0.025 * sgn), 1.0),
                FootPoint("mt5_head", f"calcn_{side}", (0.141, -0.02, 0.03 * sgn), 1.0),
                FootPoint("hallux", f"toes_{side}", (0.05, -0.018, -0.01 * sgn), 0.5),
            ),
        )

    return foot("r", 1.0), foot("l", -1.0)


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """In place: x <- 1 / (1 + exp(-x)), overflow-safe."""
    np.minimum(x, 60.0, out=x)
    np.maximum(x, -60.0, out=x)
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1.0
    np.reciprocal(x, out=x)
    return x


def point_likelihood(pts: np.ndarray, vel: np.ndarray, floor: float, p: GroundReactionParams) -> np.ndarray:
    """Point contact likelihood (..., 2P) from positions (m) and velocities (m/s) (..., 2P, 3), floor z (m)."""
    hh = (p.contact_height_m - (pts[..., 2] - floor)) / p.contact_height_scale_m
    vv = (p.contact_speed_m_s - np.linalg.norm(vel, axis=-1)) / p.contact_speed_scale_m_s
    return sigmoid_(hh) * sigmoid_(vv)


def hysteresis(lik: np.ndarray, on: float, off: float) -> np.ndarray:
    """Contact (N, 2) bool from foot likelihoods (N, 2): on above ``on``, off below ``off``, start at 0.5."""
    n = lik.shape[0]
    out = np.zeros(lik.shape, bool)
    for f in range(lik.shape[1]):
        state = bool(lik[0, f] >= 0.5)
        for k in range(n):
            v = lik[k, f]
            if state and v < off:
                state = False
            elif not state and v > on:
                state = True
            out[k, f] = state
    return out


def refine_contact_edges(contact: np.ndarray, lik: np.ndarray, onset_level: float | None,
                         offset_level: float | None, max_frames: int | None = None) -> np.ndarray:
    """Contact (N, 2) bool with each contact's edges moved to where the foot likelihood (N, 2) crossed the given
    levels (offline only: it needs frames on both sides).  The hysteresis confirms a contact when the likelihood
    passes ``contact_on`` and ends it below ``contact_off``; the foot was already loading from the last rise above
    ``onset_level`` (start moved back) and had stopped carrying load after the last frame above ``offset_level``
    (end moved forward, the contact keeping at least its first frame).  Contacts cut by either end of the trial keep
    that edge.  ``None`` leaves an edge as the hysteresis put it.  ``max_frames``: no edge moves by more (a
    likelihood hovering near the floor on noisy input must not stretch a contact into the swing).

    On the shared lab trials, in the kinematics' time base (the PS plates lag the markers by 17 ms,
    :mod:`models.grf.plate_check`), the hysteresis' onsets come 17 ms (PS) and 16 ms (DM) after the plates' and its
    ends 4 ms (PS) and 6 ms (DM) after.  Both levels are chosen on PS alone (mean error 0 ms: onset 0.3, offset 0.5)
    and held out on DM, where they give +3 ms and +4 ms."""
    c = contact.copy()
    n = c.shape[0]
    cap = n if max_frames is None else int(max_frames)
    for f in range(c.shape[1]):
        for a, b in true_runs(contact[:, f]):
            if onset_level is not None and a > 0:
                j = a - 1
                while j >= max(0, a - cap) and not c[j, f] and lik[j, f] > onset_level:
                    c[j, f] = True
                    j -= 1
            if offset_level is not None and b < n:
                j = b - 1
                while j > max(a, b - 1 - cap) and lik[j, f] < offset_level:
                    c[j, f] = False
                    j -= 1
    return c


def drop_short(contact: np.ndarray, min_frames: int) -> np.ndarray:
    """Contact (N, 2) without interior contacts shorter than ``min_frames`` (runs at either end are kept)."""
    c = contact.copy()
    n = c.shape[0]
    for f in range(c.shape[1]):
        for a, b in true_runs(c[:, f]):
            if b - a < min_frames and not (a == 0 or b == n):
                c[a:b, f] = False
    return c


def cop_weights(pts: np.ndarray, lik_pt: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """CoP weights (N, 2, P) of each foot's points (each row sums to 1) from raw points (N, 2P, 3), point
    likelihoods (N, 2P) and priors ``weight`` (2, P): likelihood x prior, normalised; all on the lowest point of a
    foot with no weight."""
    n = pts.shape[0]
    P = weight.shape[1]
    pp = pts.reshape(n, 2, P, 3)
    w = lik_pt.reshape(n, 2, P) * weight
    ws = w.sum(axis=-1)
    safe = ws > 1e-9
    wn = np.where(safe[..., None], w / np.where(safe, ws, 1.0)[..., None], 0.0)
    lowest = np.argmin(pp[..., 2], axis=-1)  # (n, 2)
    onehot = np.zeros_like(w)
    np.put_along_axis(onehot, lowest[..., None], 1.0, axis=-1)
    return np.where(safe[..., None], wn, onehot)


def cop_batch(pts: np.ndarray, lik_pt: np.ndarray, weight: np.ndarray, floor: float) -> np.ndarray:
    """CoP (N, 2, 3) per foot from raw points (N, 2P, 3), point likelihoods (N, 2P) and priors ``weight`` (2, P):
    the likelihood x prior weighted mean of the points on the floor (under the lowest point if no weight)."""
    n = pts.shape[0]
    P = weight.shape[1]
    pp = pts.reshape(n, 2, P, 3)
    wn = cop_weights(pts, lik_pt, weight)
    cop = np.empty((n, 2, 3))
    cop[..., :2] = np.einsum("nfp,nfpi->nfi", wn, pp[..., :2])
    cop[..., 2] = floor
    return cop

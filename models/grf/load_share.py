"""Load share: how much of the whole-body external force F_ext each foot carries (right foot's share, 0..1).

Single support: all of it on the stance foot.  Double support: the trailing foot's share falls from 1 to 0 over the
interval (Ren, Jones & Howard 2008, J Biomech 41:2750, "smooth transition assumption"), ``"linear"`` or
``"cosine"`` in ``s = (k - k0 + 1) / (k1 - k0 + 2)``.  Offline (:func:`offline_share`) the interval is known;
in real time (:class:`PhaseTracker`) its duration is predicted as the last completed one.  Both feet down from
the same frame: the rear foot along the COM velocity trails (faster than 0.2 m/s), else the static split
(:func:`static_share`).  Neither foot down: by likelihood.  Rules and sources: :mod:`models.grf.estimator`.
"""

from __future__ import annotations

import math

import numpy as np

from models.grf.smoothing import true_runs
from models.grf.params import GroundReactionParams

__all__ = ["PhaseTracker", "offline_share", "rear_foot", "static_share", "transition_shape"]


def transition_shape(s: float, kind: str) -> float:
    """Trailing foot's share at ``s`` in [0, 1] of double support (clipped): ``1 - s`` or ``(1 + cos(pi s)) / 2``."""
    s = min(max(s, 0.0), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * s)) if kind == "cosine" else 1.0 - s


def rear_foot(com_vel: np.ndarray, cop: np.ndarray, min_speed_m_s: float = 0.2) -> int:
    """Index of the foot whose CoP is further back along the horizontal COM velocity; -1 if slower than
    ``min_speed_m_s`` (standing: no trailing foot)."""
    vx, vy = float(com_vel[0]), float(com_vel[1])
    sp = math.hypot(vx, vy)
    if sp < min_speed_m_s:
        return -1
    dr = (cop[0, 0] - cop[1, 0]) * vx + (cop[0, 1] - cop[1, 1]) * vy
    return 0 if dr < 0 else 1


def static_share(c: np.ndarray, cop: np.ndarray) -> float:
    """Share of the right foot that balances the COM statically between the two CoPs (floor plane)."""
    dx = cop[0, 0] - cop[1, 0]
    dy = cop[0, 1] - cop[1, 1]
    d2 = dx * dx + dy * dy
    if d2 < 1e-12:
        return 0.5
    s = ((c[0] - cop[1, 0]) * dx + (c[1] - cop[1, 1]) * dy) / d2
    return min(max(s, 0.0), 1.0)


def offline_share(contact: np.ndarray, lik: np.ndarray, cop: np.ndarray, com: np.ndarray, com_vel: np.ndarray,
                   p: GroundReactionParams, rate: float) -> np.ndarray:
    """Right-foot share of F_ext per frame, knowing the whole segment (zero-lag path)."""
    n = contact.shape[0]
    share = np.empty(n)
    cr, cl = contact[:, 0], contact[:, 1]
    share[cr & ~cl] = 1.0
    share[cl & ~cr] = 0.0
    none = ~cr & ~cl
    tot = lik[:, 0] + lik[:, 1]
    share[none] = np.where(tot[none] > 1e-12, lik[none, 0] / np.where(tot[none] > 1e-12, tot[none], 1.0), 0.5)
    n_def = max(1, round(p.double_support_s * rate))
    starts = [_run_starts(contact[:, f]) for f in (0, 1)]
    for a, b in true_runs(cr & cl):
        k1 = b - 1
        # trailing foot: its contact started earlier; else the one that lifts first at the end
        sr, sl_ = starts[0][a], starts[1][a]
        trail = -1
        if sr != sl_:
            trail = 0 if sr < sl_ else 1
        elif b < n:
            trail = 0 if not cr[b] else (1 if not cl[b] else -1)
        if trail < 0:
            trail = rear_foot(com_vel[a], cop[a])
        if trail < 0:
            for k in range(a, b):
                share[k] = static_share(com[k], cop[k])
            continue
        k0 = a
        if a == 0 and b < n:
            k0 = min(a, k1 + 1 - n_def)
        if b == n and a > 0:
            k1 = max(k1, a - 1 + n_def)
        for k in range(a, b):
            s = (k - k0 + 1) / (k1 - k0 + 2)
            st = transition_shape(s, p.transition)
            share[k] = st if trail == 0 else 1.0 - st
    return share


def _run_starts(mask: np.ndarray) -> np.ndarray:
    """For each frame, the index where the current run of True began (n for False frames)."""
    n = mask.size
    out = np.full(n, n, dtype=np.intp)
    start = -1
    for k in range(n):
        if mask[k]:
            if start < 0:
                start = k
            out[k] = start
        else:
            start = -1
    return out


class PhaseTracker:
    """Real-time contact phases and load share (causal; module doc)."""

    def __init__(self, p: GroundReactionParams, rate: float) -> None:
        self.p = p
        self.h = 1.0 / rate
        self.reset()

    def reset(self) -> None:
        """No foot in contact yet; the next double support is predicted to last ``double_support_s``."""
        self.contact = [False, False]
        self.start = [math.nan, math.nan]
        self.first = True
        self.ds = False
        self.ds_t0 = 0.0
        self.trail = -1
        self.t_pred = self.p.double_support_s

    def update(self, t: float, lr: float, ll: float, com: np.ndarray, com_vel: np.ndarray, cop: np.ndarray) -> float:
        """Frame at ``t`` (s) with foot likelihoods ``lr``, ``ll``, COM and COM velocity (3,), CoPs (2, 3): returns
        the right foot's share and updates :attr:`contact` (right, left)."""
        p = self.p
        for f, v in ((0, lr), (1, ll)):
            st = self.contact[f]
            if self.first:
                new = v >= 0.5
            elif st:
                new = not (v < p.contact_off)
            else:
                new = v > p.contact_on
            if new and not st:
                self.start[f] = t
            self.contact[f] = new
        self.first = False
        cr, cl = self.contact
        if cr and cl:
            if not self.ds:
                self.ds = True
                self.ds_t0 = t
                a, b = self.start
                self.trail = -1 if a == b else (0 if a < b else 1)
            if self.trail < 0:  # both landed together (start of a recording): the rear foot, if walking
                self.trail = rear_foot(com_vel, cop)
            if self.trail < 0:
                return static_share(com, cop)
            s = (t - self.ds_t0 + self.h) / (self.t_pred + self.h)
            st = transition_shape(s, p.transition)
            return st if self.trail == 0 else 1.0 - st
        if self.ds:
            if self.trail >= 0:
                dur = t - self.ds_t0
                lo, hi = p.double_support_range_s
                if lo <= dur <= hi:
                    self.t_pred = dur
            self.ds = False
        if cr:
            return 1.0
        if cl:
            return 0.0
        tot = lr + ll
        return lr / tot if tot > 1e-12 else 0.5

"""Velocity-table check of one AK drive: reported velocity vs the derivative of reported position.

A drive whose firmware uses another velocity range than the MIT table we decode with (e.g. AK80-9
V2 replies read with the V1.1 table) reports velocities scaled by ``true_range / table_range``
while its positions stay right.  :class:`VelocityTableCheck` collects, from successive valid
replies, the ratio ``dp / (v_avg * dt)`` (position change over the trapezoid of the two
reported velocities times the time between the reads that received them) and judges its median.

All values are in the MIT frame of the drive (output shaft, rad, rad/s); times are the caller's
monotonic cycle times (ns).  Used by :class:`firmware_bridge.ak_can.AkCanDrive`, once per reply.

Imports: stdlib and :mod:`firmware_bridge.ak_mit`, :mod:`firmware_bridge.motor_tables` only.
"""
from __future__ import annotations

import statistics

from .ak_mit import quantum
from .motor_tables import MitLimits

__all__ = ["VelocityTableCheck", "RATIO_RING"]

#: Per-pair ratios kept for the median (the most recent ones).
RATIO_RING = 1024
_MAX_PAIR_NS = 50_000_000  # replies further apart than 50 ms make no pair


class VelocityTableCheck:
    """Pairs of successive replies of one drive and the verdict on its velocity table.

    A pair counts only while moving smoothly: ``|v_avg| >= 5`` velocity quanta, a velocity change
    between the two replies of at most 25 %, no position wrap (``|dp|`` under half the range) or
    saturation (both positions a quantum inside the range), and regular reply spacing (within
    +/-50 % of the running mean spacing).
    """

    __slots__ = ("limits", "t_ns", "p", "v", "dt_ns", "sxy", "sxx", "n", "ratios",
                 "v_min_motion", "p_half_span", "p_edge")

    def __init__(self, limits: MitLimits) -> None:
        self.limits = limits
        self.v_min_motion = 5.0 * quantum(limits, "velocity_rad_s")
        self.p_half_span = 0.5 * (limits.p_max - limits.p_min)
        self.p_edge = (limits.p_min + quantum(limits, "position_rad"), limits.p_max - quantum(limits, "position_rad"))
        self.restart()
        self.sxy = self.sxx = 0.0
        self.n = 0
        self.ratios = [0.0] * RATIO_RING   # per-pair dp / (v_avg dt), ring (n % size)

    def restart(self) -> None:
        """Forget the previous reply (after a zero: the next one starts a new pair); keep the pairs."""
        self.t_ns: int | None = None
        self.p = self.v = 0.0
        self.dt_ns = 0

    def reset(self) -> None:
        """Forget everything collected so far (e.g. after changing tables)."""
        self.restart()
        self.sxy = self.sxx = 0.0
        self.n = 0
        self.ratios[:] = [0.0] * RATIO_RING

    def add(self, t_ns: int, p: float, v: float) -> None:
        """One valid reply: position ``p`` rad and velocity ``v`` rad/s (MIT frame), read at ``t_ns``."""
        pt = self.t_ns
        if pt is not None:
            dt_ns = t_ns - pt
            if 0 < dt_ns <= _MAX_PAIR_NS:
                ref = self.dt_ns  # running mean spacing: skip pairs received late / bunched
                self.dt_ns = dt_ns if ref == 0 else (ref * 7 + dt_ns) >> 3
                if ref == 0 or (ref >> 1) <= dt_ns <= ref + (ref >> 1):
                    dp = p - self.p
                    va = 0.5 * (v + self.v)
                    lo, hi = self.p_edge
                    # smooth motion only: a velocity change of more than a quarter between two replies (an
                    # impact on a joint stop, a reversal, a torque step) breaks the trapezoid rule dp = v_avg dt;
                    # a relative gate is blind to a wrong table, which scales both velocities alike
                    smooth = abs(v - self.v) <= 0.25 * max(abs(v), abs(self.v))
                    if (smooth and abs(va) >= self.v_min_motion and abs(dp) < self.p_half_span
                            and lo < p < hi and lo < self.p < hi):
                        x = va * dt_ns * 1e-9
                        self.sxy += dp * x
                        self.sxx += x * x
                        self.ratios[self.n % RATIO_RING] = dp / x
                        self.n += 1
        self.t_ns = t_ns
        self.p = p
        self.v = v

    def verdict(self, name: str, *, min_samples: int, tolerance: float) -> tuple[bool, str]:
        """``(ok, text)`` for the drive called ``name``: ok only with at least ``min_samples`` pairs and
        ``|r - 1| <= tolerance`` for the median ratio ``r``; too few pairs is not ok ("inconclusive")."""
        lim = self.limits
        if self.n < min_samples or self.sxx <= 0.0:
            return False, (f"{name}: inconclusive, {self.n} moving reply pairs (need {min_samples}); "
                           f"move the joint (|v| >= {self.v_min_motion:.3g} rad/s at the motor)")
        # the median of the per-pair ratios: a wrong table scales every pair alike, while a plant or drive
        # whose replies bunch (a late reply carrying a later state) makes outliers that bias a least-squares fit
        r = statistics.median(self.ratios[:min(self.n, RATIO_RING)])
        if abs(r - 1.0) <= tolerance:
            return True, (f"{name}: ok, position derivative / reported velocity = {r:.4f} over {self.n} pairs "
                          f"({lim.model} {lim.firmware} V range +/-{lim.v_max:g} rad/s)")
        return False, (f"{name}: WRONG velocity table? position derivative / reported velocity = {r:.4f} "
                       f"over {self.n} pairs (tolerance {tolerance:g}); the drive's V range looks like "
                       f"+/-{lim.v_max * r:.4g} rad/s, the table ({lim.model} {lim.firmware}) says "
                       f"+/-{lim.v_max:g}: check the firmware version")

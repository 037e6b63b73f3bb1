"""The one place where the assistance controller limits its torque command.

Every strategy in :mod:`controllers.assistance` hands its raw request to a :class:`CommandLimiter`,
which, per step of length ``dt_s``:

1. replaces a non-finite request (NaN, +-inf) by a target of zero and raises the ``NONFINITE_REQUEST`` flag;
2. clips the target to ``+-torque_limit_nm``;
3. moves the output towards the target by at most ``slew_limit_nm_per_s * dt`` where
   ``dt = min(dt_s, max_dt_s)``; a non-finite or non-positive ``dt_s`` gives ``dt = 0`` (the output is
   held) and raises ``BAD_DT``.

So whatever the input: ``|out| <= torque_limit_nm`` and ``|out - previous| <= slew_limit_nm_per_s *
min(max(dt_s, 0), max_dt_s)``; a bad request ramps to zero instead of stepping there. The flags are
per step (not latched): the safety supervisor in the torque loop is the one that latches faults.
Units: N*m at the joint, s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntFlag

#: Hard ceiling of any joint torque command (N*m at the joint): the actuators' rated peak with the exoskeleton's
#: gearing. Every configured or derived torque limit (device joints, assistance, phase-profile peak, ROS parameters)
#: is validated against it, so no setting can ask the drive for more than the hardware is built to deliver.
MAX_TORQUE_NM = 150.0
#: Hard ceiling of any torque slew limit (N*m/s at the joint): bounds how fast a command may change, so that even a
#: mis-set limit cannot produce a torque step the wearer's joint and the cuff could not follow safely.
MAX_SLEW_NM_PER_S = 5000.0


class LimitFlag(IntFlag):
    """What the limiter did to this step's request (bit set)."""

    NONE = 0
    NONFINITE_REQUEST = 1   # NaN/inf request replaced by zero
    TORQUE_CAPPED = 2       # request beyond +-torque_limit_nm
    SLEW_LIMITED = 4        # the step was shortened by the slew limit
    BAD_DT = 8              # dt non-finite or <= 0: output held


@dataclass(frozen=True, slots=True)
class CommandLimits:
    """Limits of one joint's assistance command."""

    torque_limit_nm: float
    slew_limit_nm_per_s: float
    max_dt_s: float = 0.1        # a longer step (a stall) does not buy a larger jump

    def __post_init__(self) -> None:
        for name, hi in (("torque_limit_nm", MAX_TORQUE_NM), ("slew_limit_nm_per_s", MAX_SLEW_NM_PER_S),
                         ("max_dt_s", 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and 0.0 < v <= hi):
                raise ValueError(f"CommandLimits.{name} = {v!r}: allowed 0 < {name} <= {hi}")


class CommandLimiter:
    """Torque cap, slew limit and non-finite guard; ``step(requested_nm, dt_s) -> (out_nm, flags)``."""

    __slots__ = ("limits", "output_nm", "nonfinite_count")

    def __init__(self, limits: CommandLimits, initial_nm: float = 0.0) -> None:
        self.limits = limits
        lim = limits.torque_limit_nm
        self.output_nm = min(lim, max(-lim, initial_nm)) if math.isfinite(initial_nm) else 0.0
        self.nonfinite_count = 0

    def reset(self, value_nm: float = 0.0) -> None:
        """Set the held output (clipped; non-finite -> 0)."""
        lim = self.limits.torque_limit_nm
        self.output_nm = min(lim, max(-lim, value_nm)) if math.isfinite(value_nm) else 0.0

    def step(self, requested_nm: float, dt_s: float) -> tuple[float, LimitFlag]:
        lim = self.limits
        flags = LimitFlag.NONE
        try:
            target = float(requested_nm)
        except (TypeError, ValueError):
            target = math.nan
        if not math.isfinite(target):
            target = 0.0
            flags |= LimitFlag.NONFINITE_REQUEST
            self.nonfinite_count += 1
        if target > lim.torque_limit_nm:
            target = lim.torque_limit_nm
            flags |= LimitFlag.TORQUE_CAPPED
        elif target < -lim.torque_limit_nm:
            target = -lim.torque_limit_nm
            flags |= LimitFlag.TORQUE_CAPPED
        try:
            dt = float(dt_s)
        except (TypeError, ValueError):
            dt = math.nan
        if not (math.isfinite(dt) and dt > 0.0):
            dt = 0.0
            flags |= LimitFlag.BAD_DT
        dt = min(dt, lim.max_dt_s)
        max_step = lim.slew_limit_nm_per_s * dt
        prev = self.output_nm
        delta = target - prev
        if delta > max_step:
            out = prev + max_step
            flags |= LimitFlag.SLEW_LIMITED
        elif delta < -max_step:
            out = prev - max_step
            flags |= LimitFlag.SLEW_LIMITED
        else:
            out = target
        # belt and braces: the cap holds even if the arithmetic above rounds past it
        out = min(lim.torque_limit_nm, max(-lim.torque_limit_nm, out))
        self.output_nm = out
        return out, flags

"""Safety supervisor: the one place where torque commands are limited, faded and latched.

Applied to **commands** in the torque loop, independent of the estimation code
(this module imports nothing of the project). Every cycle::

    requested torque  --(NaN/inf check, staleness, joint envelope, drive health)-->  faults
    requested torque  --clip to +-torque_limit--> --slew limit--> --fade gain-->  commanded torque

States (only ACTIVE lets torque through)::

    INACTIVE --activate()--> ACTIVE --deactivate()--> FADING --(fade done)--> INACTIVE
                               |  any fault (latched)
                               v
                             FAULTED (fades, then holds zero) --reset_faults() when at zero--> INACTIVE

Fade: when ACTIVE ends, the command ramps linearly from the value it had to exactly
zero in ``fade_time_s`` (default 0.1 s). That ramp is the only way out of ACTIVE,
so a fault never produces a step; its rate is at most ``torque_limit / fade_time``.
Units: N*m at the joint, rad, rad/s, s, ns for monotonic timestamps.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple, Sequence


class FaultKind(str, Enum):
    """What went wrong. Every kind latches and fades torque to zero."""

    STALE = "STALE"                      # an input (pipeline command, motor reply, sensor) is too old
    NAN = "NAN"                          # a non-finite value in a command or a measurement
    DEADLINE = "DEADLINE"                # the torque loop missed deadlines
    BUS_OFF = "BUS_OFF"
    BUS_ERROR = "BUS_ERROR"              # error frames, ENOBUFS on send
    TIMEOUT = "TIMEOUT"                  # a drive stopped replying
    OVER_TEMPERATURE = "OVER_TEMPERATURE"
    DRIVE_ERROR = "DRIVE_ERROR"          # the drive reported an error code
    POSITION_ENVELOPE = "POSITION_ENVELOPE"
    VELOCITY_ENVELOPE = "VELOCITY_ENVELOPE"
    ESTOP = "ESTOP"
    PARENT_LOST = "PARENT_LOST"          # the process feeding commands died
    MALFORMED = "MALFORMED"              # malformed frames from a drive or sensor
    CONFIG = "CONFIG"                    # a malformed input that passed no validation


def fault_kind(kind: str) -> FaultKind:
    """A fault kind as reported by a drive or a message (its string value) as a :class:`FaultKind`; an unknown
    string counts as a bus error, never ignored."""
    try:
        return FaultKind(kind)
    except ValueError:
        return FaultKind.BUS_ERROR


class Fault(NamedTuple):
    """A fault as a value: it travels to the supervisor, never thrown across threads."""

    source: str       # "pipeline", "can.knee_r", "serial.imu", "torque_loop", "operator"
    kind: FaultKind
    value: float      # what was seen, SI units (s for STALE, degC, rad, ...)
    t_ns: int         # monotonic time it was seen


class SafetyState(str, Enum):
    INACTIVE = "INACTIVE"
    ACTIVE = "ACTIVE"
    FADING = "FADING"
    FAULTED = "FAULTED"


@dataclass(frozen=True, slots=True)
class JointLimits:
    """Limits enforced on one joint's command and state."""

    name: str
    torque_limit_nm: float
    slew_limit_nm_per_s: float
    position_min_rad: float
    position_max_rad: float
    velocity_limit_rad_s: float

    def __post_init__(self) -> None:
        for field_name in ("torque_limit_nm", "slew_limit_nm_per_s", "velocity_limit_rad_s"):
            v = getattr(self, field_name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"JointLimits({self.name}).{field_name} = {v!r}: must be finite and > 0")
        if not self.position_min_rad < self.position_max_rad:
            raise ValueError(f"JointLimits({self.name}): position_min_rad = {self.position_min_rad} must be < "
                             f"position_max_rad = {self.position_max_rad}")


@dataclass(frozen=True, slots=True)
class SafetyParams:
    joints: tuple[JointLimits, ...]
    fade_time_s: float = 0.1
    stale_after_s: float = 0.1
    motor_temperature_limit_c: float = 80.0

    def __post_init__(self) -> None:
        if not self.joints:
            raise ValueError("SafetyParams.joints: at least one joint is required")
        if not (0.0 < self.fade_time_s <= 0.5):
            raise ValueError(f"SafetyParams.fade_time_s = {self.fade_time_s!r}: allowed 0 < fade_time_s <= 0.5 s")
        if not (0.0 < self.stale_after_s <= 1.0):
            raise ValueError(f"SafetyParams.stale_after_s = {self.stale_after_s!r}: allowed 0 < stale_after_s <= 1 s")


class SafetyEvent(NamedTuple):
    """A state change or a fault, for the log."""

    t_ns: int
    what: str          # "fault", "state", "reset", "reset_refused"
    state: SafetyState
    fault: Fault | None
    detail: str


class SafetySupervisor:
    """Limits, slew, staleness, envelope and drive checks, latched faults and the fade to zero."""

    def __init__(self, params: SafetyParams, event_capacity: int = 4096) -> None:
        self.params = params
        n = len(params.joints)
        self._limit = [j.torque_limit_nm for j in params.joints]
        self._slew = [j.slew_limit_nm_per_s for j in params.joints]
        self._fade_ns = int(params.fade_time_s * 1e9)
        self._stale_ns = int(params.stale_after_s * 1e9)
        self.state = SafetyState.INACTIVE
        self.commanded = [0.0] * n            # last output, N*m
        self._fade_from = [0.0] * n
        self._fade_start_ns = 0
        self._last_t_ns: int | None = None
        self.latched: list[Fault] = []
        self.events: deque[SafetyEvent] = deque(maxlen=event_capacity)
        self._unread_events = 0
        self.fade_gain = 0.0                  # 1 while ACTIVE, ramps to 0 while fading

    # ------------------------------------------------------------------ transitions
    def activate(self, t_ns: int) -> bool:
        """INACTIVE -> ACTIVE; refused (False) with a latched fault or while fading."""
        if self.state is not SafetyState.INACTIVE or self.latched:
            self._event(t_ns, "activate_refused", None, f"state {self.state.value}, {len(self.latched)} latched fault(s)")
            return False
        self._set_state(SafetyState.ACTIVE, t_ns, "activate")
        return True

    def deactivate(self, t_ns: int, reason: str = "operator") -> None:
        """Leave ACTIVE without a fault: fade to zero, then INACTIVE."""
        if self.state is SafetyState.ACTIVE:
            self._begin_fade(t_ns)
            self._set_state(SafetyState.FADING, t_ns, f"deactivate: {reason}")

    def report_fault(self, fault: Fault) -> None:
        """Latch ``fault`` and fade. Repeats of an already latched (source, kind) are not re-logged."""
        for f in self.latched:
            if f.source == fault.source and f.kind == fault.kind:
                return
        self.latched.append(fault)
        self._event(fault.t_ns, "fault", fault, f"{fault.source} {fault.kind.value} value={fault.value:.6g}")
        if self.state is SafetyState.ACTIVE:
            self._begin_fade(fault.t_ns)
        elif self.state is SafetyState.INACTIVE:
            self._fade_from = [0.0] * len(self._limit)
        self._set_state(SafetyState.FAULTED, fault.t_ns, f"fault {fault.kind.value}")

    def reset_faults(self, t_ns: int, who: str = "operator") -> bool:
        """Clear latched faults; allowed only once the command is exactly zero. Logged either way."""
        if self.state is SafetyState.FAULTED and any(c != 0.0 for c in self.commanded):
            self._event(t_ns, "reset_refused", None, f"{who}: torque not yet zero")
            return False
        cleared = ", ".join(f"{f.source}:{f.kind.value}" for f in self.latched) or "none"
        self.latched.clear()
        self._event(t_ns, "reset", None, f"{who} cleared {cleared}")
        if self.state is SafetyState.FAULTED:
            self._set_state(SafetyState.INACTIVE, t_ns, "fault reset")
        return True

    def note(self, t_ns: int, detail: str) -> None:
        """Log an informational event (no state change), e.g. a start-up check's outcome."""
        self._event(t_ns, "note", None, detail)

    # ------------------------------------------------------------------ checks
    def check_command_age(self, age_ns: int, t_ns: int, source: str = "pipeline") -> None:
        """Staleness watchdog on the pipeline command: ``age_ns`` from the capture time of the frame it came
        from (``controllers.torque_cycle``), so a frozen camera is stale however often the estimator writes."""
        if age_ns > self._stale_ns and self.state is SafetyState.ACTIVE:
            self.report_fault(Fault(source, FaultKind.STALE, age_ns * 1e-9, t_ns))

    def check_joint_state(self, index: int, position_rad: float, velocity_rad_s: float, t_ns: int,
                          temperature_c: float | None = None, error_code: int | None = None,
                          source: str | None = None) -> None:
        """Envelope, temperature and drive error checks on one joint's measured state."""
        j = self.params.joints[index]
        src = source or f"joint.{j.name}"
        if not (math.isfinite(position_rad) and math.isfinite(velocity_rad_s)):
            self.report_fault(Fault(src, FaultKind.NAN, position_rad if not math.isfinite(position_rad) else velocity_rad_s, t_ns))
            return
        if position_rad < j.position_min_rad or position_rad > j.position_max_rad:
            self.report_fault(Fault(src, FaultKind.POSITION_ENVELOPE, position_rad, t_ns))
        if abs(velocity_rad_s) > j.velocity_limit_rad_s:
            self.report_fault(Fault(src, FaultKind.VELOCITY_ENVELOPE, velocity_rad_s, t_ns))
        if temperature_c is not None and temperature_c > self.params.motor_temperature_limit_c:
            self.report_fault(Fault(src, FaultKind.OVER_TEMPERATURE, temperature_c, t_ns))
        if error_code:
            self.report_fault(Fault(src, FaultKind.DRIVE_ERROR, float(error_code), t_ns))

    # ------------------------------------------------------------------ the command path
    def update(self, requested_nm: Sequence[float], t_ns: int, out: list[float] | None = None) -> list[float]:
        """Turn the requested torques into safe commanded torques at time ``t_ns``.

        Returns (and writes into ``out`` if given) one value per joint, N*m. Guarantees,
        whatever the input: |out| <= torque_limit; while ACTIVE the change per call is at
        most slew_limit * dt; after leaving ACTIVE the output is zero within fade_time.
        """
        n = len(self._limit)
        if len(requested_nm) != n:
            self.report_fault(Fault("pipeline", FaultKind.CONFIG, float(len(requested_nm)), t_ns))
        dt = 0.0 if self._last_t_ns is None else max(0.0, (t_ns - self._last_t_ns) * 1e-9)
        self._last_t_ns = t_ns
        if self.state is SafetyState.ACTIVE:
            for i in range(min(n, len(requested_nm))):
                r = requested_nm[i]
                if not math.isfinite(r):
                    self.report_fault(Fault("pipeline", FaultKind.NAN, float(r), t_ns))
                    break
        cmd = self.commanded
        if self.state is SafetyState.ACTIVE:
            self.fade_gain = 1.0
            for i in range(n):
                lim = self._limit[i]
                target = min(lim, max(-lim, float(requested_nm[i])))
                step = self._slew[i] * dt
                prev = cmd[i]
                cmd[i] = prev + min(step, max(-step, target - prev))
        elif self.state is SafetyState.INACTIVE:
            self.fade_gain = 0.0
            for i in range(n):
                cmd[i] = 0.0
        else:  # FADING or FAULTED: linear ramp from the value at fade start to exactly zero
            elapsed = t_ns - self._fade_start_ns
            gain = 0.0 if elapsed >= self._fade_ns else max(0.0, 1.0 - elapsed / self._fade_ns)
            self.fade_gain = gain
            for i in range(n):
                cmd[i] = self._fade_from[i] * gain
            if gain == 0.0 and self.state is SafetyState.FADING:
                self._set_state(SafetyState.INACTIVE, t_ns, "fade complete")
        for i in range(n):  # belt and braces: the limit holds even if the logic above is wrong
            lim = self._limit[i]
            c = cmd[i]
            if not (-lim <= c <= lim):   # also catches NaN
                cmd[i] = 0.0 if c != c else min(lim, max(-lim, c))
        if out is not None:
            out[:n] = cmd
            return out
        return cmd

    # ------------------------------------------------------------------ internals
    def _begin_fade(self, t_ns: int) -> None:
        self._fade_from = list(self.commanded)
        self._fade_start_ns = t_ns

    def _set_state(self, state: SafetyState, t_ns: int, detail: str) -> None:
        if state is not self.state:
            self.state = state
            self._event(t_ns, "state", None, detail)

    def _event(self, t_ns: int, what: str, fault: Fault | None, detail: str) -> None:
        self.events.append(SafetyEvent(t_ns, what, self.state, fault, detail))
        self._unread_events += 1

    def pop_events(self) -> list[SafetyEvent]:
        """Events since the last call (for telemetry), oldest first."""
        k = min(self._unread_events, len(self.events))
        self._unread_events = 0
        return list(self.events)[-k:] if k else []

    @property
    def stale_after_ns(self) -> int:
        return self._stale_ns

    @property
    def fade_complete(self) -> bool:
        return all(c == 0.0 for c in self.commanded)

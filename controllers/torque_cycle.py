"""One torque-loop cycle (default 500 Hz), the same for every runner.

``TorqueCycle`` is what the two-process torque loop (:mod:`runtime.control.torque_loop`), the ROS 2
safety and CAN-bridge nodes (:mod:`runtime.ros2.nodes`) and the HIL host (:mod:`hil.cuff_validation`)
run each cycle. Pure and deterministic: every time is passed in (monotonic ns), nothing is read from a
clock, a bus or shared memory; the runner brings the inputs and takes the outputs. One cycle::

    new_command(...)        when the estimator published one: previous <- latest, latest <- this
    interpolate(now)        requested torque: linear from the previous to the latest command over one
                            estimation period (or hold); the estimator's knee angle the same way
    observe_joint(...)      measured joint state: envelope, temperature, drive error checks
    step(now)               staleness FROM CAPTURE (now - capture_ns > stale_after_s: STALE, fade) ->
                            tissue compensator (when configured) -> safety supervisor -> commanded torque

The runner decides the lifecycle (``supervisor.activate`` / ``deactivate``) and reports its drive's and
sensors' faults to ``supervisor``; the supervisor clips and slews whatever the compensator asks.

Knee angle for the compensator: a shank sensor's angle and rate when the runner gives them
(``knee_sensor``), else the estimator's knee angle carried by the command, interpolated to the loop rate
like the torque; its rate is the slope of that interpolation, (latest - previous) / estimation period. That
estimate lags the leg by the capture-to-publish latency plus one estimation period (16.7 ms at 60 Hz). Without
either (a pipeline that estimates no knee angle, the ROS 2 graph's phase-only estimator, before the first
estimate) the measured joint angle and rate stand in (the cuff's deflection ignored, no lag); the cycles per
source are counted in ``knee_source_cycles``, so a run says which one it used.
Units: N*m at the joint, rad, rad/s, ns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Sequence

from controllers.safety import SafetyParams, SafetyState, SafetySupervisor
from controllers.tissue_compensator import TissueCompensator


@dataclass(frozen=True, slots=True)
class TorqueCycleParams:
    """Cycle settings: the supervisor's limits (its ``stale_after_s`` is the age limit from capture), the
    estimation period the interpolation spans (s), ``interpolation`` ``linear`` or ``hold``, the joint
    the tissue compensator acts on (index) and the loop period (s)."""

    safety: SafetyParams
    estimation_period_s: float
    interpolation: str = "linear"
    compensated_joint: int = 0
    cycle_period_s: float = 0.002           # the loop period (s): the compensator's dt on the first cycle

    def __post_init__(self) -> None:
        if not (math.isfinite(self.estimation_period_s) and self.estimation_period_s > 0):
            raise ValueError(f"TorqueCycleParams.estimation_period_s = {self.estimation_period_s!r}: must be > 0")
        if not (math.isfinite(self.cycle_period_s) and self.cycle_period_s > 0):
            raise ValueError(f"TorqueCycleParams.cycle_period_s = {self.cycle_period_s!r}: must be > 0")
        if self.interpolation not in ("linear", "hold"):
            raise ValueError(f"TorqueCycleParams.interpolation = {self.interpolation!r}: allowed 'linear', 'hold'")
        if not 0 <= self.compensated_joint < len(self.safety.joints):
            raise ValueError(f"TorqueCycleParams.compensated_joint = {self.compensated_joint!r}: allowed 0.."
                             f"{len(self.safety.joints) - 1}")


class TorqueCycle:
    """Interpolation, staleness from capture, joint checks, tissue compensation and the safety supervisor.

    Outputs after ``step``, reused (no allocation per cycle): ``requested`` (interpolated command, N*m),
    ``motor_request`` (after the compensator, before the supervisor), ``commanded`` (the supervisor's output,
    what the drive gets), ``stale`` (the command's age from capture is over the limit) and ``age_ns``."""

    def __init__(self, params: TorqueCycleParams, compensator: TissueCompensator | None = None) -> None:
        self.params = params
        self.n = n = len(params.safety.joints)
        self.supervisor = SafetySupervisor(params.safety)
        self.compensator = compensator
        self._linear = params.interpolation == "linear"
        self._period_ns = int(params.estimation_period_s * 1e9)
        self._period_s = self._period_ns * 1e-9
        self._cj = params.compensated_joint
        self._sources = tuple(f"joint.{j.name}" for j in params.safety.joints)
        self.requested = [0.0] * n
        self.motor_request = [0.0] * n
        self.commanded = [0.0] * n
        self._prev = [0.0] * n
        self._latest = [0.0] * n
        self.have_command = False
        self.command_frame = -1
        self.capture_ns = 0
        self.write_ns = 0
        self._knee_prev = math.nan
        self._knee_latest = math.nan
        self.knee_rad = math.nan           # interpolated estimator knee angle (rad)
        self.knee_rad_s = math.nan         # its rate (rad/s)
        self._sensor_knee: tuple[float, float] | None = None
        self.knee_source_cycles = {"sensor": 0, "estimate": 0, "joint": 0}
        self.exo_rad = [0.0] * n           # last measured joint (motor side) angle, rad
        self.exo_rad_s = [0.0] * n
        self.age_ns = 0
        self.stale = False
        self._last_step_ns: int | None = None

    # ------------------------------------------------------------------ inputs
    def new_command(self, frame_index: int, capture_ns: int, write_ns: int, torque_nm: Sequence[float],
                    knee_rad: float = math.nan) -> None:
        """A command the estimator published: per-joint torque (N*m), the capture time of its frame and its
        publish time (monotonic ns), the estimator's knee flexion angle (rad; NaN: none)."""
        if len(torque_nm) != self.n:
            raise ValueError(f"torque_nm: {len(torque_nm)} values for {self.n} joint(s)")
        for i in range(self.n):
            self._prev[i] = self._latest[i] if self.have_command else 0.0
            self._latest[i] = float(torque_nm[i])
        self._knee_prev = self._knee_latest if self.have_command else math.nan
        self._knee_latest = float(knee_rad)
        self.have_command = True
        self.command_frame = int(frame_index)
        self.capture_ns = int(capture_ns)
        self.write_ns = int(write_ns)

    def interpolate(self, now_ns: int) -> None:
        """``requested`` at ``now_ns``: from the previous to the latest command over one estimation period
        after the latest's publish time (``linear``), or the latest (``hold``); the knee angle likewise."""
        if not self.have_command:
            return
        if self._linear:
            alpha = min(1.0, max(0.0, (now_ns - self.write_ns) / self._period_ns))
            for i in range(self.n):
                p = self._prev[i]
                self.requested[i] = p + (self._latest[i] - p) * alpha
        else:
            alpha = 1.0
            for i in range(self.n):
                self.requested[i] = self._latest[i]
        kp, kl = self._knee_prev, self._knee_latest
        if not (math.isnan(kp) or math.isnan(kl)):
            self.knee_rad = kp + (kl - kp) * alpha
            self.knee_rad_s = (kl - kp) / self._period_s if alpha < 1.0 or not self._linear else 0.0
        else:
            self.knee_rad = kl
            self.knee_rad_s = math.nan

    def knee_sensor(self, knee_rad: float, knee_rad_s: float) -> None:
        """A shank sensor's knee angle (rad) and rate (rad/s) for this cycle's compensation (else the estimate)."""
        self._sensor_knee = (knee_rad, knee_rad_s)

    def observe_joint(self, index: int, position_rad: float, velocity_rad_s: float, now_ns: int,
                      temperature_c: float | None = None, error_code: int | None = None,
                      source: str | None = None) -> None:
        """A measured joint state (the motor side): checked by the supervisor, kept for the compensator."""
        self.exo_rad[index] = position_rad
        self.exo_rad_s[index] = velocity_rad_s
        self.supervisor.check_joint_state(index, position_rad, velocity_rad_s, now_ns, temperature_c, error_code,
                                          source=source or self._sources[index])

    # ------------------------------------------------------------------ the cycle
    def check_age(self, now_ns: int) -> None:
        """Staleness from capture: the latest command's frame older than ``stale_after_s`` latches STALE."""
        sup = self.supervisor
        if self.have_command:
            self.age_ns = now_ns - self.capture_ns
            self.stale = self.age_ns > sup.stale_after_ns
            sup.check_command_age(self.age_ns, now_ns)
        else:
            self.age_ns, self.stale = 0, False

    def step(self, now_ns: int, zero_now: bool = False) -> list[float]:
        """Compensate and supervise the requested torque at ``now_ns``; returns ``commanded`` (N*m).
        ``zero_now``: an immediate stop (no fade), every output exactly zero."""
        sup = self.supervisor
        last = self._last_step_ns
        dt_s = (now_ns - last) / 1e9 if last is not None else self.params.cycle_period_s
        self._last_step_ns = now_ns
        mr = self.motor_request
        for i in range(self.n):
            mr[i] = self.requested[i]
        comp = self.compensator
        if comp is not None:
            j = self._cj
            counts = self.knee_source_cycles
            if self._sensor_knee is not None:
                knee, knee_s = self._sensor_knee
                self._sensor_knee = None
                counts["sensor"] += 1
            elif math.isnan(self.knee_rad) or math.isnan(self.knee_rad_s):
                knee, knee_s = self.exo_rad[j], self.exo_rad_s[j]
                counts["joint"] += 1
            else:
                knee, knee_s = self.knee_rad, self.knee_rad_s
                counts["estimate"] += 1
            if sup.state is SafetyState.ACTIVE and dt_s > 0.0:
                mr[j] = comp.step(self.requested[j], knee, knee_s, self.exo_rad[j], self.exo_rad_s[j], dt_s)
            else:
                comp.reset()
        if zero_now:
            for i in range(self.n):
                self.commanded[i] = 0.0
        else:
            sup.update(mr, now_ns, self.commanded)
        return self.commanded

"""Typed configuration, validated at load: device, subject profile, actuator calibration.

Three separate YAML files (examples in ``launch/config/``):

* device (``DeviceConfig``): loop rates, joints and their limits, safety timing,
  real-time settings, bus and plant, telemetry;
* subject (``SubjectProfile``): pseudonymous id, mass, height, side, assistance level;
* calibration (``CalibrationFile``): one entry per actuator (CAN id, motor model and
  firmware, direction, zero offset, gear ratio, torque constant).

Unknown keys, wrong types and out-of-range values are rejected with a
``ConfigError`` whose message names the file, the key, the value and the allowed
range, e.g.::

    device.yaml: torque_loop.rate_hz = 5000: must be <= 1000 (allowed: 100 <= rate_hz <= 1000 Hz)

Units are SI and in the key names (``_hz``, ``_s``, ``_nm``, ``_rad``, ``_kg``, ``_m``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from controllers.command_limits import MAX_SLEW_NM_PER_S, MAX_TORQUE_NM
from models.io.typed_yaml import ConfigError, Strict, format_validation_error, load, parse

__all__ = ["ConfigError", "format_validation_error", "load", "parse"]  # re-exported: the loaders of every config file


_Strict = Strict


# ----------------------------------------------------------------------------- device

class EstimationLoopConfig(_Strict):
    """The vision-to-assistance pipeline loop."""

    rate_hz: Annotated[float, Field(ge=1.0, le=120.0, description="Hz")] = 60.0
    # ground the video landmarks by the fixed-lag model fit (runtime.vision.front_end.FittedGrounding; lag
    # MonocularFitParams.lag_s = 67 ms: 2 frames at 30 fps, 4 at 60) instead of BlazePose's depth; off: a command then
    # gets lag + one camera frame + one estimation cycle old, 117 ms at 30 fps and 100 ms at 60 fps, at or over
    # torque_loop.stale_after_s = 0.1 s (front_end.check_fit_lag refuses it; exo demo on the 30 fps clip with it on
    # faulted STALE at 101.8 ms); a 50 ms window would fit at 60 fps but is 0.5-0.7 deg worse on the synthetic walk
    monocular_fit: bool = False
    # knee contact force: the physics chain (default) or the learned estimator (models.muscles.kcf_learned); physics
    # stays the default until the learned one is shown at least as good (models/artifacts/kcf_learned_v3.json)
    kcf: Literal["physics", "learned"] = "physics"


class TorqueLoopConfig(_Strict):
    """The torque/safety loop that owns the bus."""

    rate_hz: Annotated[float, Field(ge=100.0, le=1000.0, description="Hz")] = 500.0
    interpolation: Literal["linear", "hold"] = "linear"
    stale_after_s: Annotated[float, Field(ge=0.005, le=0.5, description="s; older commands fault STALE")] = 0.1


class SafetyConfig(_Strict):
    """Supervisor timing (per-joint limits are under ``joints``)."""

    fade_time_s: Annotated[float, Field(ge=0.005, le=0.1, description="s; torque reaches zero within this after any fault")] = 0.1
    motor_temperature_limit_c: Annotated[float, Field(ge=20.0, le=120.0, description="degC")] = 80.0
    reply_timeout_s: Annotated[float, Field(ge=0.001, le=0.5, description="s; motor replies older than this fault TIMEOUT")] = 0.05
    velocity_check_s: Annotated[float, Field(ge=0.0, le=60.0, description="s; 0 disables")] = 2.0


class JointConfig(_Strict):
    """One actuated joint and the limits the safety supervisor enforces on its command."""

    name: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")]
    actuator: Annotated[str, Field(min_length=1, description="name of the calibration entry driving this joint")]
    torque_limit_nm: Annotated[float, Field(gt=0.0, le=MAX_TORQUE_NM, description="N*m at the joint")]
    slew_limit_nm_per_s: Annotated[float, Field(gt=0.0, le=MAX_SLEW_NM_PER_S, description="N*m/s")] = 200.0
    position_min_rad: Annotated[float, Field(ge=-3.2, le=3.2, description="rad")] = -0.1
    position_max_rad: Annotated[float, Field(ge=-3.2, le=3.2, description="rad")] = 2.4
    velocity_limit_rad_s: Annotated[float, Field(gt=0.0, le=30.0, description="rad/s")] = 12.0

    @model_validator(mode="after")
    def _range_ordered(self) -> "JointConfig":
        if self.position_min_rad >= self.position_max_rad:
            raise ValueError(
                f"position_min_rad = {self.position_min_rad} must be < position_max_rad = {self.position_max_rad}")
        return self


class RealtimeConfig(_Strict):
    """What to ask of the OS for the torque process (outcome is reported either way)."""

    sched_fifo: bool = True
    torque_priority: Annotated[int, Field(ge=1, le=99)] = 80
    estimation_priority: Annotated[int, Field(ge=1, le=99)] = 50
    torque_cpus: list[Annotated[int, Field(ge=0, le=1023)]] | None = None
    estimation_cpus: list[Annotated[int, Field(ge=0, le=1023)]] | None = None
    lock_memory: bool = True


class BusConfig(_Strict):
    """Where the motor commands go.

    ``sim``: the in-process simulated knee (ideal drive, no CAN). ``socketcan``: a real CAN
    interface (``channel`` e.g. ``can0``). ``udp_multicast``: python-can over IPv4 multicast
    between processes (the HIL rig; ``channel`` is a group in 239.0.0.0/8 and every command
    using it runs in a private network namespace). ``virtual``: python-can in-process bus (tests).
    """

    interface: Literal["sim", "virtual", "udp_multicast", "socketcan"] = "sim"
    channel: Annotated[str, Field(min_length=1, max_length=64)] = "exo0"
    bitrate: Literal[125_000, 250_000, 500_000, 1_000_000] = 1_000_000
    udp_port: Annotated[int, Field(ge=1024, le=65535, description="udp_multicast only")] = 43113
    master_id: Annotated[int, Field(ge=0, le=0x7FF, description="id the drives answer on")] = 0
    estop_can_id: Annotated[int | None, Field(ge=0, le=0x7FF, description="a frame with this id is an e-stop")] = None

    @model_validator(mode="after")
    def _multicast_group(self) -> "BusConfig":
        if self.interface == "udp_multicast":
            parts = self.channel.split(".")
            ok = len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts) and parts[0] == "239"
            if not ok:
                raise ValueError(f"bus.channel = {self.channel!r}: udp_multicast needs an IPv4 group in 239.0.0.0/8 "
                                 "(routed to lo in the private network namespace), e.g. '239.74.0.1'")
        return self


class SerialSensorConfig(_Strict):
    """A sensor board on a serial port (framed COBS + CRC-16 protocol, ``firmware_bridge.serial_protocol``).

    Every sensor has a staleness watchdog in the torque loop. ``role: estop``: a foot-switch-type
    board wired to an e-stop button; any contact bit set is an emergency stop (latched).
    """

    name: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")]
    port_url: Annotated[str, Field(min_length=1, description="pyserial URL or device, e.g. /dev/ttyACM0")]
    baudrate: Annotated[int, Field(ge=9600, le=12_000_000, description="bit/s")] = 921_600
    sensor_type: Literal["imu", "foot_switch", "load_cell"]
    sensor_id: Annotated[int, Field(ge=0, le=255)] = 0
    stale_after_s: Annotated[float, Field(ge=0.002, le=1.0, description="s")] = 0.05
    startup_grace_s: Annotated[float, Field(ge=0.0, le=30.0, description="s to the first sample")] = 2.0
    role: Literal["data", "estop"] = "data"


class TelemetryConfig(_Strict):
    """MCAP log settings."""

    chunk_period_s: Annotated[float, Field(ge=0.05, le=0.5, description="s; data lost after SIGKILL is at most this")] = 0.25
    log_raw_can: bool = True


#: Which strategies read each strategy-specific assistance key (``controllers.assistance``); a key set (to anything but
#: its default) for a configuration whose strategies (``strategy``, ``fallback_strategy``) do not read it is refused.
ASSISTANCE_KEY_STRATEGIES: dict[str, tuple[str, ...]] = {
    "moment_fraction": ("synergy", "proportional"),
    "peak_nm_per_kg": ("phase_profile",),
    "phase_peak": ("phase_profile",),
    "phase_width": ("phase_profile",),
    "gait_phase_source": ("synergy", "phase_profile"),
    "fallback_strategy": ("synergy", "phase_profile"),     # only a strategy that needs the gait phase can fall back
}


class AssistanceConfig(_Strict):
    """Assistance controller (``controllers.assistance``): strategy and its tuning. The clinician's level and
    the body mass come from the subject profile; the limits here may only be tighter than the joint's.

    Every key acts on every strategy it names (``ASSISTANCE_KEY_STRATEGIES``; the others act on all): setting one to
    anything but its default when none of the configured strategies reads it is an error naming the key, the value
    and the strategy (a default is what the strategy would do anyway, so a full dump of a valid file loads again).
    ``extension_only`` acts on every strategy (no flexion torque is ever commanded). ``fallback_strategy``: used
    while the gait phase has not locked for ``phase_lock_timeout_s``. ``confidence_*``: the confidence gate
    (``controllers.confidence_gate``) in front of the limiter, for every strategy."""

    strategy: Literal["synergy", "phase_profile", "proportional"] = "phase_profile"
    joint: Annotated[str | None, Field(description="joint name; default the first joint")] = None
    moment_fraction: Annotated[float, Field(ge=0.0, le=1.0, description="fraction of the biological knee moment at level 1")] = 0.3
    ramp_in_s: Annotated[float, Field(ge=0.0, le=30.0, description="s; also the confidence gate's ramp back up")] = 2.0
    torque_limit_nm: Annotated[float | None, Field(gt=0.0, le=MAX_TORQUE_NM, description="N*m; default the joint's")] = None
    slew_limit_nm_per_s: Annotated[float | None, Field(gt=0.0, le=MAX_SLEW_NM_PER_S, description="N*m/s; default the joint's")] = None
    peak_nm_per_kg: Annotated[float, Field(ge=0.0, le=2.0, description="N*m/kg; phase profile peak at level 1")] = 0.2
    phase_peak: Annotated[float, Field(ge=0.0, le=0.999, description="fraction of the gait cycle")] = 0.12
    phase_width: Annotated[float, Field(ge=0.005, le=0.3, description="fraction of the gait cycle")] = 0.05
    extension_only: bool = True
    gait_phase_source: Literal["kinematics", "grf"] = "kinematics"   # controllers.gait_phase source
    # the strategy used while the gait phase does not lock (it needs none): none, or proportional (gated like any)
    fallback_strategy: Literal["none", "proportional"] = "none"
    # two heel strikes at the longest accepted stride period (controllers.gait_phase: max_period_s = 2.5 s)
    phase_lock_timeout_s: Annotated[float, Field(ge=0.5, le=60.0, description="s without a gait phase lock before the fallback")] = 5.0
    # confidence gate: thresholds are project choices on the confidence in [0, 1] (runtime.estimation.chain)
    confidence_fade_below: Annotated[float, Field(ge=0.0, le=1.0, description="confidence; below it the assistance fades to zero")] = 0.4
    confidence_full_above: Annotated[float, Field(ge=0.0, le=1.0, description="confidence; at or above it full assistance")] = 0.7
    # about one stride (1.0-1.2 s at a self-selected walking speed): a confidence that holds over a whole stride
    confidence_hold_s: Annotated[float, Field(ge=0.0, le=30.0, description="s above full before the ramp back up")] = 1.0
    # the safety supervisor's fade (safety.fade_time_s default): a confidence fade is never more abrupt than a fault's
    confidence_fade_s: Annotated[float, Field(ge=0.005, le=1.0, description="s; linear fade to zero, >= safety.fade_time_s")] = 0.1
    # pre-compensate the motor command for the cuff tissue in every torque cycle (controllers.torque_cycle with
    # controllers.tissue_compensator and its versioned artifact; runtime.wiring.torque_cycle_from); a missing artifact
    # or one of another version stops the start-up (exit 2), never a silent rigid run
    tissue_compensation: bool = False

    @model_validator(mode="after")
    def _keys_act_on_the_strategies(self) -> "AssistanceConfig":
        if not self.confidence_fade_below < self.confidence_full_above:
            raise ValueError(f"assistance.confidence_fade_below = {self.confidence_fade_below} must be < "
                             f"assistance.confidence_full_above = {self.confidence_full_above}")
        used = {self.strategy} | ({self.fallback_strategy} if self.fallback_strategy != "none" else set())
        fields = type(self).model_fields
        for key, readers in ASSISTANCE_KEY_STRATEGIES.items():
            if getattr(self, key) != fields[key].default and not used & set(readers):
                raise ValueError(f"assistance.{key} = {getattr(self, key)!r}: not applicable to strategy "
                                 f"{self.strategy!r} (read only by {', '.join(readers)}); remove it or change the "
                                 f"strategy")
        if self.phase_lock_timeout_s != fields["phase_lock_timeout_s"].default and self.fallback_strategy == "none":
            raise ValueError(f"assistance.phase_lock_timeout_s = {self.phase_lock_timeout_s!r}: not applicable to "
                             f"strategy {self.strategy!r} without a fallback_strategy")
        return self


class DeviceConfig(_Strict):
    """Everything about the device that is not the subject or an actuator's calibration."""

    device_name: Annotated[str, Field(min_length=1, max_length=64)] = "knee_exo"
    estimation: EstimationLoopConfig = EstimationLoopConfig()
    torque_loop: TorqueLoopConfig = TorqueLoopConfig()
    safety: SafetyConfig = SafetyConfig()
    joints: Annotated[list[JointConfig], Field(min_length=1, max_length=8)]
    realtime: RealtimeConfig = RealtimeConfig()
    bus: BusConfig = BusConfig()
    serial_sensors: Annotated[list[SerialSensorConfig], Field(max_length=16)] = []
    telemetry: TelemetryConfig = TelemetryConfig()
    assistance: AssistanceConfig = AssistanceConfig()

    @model_validator(mode="after")
    def _unique_and_consistent(self) -> "DeviceConfig":
        names = [j.name for j in self.joints]
        if len(set(names)) != len(names):
            raise ValueError(f"joints: names must be unique, got {names}")
        sensors = [s.name for s in self.serial_sensors]
        if len(set(sensors)) != len(sensors):
            raise ValueError(f"serial_sensors: names must be unique, got {sensors}")
        if self.torque_loop.rate_hz < 2 * self.estimation.rate_hz:
            raise ValueError(f"torque_loop.rate_hz = {self.torque_loop.rate_hz} must be at least twice "
                             f"estimation.rate_hz = {self.estimation.rate_hz}")
        if self.torque_loop.stale_after_s < 2.0 / self.estimation.rate_hz:
            raise ValueError(f"torque_loop.stale_after_s = {self.torque_loop.stale_after_s} must cover at least two "
                             f"estimation periods (>= {2.0 / self.estimation.rate_hz:.4f} s)")
        a = self.assistance
        joint = next((j for j in self.joints if j.name == a.joint), None) if a.joint is not None else self.joints[0]
        if joint is None:
            raise ValueError(f"assistance.joint = {a.joint!r}: no such joint (defined: {names})")
        if a.torque_limit_nm is not None and a.torque_limit_nm > joint.torque_limit_nm:
            raise ValueError(f"assistance.torque_limit_nm = {a.torque_limit_nm} must be <= joints[{joint.name}]."
                             f"torque_limit_nm = {joint.torque_limit_nm}")
        if a.confidence_fade_s < self.safety.fade_time_s:
            raise ValueError(f"assistance.confidence_fade_s = {a.confidence_fade_s} must be >= safety.fade_time_s = "
                             f"{self.safety.fade_time_s} (a confidence fade is never more abrupt than a fault's)")
        if a.slew_limit_nm_per_s is not None and a.slew_limit_nm_per_s > joint.slew_limit_nm_per_s:
            raise ValueError(f"assistance.slew_limit_nm_per_s = {a.slew_limit_nm_per_s} must be <= joints[{joint.name}]."
                             f"slew_limit_nm_per_s = {joint.slew_limit_nm_per_s}")
        return self


# ----------------------------------------------------------------------------- subject

class SubjectProfile(_Strict):
    """The person wearing the device. ``subject_id`` is pseudonymous: no names."""

    subject_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    mass_kg: Annotated[float, Field(ge=20.0, le=250.0, description="kg")]
    height_m: Annotated[float, Field(ge=0.5, le=2.5, description="m")]
    side: Literal["left", "right", "both"]
    assistance_level: Annotated[float, Field(ge=0.0, le=1.0, description="fraction of the configured profile")] = 0.3


# ----------------------------------------------------------------------------- calibration

class ActuatorCalibrationConfig(_Strict):
    """One actuator: how joint-side values map to the motor's and what its firmware speaks."""

    name: Annotated[str, Field(min_length=1, max_length=32)]
    can_id: Annotated[int, Field(ge=1, le=255, description="motor id; AK replies carry it in one byte")]
    model: Annotated[str, Field(min_length=1)] = "AK80-9"
    firmware: Annotated[str, Field(min_length=1)] = "V2"
    direction: Literal[1, -1] = 1
    zero_offset_rad: Annotated[float, Field(ge=-6.3, le=6.3, description="rad")] = 0.0
    gear_ratio: Annotated[float, Field(gt=0.0, le=100.0, description="joint/actuator-output torque ratio of the transmission")] = 1.0
    torque_constant_nm_per_a: Annotated[float, Field(gt=0.0, le=10.0, description="vendor Kt, N*m/A at the output")] = 0.091 * 9
    measured_torque_constant_nm_per_a: Annotated[float | None, Field(gt=0.0, le=10.0, description="bench-measured Kt, overrides vendor")] = None


class CalibrationFile(_Strict):
    """All actuators of the device."""

    actuators: Annotated[list[ActuatorCalibrationConfig], Field(min_length=1, max_length=8)]

    @model_validator(mode="after")
    def _unique(self) -> "CalibrationFile":
        for key in ("name", "can_id"):
            vals = [getattr(a, key) for a in self.actuators]
            if len(set(vals)) != len(vals):
                raise ValueError(f"actuators: {key} must be unique, got {vals}")
        return self


def load_device(path: str | Path) -> DeviceConfig:
    return load(DeviceConfig, path)


def load_subject(path: str | Path) -> SubjectProfile:
    return load(SubjectProfile, path)


def load_calibration(path: str | Path) -> CalibrationFile:
    return load(CalibrationFile, path)


def check_consistency(device: DeviceConfig, calibration: CalibrationFile) -> None:
    """Every joint names an actuator that the calibration file defines."""
    names = {a.name for a in calibration.actuators}
    problems = [f"joints[{i}].actuator = {j.actuator!r}: no such actuator in the calibration file (defined: {sorted(names)})"
                for i, j in enumerate(device.joints) if j.actuator not in names]
    if problems:
        raise ConfigError("device+calibration", problems)

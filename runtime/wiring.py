"""Configuration into objects: the one place that reads the validated configuration files and builds
the safety supervisor's parameters, the assistance controller and the drive back end.

Every runner (the torque process, the ROS 2 nodes, the DDS publisher, the HIL host, the CLI) calls these,
so a configuration key means the same thing everywhere. Inputs are ``runtime.core.config`` models
(``DeviceConfig``, ``SubjectProfile``) and the calibration file as a mapping.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from controllers.assistance import AssistanceParameters, AssistanceStage, SynergyShape, make_strategy
from controllers.confidence_gate import ConfidenceGate, ConfidenceGateParams
from controllers.gait_phase import GaitPhaseEstimator, GaitPhaseParams
from controllers.safety import JointLimits, SafetyParams
from runtime.control.drive import Drive, SimulatedDrive
from runtime.core.config import DeviceConfig, SubjectProfile

if TYPE_CHECKING:
    from controllers.tissue_compensator import TissueCompensator
    from controllers.torque_cycle import TorqueCycle


def safety_params_from(device: DeviceConfig) -> SafetyParams:
    """The supervisor's parameters from the validated device configuration."""
    return SafetyParams(
        joints=tuple(JointLimits(j.name, j.torque_limit_nm, j.slew_limit_nm_per_s, j.position_min_rad,
                                 j.position_max_rad, j.velocity_limit_rad_s) for j in device.joints),
        fade_time_s=device.safety.fade_time_s,
        stale_after_s=device.torque_loop.stale_after_s,
        motor_temperature_limit_c=device.safety.motor_temperature_limit_c,
    )


def assistance_parameters(device: DeviceConfig, subject: SubjectProfile) -> dict[str, Any]:
    """Keyword arguments of ``controllers.assistance.AssistanceParameters`` for this device and subject
    (limits default to the assisted joint's; level and mass from the subject)."""
    a = device.assistance
    joint = next(j for j in device.joints if a.joint is None or j.name == a.joint)
    return {"strategy": a.strategy, "level": subject.assistance_level, "body_mass_kg": subject.mass_kg,
            "moment_fraction": a.moment_fraction, "ramp_in_s": a.ramp_in_s,
            "torque_limit_nm": a.torque_limit_nm if a.torque_limit_nm is not None else joint.torque_limit_nm,
            "slew_limit_nm_per_s": (a.slew_limit_nm_per_s if a.slew_limit_nm_per_s is not None
                                    else joint.slew_limit_nm_per_s),
            "peak_nm_per_kg": a.peak_nm_per_kg, "phase_peak": a.phase_peak, "phase_width": a.phase_width,
            "extension_only": a.extension_only}


def assistance_controller(device: DeviceConfig, subject: SubjectProfile,
                          synergy_shape: SynergyShape | None = None) -> AssistanceStage:
    """The assistance strategy, its fallback while the gait phase does not lock (``assistance.fallback_strategy``)
    and the gait-phase estimator for this device and subject."""
    a = device.assistance
    kw = assistance_parameters(device, subject)
    params = AssistanceParameters(**kw)
    gait = GaitPhaseEstimator(GaitPhaseParams(source=a.gait_phase_source))
    fallback = None
    if a.fallback_strategy != "none":
        fallback = make_strategy(AssistanceParameters(**{**kw, "strategy": a.fallback_strategy}), synergy_shape)
    return AssistanceStage(make_strategy(params, synergy_shape), gait, fallback=fallback,
                           phase_lock_timeout_s=a.phase_lock_timeout_s)


def confidence_gate_params(device: DeviceConfig) -> ConfidenceGateParams:
    """The confidence gate's thresholds and times (``assistance.confidence_*``; it ramps back up over
    ``assistance.ramp_in_s``, like the start)."""
    a = device.assistance
    return ConfidenceGateParams(fade_below=a.confidence_fade_below, full_above=a.confidence_full_above,
                                hold_s=a.confidence_hold_s, fade_s=a.confidence_fade_s, ramp_s=a.ramp_in_s)


def confidence_gate(device: DeviceConfig) -> ConfidenceGate:
    """The confidence gate in front of the assistance limiter, for every strategy."""
    return ConfidenceGate(confidence_gate_params(device))


def make_drive(device, calibration: dict | None, body_mass_kg: float, height_m: float,
               frame_log: Callable[[int, int, bytes, bool, bool], None] | None = None) -> Drive:
    """The drive back end named by ``device.bus.interface`` (``device`` is a ``DeviceConfig``).

    ``sim``: the ideal in-process simulated knee. ``virtual``/``udp_multicast``/``socketcan``: AK-series
    drives in MIT mode over python-can (``firmware_bridge.ak_can``), one per joint, each joint's
    actuator taken from the calibration file. ``udp_multicast`` must run in a private network namespace.
    """
    n = len(device.joints)
    period_s = 1.0 / device.torque_loop.rate_hz
    bus_cfg = device.bus
    if bus_cfg.interface == "sim":
        return SimulatedDrive(n, period_s, body_mass_kg, height_m)
    from firmware_bridge.ak_can import AkCanDrive
    from firmware_bridge.bus import open_bus
    from firmware_bridge.calibration import ActuatorCalibration

    if not calibration:
        raise ValueError(f"bus.interface = {bus_cfg.interface!r} needs the actuator calibration file")
    by_name = {a["name"]: a for a in calibration["actuators"]}
    actuators = [ActuatorCalibration.from_mapping(by_name[j.actuator]) for j in device.joints]
    # udp_multicast: refused outside a private network namespace (firmware_bridge/netns.py)
    bus = open_bus(bus_cfg.interface, bus_cfg.channel, port=bus_cfg.udp_port, bitrate=bus_cfg.bitrate,
                   receive_own_messages=False)
    return AkCanDrive(bus, actuators, reply_timeout_s=device.safety.reply_timeout_s, master_id=bus_cfg.master_id,
                      estop_can_id=bus_cfg.estop_can_id, frame_log=frame_log)


def tissue_compensator_from(device: DeviceConfig) -> TissueCompensator | None:
    """The soft-tissue compensator when ``assistance.tissue_compensation`` is true (None otherwise), with the
    versioned surrogate artifact (``controllers.tissue_compensator.ARTIFACT_PATH``). A missing or unreadable
    artifact, or one of another version, raises ValueError naming the key and the file: never silently rigid."""
    if not device.assistance.tissue_compensation:
        return None
    from controllers import tissue_compensator as tc

    try:
        surrogate, _doc = tc.load_artifact(tc.ARTIFACT_PATH)
    except ValueError as exc:
        raise ValueError(f"assistance.tissue_compensation = true but {exc}; refusing to start (it would run "
                         "without compensation)") from None
    return tc.TissueCompensator(surrogate, tc.CompensatorParams())


def torque_cycle_from(device: DeviceConfig, *, interpolation: str | None = None, stale_after_s: float | None = None,
                      rate_hz: float | None = None, compensate: bool = True) -> TorqueCycle:
    """The one torque cycle (``controllers.torque_cycle.TorqueCycle``) for this device: the supervisor's limits,
    staleness from capture after ``torque_loop.stale_after_s`` (or ``stale_after_s``), interpolation over one
    estimation period (``torque_loop.interpolation`` or ``interpolation``), the tissue compensator on the assisted
    joint when ``assistance.tissue_compensation`` (and ``compensate``) is true."""
    from dataclasses import replace

    from controllers.torque_cycle import TorqueCycle, TorqueCycleParams

    safety = safety_params_from(device)
    if stale_after_s is not None:
        safety = replace(safety, stale_after_s=stale_after_s)
    names = [j.name for j in device.joints]
    joint = device.assistance.joint
    params = TorqueCycleParams(safety=safety, estimation_period_s=1.0 / device.estimation.rate_hz,
                               interpolation=interpolation or device.torque_loop.interpolation,
                               compensated_joint=names.index(joint) if joint is not None else 0,
                               cycle_period_s=1.0 / (rate_hz or device.torque_loop.rate_hz))
    return TorqueCycle(params, tissue_compensator_from(device) if compensate else None)

"""Configuration into objects: the one place that reads the validated configuration files and builds
the safety supervisor's parameters, the assistance controller and the drive back end.

Every runner (the torque process, the ROS 2 nodes, the DDS publisher, the HIL host, the CLI) calls these,
so a configuration key means the same thing everywhere. Inputs are ``runtime.core.config`` models
(``DeviceConfig``, ``SubjectProfile``) and the calibration file as a mapping.
"""
from __future__ import annotations

from typing import Any, Callable

from controllers.assistance import AssistanceParameters, AssistanceStage, SynergyShape, make_strategy
from controllers.gait_phase import GaitPhaseEstimator, GaitPhaseParams
from controllers.safety import JointLimits, SafetyParams
from runtime.control.drive import Drive, SimulatedDrive
from runtime.core.config import DeviceConfig, SubjectProfile


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
    """The assistance strategy and its gait-phase estimator for this device and subject."""
    params = AssistanceParameters(**assistance_parameters(device, subject))
    gait = GaitPhaseEstimator(GaitPhaseParams(source=device.assistance.gait_phase_source))
    return AssistanceStage(make_strategy(params, synergy_shape), gait)


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

"""The torque loop's view of the hardware: write joint torques, read joint states.

Back ends are chosen by ``bus.interface`` in the device configuration
(``sim`` today; the AK-series CAN drive and the HIL plant plug in behind the same
interface). Joint side, SI units: torque N*m, angle rad (knee flexion positive),
velocity rad/s.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol


@dataclass(slots=True)
class JointStates:
    """Latest measured state per joint, filled in place by ``Drive.read``."""

    position_rad: list[float] = field(default_factory=list)
    velocity_rad_s: list[float] = field(default_factory=list)
    torque_nm: list[float] = field(default_factory=list)
    temperature_c: list[float | None] = field(default_factory=list)
    error_code: list[int | None] = field(default_factory=list)
    rx_ns: list[int] = field(default_factory=list)

    @classmethod
    def zeros(cls, n: int) -> "JointStates":
        return cls([0.0] * n, [0.0] * n, [0.0] * n, [None] * n, [None] * n, [0] * n)


class Drive(Protocol):
    """What the torque loop needs of the actuators."""

    def enable(self, t_ns: int) -> None:
        """Send zero torque, then enter the control mode (never enable before zero is sent)."""

    def write(self, torque_nm: list[float], t_ns: int) -> None:
        """Command joint torques (already limited by the safety supervisor)."""

    def read(self, out: JointStates, t_ns: int) -> None:
        """Fill ``out`` with the latest state."""

    def disable(self, t_ns: int) -> None:
        """Final zero torque, then leave the control mode; nothing stays latched in the drive."""


class SimulatedDrive:
    """Ideal drive on the in-process simulated knee plant (``hil.knee_plant``).

    Each ``write`` holds the torque for one torque-loop period of simulated time.
    """

    def __init__(self, n_joints: int, period_s: float, body_mass_kg: float, height_m: float) -> None:
        from hil.knee_plant import KneePlantParams, SimulatedKneePlant

        if n_joints != 1:
            raise ValueError(f"sim drive: n_joints = {n_joints}; the simulated knee plant has exactly 1 joint")
        self.plant = SimulatedKneePlant(KneePlantParams(body_mass_kg=body_mass_kg, height_m=height_m))
        self.period_s = period_s
        self.enabled = False
        self.writes = 0

    def enable(self, t_ns: int) -> None:
        self.plant.step(0.0, 0.0)
        self.enabled = True

    def write(self, torque_nm: list[float], t_ns: int) -> None:
        self.plant.step(torque_nm[0] if self.enabled else 0.0, self.period_s)
        self.writes += 1

    def read(self, out: JointStates, t_ns: int) -> None:
        out.position_rad[0] = self.plant.flexion_rad
        out.velocity_rad_s[0] = self.plant.flexion_velocity_rad_s
        out.torque_nm[0] = self.plant.exo_torque_nm
        out.rx_ns[0] = t_ns

    def disable(self, t_ns: int) -> None:
        self.plant.step(0.0, 0.0)
        self.enabled = False


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
    import can

    from firmware_bridge.ak_can import AkCanDrive
    from firmware_bridge.calibration import ActuatorCalibration

    if not calibration:
        raise ValueError(f"bus.interface = {bus_cfg.interface!r} needs the actuator calibration file")
    by_name = {a["name"]: a for a in calibration["actuators"]}
    actuators = [ActuatorCalibration.from_mapping(by_name[j.actuator]) for j in device.joints]
    if bus_cfg.interface == "udp_multicast":
        from runtime.netns import in_private_netns

        if not in_private_netns():
            raise RuntimeError("bus.interface = 'udp_multicast' outside a private network namespace: refused "
                               "(multicast must not reach the host network; run under 'unshare -n', see runtime/netns.py)")
        bus = can.Bus(interface="udp_multicast", channel=bus_cfg.channel, port=bus_cfg.udp_port,
                      receive_own_messages=False)
    elif bus_cfg.interface == "virtual":
        bus = can.Bus(interface="virtual", channel=bus_cfg.channel, receive_own_messages=False)
    else:
        bus = can.Bus(interface="socketcan", channel=bus_cfg.channel, bitrate=bus_cfg.bitrate, receive_own_messages=False)
    return AkCanDrive(bus, actuators, reply_timeout_s=device.safety.reply_timeout_s, master_id=bus_cfg.master_id,
                      estop_can_id=bus_cfg.estop_can_id, frame_log=frame_log)

"""The torque loop's view of the hardware: write joint torques, read joint states.

Back ends are chosen by ``bus.interface`` in the device configuration (``runtime.wiring.make_drive``):
``sim`` is :class:`SimulatedDrive` here; ``virtual``/``udp_multicast``/``socketcan`` are AK-series
drives in MIT mode (``firmware_bridge.ak_can.AkCanDrive``, also behind the HIL plant). Both derive
from :class:`Drive` (= ``firmware_bridge.drive_interface.DriveBase``, defined below ``runtime`` so the
CAN back end can use it): ``read``/``write`` return a :class:`DriveResult`, faults come from
``poll_faults`` (empty by default), and ``with drive:`` / ``close`` disable and release it once.
Joint side, SI units: torque N*m, angle rad (knee flexion positive), velocity rad/s.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from firmware_bridge.drive_interface import DriveBase, DriveResult, FaultRecord

#: The torque loop's drive base class (see ``firmware_bridge.drive_interface``).
Drive = DriveBase

__all__ = ["Drive", "DriveResult", "FaultRecord", "JointStates", "SimulatedDrive"]


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


class SimulatedDrive(Drive):
    """Ideal drive on the in-process simulated knee plant (``hil.knee_plant``).

    Each ``write`` holds the torque for one torque-loop period of simulated time; ``read`` and
    ``write`` always return ``OK`` (no bus, no faults).
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

    def write(self, torque_nm: Sequence[float], t_ns: int) -> DriveResult:
        self.plant.step(torque_nm[0] if self.enabled else 0.0, self.period_s)
        self.writes += 1
        return DriveResult.OK

    def read(self, out: JointStates, t_ns: int) -> DriveResult:
        out.position_rad[0] = self.plant.flexion_rad
        out.velocity_rad_s[0] = self.plant.flexion_velocity_rad_s
        out.torque_nm[0] = self.plant.exo_torque_nm
        out.rx_ns[0] = t_ns
        return DriveResult.OK

    def disable(self, t_ns: int) -> None:
        self.plant.step(0.0, 0.0)
        self.enabled = False



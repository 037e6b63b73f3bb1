"""The torque loop's view of the hardware: write joint torques, read joint states.

Back ends are chosen by ``bus.interface`` in the device configuration
(``sim`` today; the AK-series CAN drive and the HIL plant plug in behind the same
interface). Joint side, SI units: torque N*m, angle rad (knee flexion positive),
velocity rad/s.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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



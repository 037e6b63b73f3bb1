"""Fixed phase-based knee assistance profile: torque as a function of gait phase.

The simplest strategy a wearable-robotics engineer compares against: a smooth
extension-assist bump in early stance (loading response, where the knee
extensors work hardest), zero elsewhere::

    tau(phi) = -level * peak_nm * exp(-0.5 * ((phi - phi_peak) / width)^2)   phi in [0, 1)

Negative torque extends the knee (flexion is positive). The bump is cut to zero
outside ``phi_peak +- 3 width`` so the profile is exactly zero in swing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from controllers.command_limits import MAX_TORQUE_NM


@dataclass(frozen=True, slots=True)
class PhaseProfileParams:
    peak_nm: float = 15.0          # N*m at full assistance level
    phase_peak: float = 0.12       # fraction of the gait cycle (heel strike = 0)
    phase_width: float = 0.05      # standard deviation, fraction of the cycle

    def __post_init__(self) -> None:
        if not (0.0 < self.peak_nm <= MAX_TORQUE_NM):
            raise ValueError(f"PhaseProfileParams.peak_nm = {self.peak_nm!r}: allowed 0 < peak_nm <= {MAX_TORQUE_NM:g} N*m")
        if not (0.0 <= self.phase_peak < 1.0):
            raise ValueError(f"PhaseProfileParams.phase_peak = {self.phase_peak!r}: allowed 0 <= phase_peak < 1")
        if not (0.0 < self.phase_width <= 0.3):
            raise ValueError(f"PhaseProfileParams.phase_width = {self.phase_width!r}: allowed 0 < phase_width <= 0.3")


class PhaseProfileController:
    """Knee torque (N*m, flexion positive) from gait phase and the clinician's assistance level."""

    def __init__(self, params: PhaseProfileParams, assistance_level: float) -> None:
        if not (0.0 <= assistance_level <= 1.0):
            raise ValueError(f"assistance_level = {assistance_level!r}: allowed 0 <= assistance_level <= 1")
        self.params = params
        self.level = assistance_level

    def torque_nm(self, phase: float) -> float:
        p = self.params
        d = (phase - p.phase_peak + 0.5) % 1.0 - 0.5     # wrapped distance to the peak
        if abs(d) > 3.0 * p.phase_width:
            return 0.0
        return -self.level * p.peak_nm * math.exp(-0.5 * (d / p.phase_width) ** 2)


class CadencePhaseEstimator:
    """Gait phase from time at a fixed cadence (strides/s): the stand-in until phase comes from kinematics."""

    def __init__(self, cadence_hz: float, t0_ns: int = 0) -> None:
        if not (0.1 <= cadence_hz <= 3.0):
            raise ValueError(f"cadence_hz = {cadence_hz!r}: allowed 0.1 <= cadence_hz <= 3 strides/s")
        self.cadence_hz = cadence_hz
        self.t0_ns = t0_ns

    def phase(self, t_ns: int) -> float:
        return ((t_ns - self.t0_ns) * 1e-9 * self.cadence_hz) % 1.0

"""Thermal model and fault injection of an emulated AK drive (:mod:`hil.ak_emulator`).

Thermal model (:class:`ThermalParams`)
--------------------------------------
One node, the winding: ``C dT/dt = I^2 R - (T - T_amb)/R_th`` with ``I = tau/Kt`` (output-shaft
torque over output-shaft torque constant), integrated exactly for the torque held over each
step (``T -> T_ss + (T - T_ss) exp(-dt/(R_th C))``, ``T_ss = T_amb + I^2 R R_th``) so any step
is stable (:meth:`hil.ak_emulator.EmulatedAkDrive.update_thermal`).  The drive's *sensed*
temperature is the model plus the injected ``temperature_offset_c``; above ``t_error_c`` (90 C) the drive latches error code 1
(over-temperature) and produces no torque until an ENTER finds it cooled to
``t_error_c - t_error_hysteresis_c``.  Default values (an AK80-9-class motor; assumptions,
see each field) make rated torque (9 N*m) settle at about 80 C, below the trip, and peak torque
(18 N*m) trip in about a minute from 25 C.

Fault injection (:class:`FaultInjection`, ``drive.faults``; what is active *now*)
-------------------------------------------------------------------------------
Replies can be dropped (seeded RNG), delayed (a time-ordered queue in the rig), corrupted
(detectably by default: a flipped bit in the motor-id byte or in the error-code byte's
high bits, or a wrong length; ``corrupt_payload`` flips any bit, which only plausibility
checks catch), suppressed (``silent``), sent with another motor id (``wrong_id``) or with an
error code; the sensed temperature can be offset (-> over-temperature trip); the bus can
carry CAN error frames (``error_frames``) or the drive can go bus-off (receives nothing,
replies nothing, emits bus-off error frames, keeps applying its last command); and the drive
can output ``extra_torque_nm`` on top of the law (in any mode; reported in the reply torque,
applied to the plant, heats the winding).

Imports: stdlib and :mod:`firmware_bridge.ak_mit` only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from firmware_bridge.ak_mit import ERROR_NAMES

__all__ = ["ThermalParams", "FaultInjection", "OVER_TEMPERATURE"]

#: Error code the drive reports when its sensed temperature exceeds ``t_error_c``.
OVER_TEMPERATURE = 1


@dataclass(frozen=True, slots=True)
class ThermalParams:
    """One-node winding model ``C dT/dt = (tau/Kt)^2 R - (T - T_amb)/R_th`` (SI, degC).

    Values for an AK80-9-class motor.  Only ``kt_nm_per_a`` is a vendor figure; the others
    are plausible assumptions (the vendor publishes no thermal data), chosen so that the
    continuous rating is continuous and the peak rating is not:

    * ``kt_nm_per_a`` 0.819 N*m/A: vendor torque constant at the output shaft (0.091 N*m/A
      rotor Kt times the 9:1 internal reduction, as :mod:`firmware_bridge.calibration`).
    * ``resistance_ohm`` 0.17 ohm: effective winding resistance for ``I^2 R`` (order of the
      phase-to-phase resistance quoted for this motor class; assumption).
    * ``thermal_resistance_k_per_w`` 2.7 K/W winding -> ambient (assumption): rated torque
      9 N*m is 11 A, 20.5 W, a steady rise of 55 K -> about 80 C at 25 C ambient.
    * ``heat_capacity_j_per_k`` 60 J/K (assumption: copper plus the stator iron coupled to
      it, ~0.15 kg at ~400 J/(kg K)): time constant R_th*C = 162 s; at peak torque 18 N*m
      (22 A, 82 W) the winding heats at ~1.4 K/s and trips 90 C after about 55 s.
    * ``t_error_c`` 90 C over-temperature trip; the latch clears on ENTER once the sensed
      temperature is ``t_error_hysteresis_c`` below it.
    """

    kt_nm_per_a: float = 0.819
    resistance_ohm: float = 0.17
    thermal_resistance_k_per_w: float = 2.7
    heat_capacity_j_per_k: float = 60.0
    ambient_c: float = 25.0
    initial_c: float | None = None  # None: start at ambient
    t_error_c: float = 90.0
    t_error_hysteresis_c: float = 10.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.name == "initial_c":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"ThermalParams.{f.name}={v!r}: must be a finite number")
        for name in ("kt_nm_per_a", "resistance_ohm", "thermal_resistance_k_per_w",
                     "heat_capacity_j_per_k"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ThermalParams.{name}={getattr(self, name)!r}: must be > 0")
        if self.t_error_hysteresis_c < 0:
            raise ValueError(
                f"ThermalParams.t_error_hysteresis_c={self.t_error_hysteresis_c!r}: must be >= 0"
            )

    @property
    def time_constant_s(self) -> float:
        return self.thermal_resistance_k_per_w * self.heat_capacity_j_per_k

    def steady_state_c(self, torque_nm: float) -> float:
        """Temperature the winding settles at with ``torque_nm`` held."""
        i = torque_nm / self.kt_nm_per_a
        return self.ambient_c + i * i * self.resistance_ohm * self.thermal_resistance_k_per_w


@dataclass(slots=True)
class FaultInjection:
    """Faults active on one drive right now (all off by default).

    ``drop_replies``/``corrupt_replies``: probability 0..1 per reply (the rig's seeded RNG);
    ``delay_replies_s``: extra latency of every reply, s; ``corrupt_payload``: corruption may
    flip any bit (default: only bits ``decode_reply`` detects, or a wrong length);
    ``silent``: no replies at all (commands still applied); ``error_code``: reported in every
    reply (report only; 0..6); ``temperature_offset_c``: added to the sensed temperature (trips
    over-temperature like a real hot winding); ``error_frames``: the rig emits CAN error frames
    (protocol/stuff errors); ``bus_off``: the drive neither receives nor replies, the rig
    emits bus-off error frames, and the drive holds its last command; ``extra_torque_nm``:
    N*m the drive outputs on top of the law (drive frame, any mode); ``wrong_id``: replies
    carry motor id + 1 in byte 0.
    """

    drop_replies: float = 0.0
    delay_replies_s: float = 0.0
    corrupt_replies: float = 0.0
    corrupt_payload: bool = False
    silent: bool = False
    error_code: int | None = None
    temperature_offset_c: float = 0.0
    error_frames: bool = False
    bus_off: bool = False
    extra_torque_nm: float = 0.0
    wrong_id: bool = False

    def __post_init__(self) -> None:
        for name in ("drop_replies", "corrupt_replies"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ValueError(f"FaultInjection.{name}={v!r}: probability, allowed 0..1")
        for name, lo, hi in (
            ("delay_replies_s", 0.0, 10.0),
            ("temperature_offset_c", -100.0, 250.0),
            ("extra_torque_nm", -1000.0, 1000.0),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise ValueError(f"FaultInjection.{name}={v!r}: allowed {lo}..{hi}")
        for name in ("corrupt_payload", "silent", "error_frames", "bus_off", "wrong_id"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"FaultInjection.{name}={getattr(self, name)!r}: must be a bool")
        ec = self.error_code
        if ec is not None and (isinstance(ec, bool) or ec not in ERROR_NAMES):
            raise ValueError(f"FaultInjection.error_code={ec!r}: allowed None or {sorted(ERROR_NAMES)}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> "FaultInjection":
        """From a dict of fields; unknown keys raise ValueError naming them."""
        unknown = set(m) - set(cls.field_names())
        if unknown:
            raise ValueError(
                f"FaultInjection: unknown field(s) {sorted(unknown)}; allowed {list(cls.field_names())}"
            )
        return cls(**dict(m))

    @property
    def active(self) -> bool:
        return self != FaultInjection()

"""Per-actuator calibration: joint units <-> the MIT frame of one AK drive.

Frames and units
----------------
*MIT frame*: what goes on the wire (:mod:`firmware_bridge.ak_mit`).  For AK modules the MIT
position, velocity and torque are at the module's **output shaft**, after its built-in
planetary reduction; the table ranges (:mod:`firmware_bridge.motor_tables`) are in this
frame too.

*Joint frame*: the exoskeleton joint angle/velocity/torque the controllers use.

``gear_ratio`` is the transmission *between the AK output shaft and the joint* (output /
motor, i.e. joint torque / output-shaft torque = output-shaft speed / joint speed); it is
1.0 when the AK output drives the joint directly.  The module's internal reduction (9 for
an AK80-9) is *not* part of it -- the drive has already applied it.

``torque_constant_nm_per_a`` is the vendor torque constant **at the AK output shaft**
(datasheet rotor Kt times the internal reduction, e.g. 0.091 * 9 = 0.819 N*m/A for AK80-9).
The drive converts the MIT torque field to phase current with this vendor constant, so the
torque it actually produces is ``T_wire * Kt_true / Kt_vendor``.  The vendor value is known
to be off by 25-40 %; when ``measured_torque_constant_nm_per_a`` (same frame, measured on
the bench) is set, :meth:`ActuatorCalibration.joint_to_motor_torque` and the gain/reply
conversions compensate for it.  (Assumption: the firmware uses the datasheet Kt; if your
bench measurement is of commanded-vs-produced torque, enter ``Kt_vendor * produced /
commanded`` as the measured value.)

Conversions (d = direction, N = gear_ratio, s = Kt_vendor / Kt_effective)::

    q_mit = d * N * q_joint + zero_offset_rad      q_joint = d * (q_mit - zero_offset_rad) / N
    v_mit = d * N * v_joint                        v_joint = d * v_mit / N
    T_mit = d * s * T_joint / N                    T_joint = d * N * T_mit / s
    kp_mit = s * kp_joint / N**2                   kd_mit = s * kd_joint / N**2

They are plain arithmetic, so they work element-wise on numpy arrays too.

Loading from YAML is done by the runtime configuration; :meth:`ActuatorCalibration.from_mapping`
builds and validates one entry from the parsed mapping.  Imports: stdlib and this package only.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from .motor_tables import MitLimits, UnknownMotorError, limits_for

__all__ = [
    "ActuatorCalibration",
    "MAX_CAN_ID",
    "KT_RATIO_RANGE",
    "KT_RANGE",
    "GEAR_RATIO_RANGE",
]

#: MIT replies carry the motor id in one byte, and id 0 is the host (master) id.
MAX_CAN_ID = 0xFF
#: Allowed measured/vendor Kt ratio: the vendor value is off by 25-40 %, a factor of 2 or more
#: means a unit or frame mix-up (rotor vs output-shaft Kt, i.e. off by the internal ratio).
KT_RATIO_RANGE = (0.5, 2.0)
#: Allowed external transmission ratio, exclusive of the lower bound (as runtime.core.config).
GEAR_RATIO_RANGE = (0.0, 100.0)
#: Allowed torque constant, N*m/A at the AK output shaft, exclusive of the lower bound.
KT_RANGE = (0.0, 10.0)


def _is_number(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float))


@dataclass(frozen=True, slots=True)
class ActuatorCalibration:
    """Calibration of one AK actuator (see the module docstring for frames and formulas).

    ``name``: actuator name; ``can_id``: MIT motor id (1..255); ``model``/``firmware``: key
    of :data:`firmware_bridge.motor_tables.TABLE`; ``direction``: int +1 or -1 (joint
    positive = MIT positive times direction; ``from_mapping`` also accepts 1.0/-1.0);
    ``zero_offset_rad``: MIT-frame position (rad, output shaft) read when the joint is at
    its zero; ``gear_ratio``: joint torque / output-shaft
    torque (1.0 = direct drive of the joint); ``torque_constant_nm_per_a``: vendor Kt at the
    output shaft, N*m/A; ``measured_torque_constant_nm_per_a``: bench-measured Kt, same frame,
    overrides the vendor value, or None.
    """

    name: str
    can_id: int
    model: str
    firmware: str
    direction: int
    zero_offset_rad: float
    gear_ratio: float
    torque_constant_nm_per_a: float
    measured_torque_constant_nm_per_a: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name={self.name!r}: allowed a non-empty string")
        if (
            isinstance(self.can_id, bool)
            or not isinstance(self.can_id, int)
            or not 1 <= self.can_id <= MAX_CAN_ID
        ):
            raise ValueError(
                f"{self.name}: can_id={self.can_id!r}: allowed integer 1..{MAX_CAN_ID} "
                "(reply byte 0 holds it; 0 is the host id)"
            )
        try:
            lim = limits_for(self.model, self.firmware)
        except UnknownMotorError as exc:
            raise ValueError(f"{self.name}: model/firmware: {exc}") from None
        if (
            isinstance(self.direction, bool)
            or not isinstance(self.direction, int)
            or self.direction not in (1, -1)
        ):
            raise ValueError(f"{self.name}: direction={self.direction!r}: allowed {{+1, -1}}")
        if not _is_number(self.zero_offset_rad) or not (
            lim.p_min <= self.zero_offset_rad <= lim.p_max
        ):
            raise ValueError(
                f"{self.name}: zero_offset_rad={self.zero_offset_rad!r}: allowed "
                f"[{lim.p_min}, {lim.p_max}] rad (position range of {lim.model} {lim.firmware})"
            )
        lo, hi = GEAR_RATIO_RANGE
        if not _is_number(self.gear_ratio) or not lo < self.gear_ratio <= hi:
            raise ValueError(
                f"{self.name}: gear_ratio={self.gear_ratio!r}: allowed ({lo}, {hi}] "
                "(joint torque / AK output-shaft torque; 1.0 = direct drive)"
            )
        lo, hi = KT_RANGE
        kt = self.torque_constant_nm_per_a
        if not _is_number(kt) or not lo < kt <= hi:
            raise ValueError(
                f"{self.name}: torque_constant_nm_per_a={kt!r}: allowed ({lo}, {hi}] N*m/A "
                "(vendor Kt at the AK output shaft)"
            )
        m = self.measured_torque_constant_nm_per_a
        if m is not None:
            rlo, rhi = KT_RATIO_RANGE
            if not _is_number(m) or not lo < m <= hi:
                raise ValueError(
                    f"{self.name}: measured_torque_constant_nm_per_a={m!r}: allowed None or "
                    f"({lo}, {hi}] N*m/A"
                )
            if not rlo * kt <= m <= rhi * kt:
                raise ValueError(
                    f"{self.name}: measured_torque_constant_nm_per_a={m!r}: allowed "
                    f"[{rlo * kt:.4g}, {rhi * kt:.4g}] N*m/A ({rlo}..{rhi} x vendor {kt}); "
                    "a larger difference means rotor-side vs output-shaft Kt were mixed up"
                )

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> "ActuatorCalibration":
        """Build from a parsed YAML/JSON mapping with exactly the field names as keys.

        ``measured_torque_constant_nm_per_a`` may be missing or null.  Unknown or missing
        keys raise ValueError naming them; values are validated by ``__post_init__``.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"actuator calibration={d!r}: expected a mapping")
        names = [f.name for f in fields(cls)]
        optional = {"measured_torque_constant_nm_per_a"}
        unknown = sorted(set(map(str, d)) - set(names))
        if unknown:
            raise ValueError(
                f"actuator calibration {d.get('name', '?')!r}: unknown keys {unknown}; "
                f"allowed {names}"
            )
        missing = [n for n in names if n not in d and n not in optional]
        if missing:
            raise ValueError(
                f"actuator calibration {d.get('name', '?')!r}: missing keys {missing}"
            )
        kwargs = {n: d[n] for n in names if n in d}
        for n in ("zero_offset_rad", "gear_ratio", "torque_constant_nm_per_a",
                  "measured_torque_constant_nm_per_a"):
            v = kwargs.get(n)
            if _is_number(v):
                kwargs[n] = float(v)
        if _is_number(kwargs["direction"]) and kwargs["direction"] in (1, -1):
            kwargs["direction"] = int(kwargs["direction"])
        return cls(**kwargs)

    # ---------------------------------------------------------------- derived

    @property
    def limits(self) -> MitLimits:
        """MIT ranges of this actuator's (model, firmware)."""
        return limits_for(self.model, self.firmware)

    @property
    def effective_torque_constant_nm_per_a(self) -> float:
        """Measured Kt if set, else the vendor Kt (N*m/A at the AK output shaft)."""
        m = self.measured_torque_constant_nm_per_a
        return self.torque_constant_nm_per_a if m is None else m

    @property
    def wire_torque_scale(self) -> float:
        """``Kt_vendor / Kt_effective``: MIT torque to send per N*m wanted at the output shaft."""
        return self.torque_constant_nm_per_a / self.effective_torque_constant_nm_per_a

    # ---------------------------------------------------------------- joint -> MIT

    def joint_to_motor_position(self, position_rad: float) -> float:
        """Joint angle (rad) -> MIT position (rad, output shaft)."""
        return self.direction * self.gear_ratio * position_rad + self.zero_offset_rad

    def joint_to_motor_velocity(self, velocity_rad_s: float) -> float:
        """Joint velocity (rad/s) -> MIT velocity (rad/s, output shaft)."""
        return self.direction * self.gear_ratio * velocity_rad_s

    def joint_to_motor_torque(self, torque_nm: float) -> float:
        """Joint torque wanted (N*m) -> MIT torque field to send (N*m, vendor-Kt scale)."""
        return self.direction * self.wire_torque_scale * torque_nm / self.gear_ratio

    def joint_to_motor_gains(self, kp: float, kd: float) -> tuple[float, float]:
        """Joint stiffness (N*m/rad) and damping (N*m*s/rad) -> MIT Kp, Kd (direction-free)."""
        f = self.wire_torque_scale / (self.gear_ratio * self.gear_ratio)
        return kp * f, kd * f

    # ---------------------------------------------------------------- MIT -> joint

    def motor_to_joint_position(self, position_rad: float) -> float:
        """MIT position (rad, output shaft) -> joint angle (rad)."""
        return self.direction * (position_rad - self.zero_offset_rad) / self.gear_ratio

    def motor_to_joint_velocity(self, velocity_rad_s: float) -> float:
        """MIT velocity (rad/s, output shaft) -> joint velocity (rad/s)."""
        return self.direction * velocity_rad_s / self.gear_ratio

    def motor_to_joint_torque(self, torque_nm: float) -> float:
        """MIT torque (reply or command field, N*m) -> joint torque produced (N*m)."""
        return self.direction * self.gear_ratio * torque_nm / self.wire_torque_scale

    # ---------------------------------------------------------------- current

    def current_to_joint_torque(self, current_a: float) -> float:
        """Phase (q-axis) current (A, MIT sign) -> joint torque (N*m) with the effective Kt."""
        kt = self.effective_torque_constant_nm_per_a
        return self.direction * self.gear_ratio * kt * current_a

    def joint_torque_to_current(self, torque_nm: float) -> float:
        """Joint torque (N*m) -> phase current needed (A, MIT sign) with the effective Kt."""
        kt = self.effective_torque_constant_nm_per_a
        return self.direction * torque_nm / (self.gear_ratio * kt)

"""MIT-mode ranges of T-Motor / CubeMars AK-series drives, keyed by (model, firmware).

In MIT mode every command and reply field is a fixed-width unsigned integer that the drive
maps linearly onto a range ``[min, max]``: position P (16 bit, rad), velocity V (12 bit,
rad/s), torque T (12 bit, N*m), stiffness Kp (12 bit, N*m/rad) and damping Kd (12 bit,
N*m*s/rad).  The ranges are compiled into the drive firmware and are *not* sent on the wire,
so host and drive must agree on them out of band.  They differ by motor model and by firmware
release, which is why :data:`TABLE` is keyed by ``(model, firmware)``.

All values are at the actuator **output shaft** (after the AK module's built-in planetary
reduction): a position of 1 rad means the output flange turned by 1 rad.

Provenance and the user's duty
------------------------------
The values below come from the vendor manuals (CubeMars AK-series driver manuals, MIT-mode
chapters) and the published driver tables derived from them, as collected in the project
issue that asked for this codec.  Those sources disagree with each other for several models
(see ``source`` of each entry), and T-Motor has changed ranges between firmware releases
without changing the model name.  **The user must check every value against the firmware
actually flashed on their drive** (the CubeMars upper-computer tool shows the firmware
version; the matching manual gives the ranges) before running a person in the device.
Two bench checks catch a wrong range without any documentation:

* velocity range: with Kp = Kd = 0 turn the output slowly by hand and compare the reply
  velocity with the finite difference of successive reply positions; a ratio other than 1
  means ``v_min``/``v_max`` are wrong (the position range is the same, +/-12.5 rad, on all V2
  drives and is the easiest to confirm: one output turn must read 2*pi).
* torque range: hang a known mass on a known lever and command a holding torque; a
  constant ratio between commanded and needed torque means ``t_min``/``t_max`` (or the torque
  constant, see :mod:`firmware_bridge.calibration`) are wrong.

Reply layout and temperature
----------------------------
``reply_length`` is 6 for the older firmware (V1.x: motor id, P, V, T only) and 8 for the V2
firmware, which appends byte 6 = temperature and byte 7 = error code.  The temperature byte
is decoded as ``temperature_c = byte6 - temperature_offset_c``.  The table uses offset 0
(the byte is the temperature in whole degrees Celsius, as the project issue describes the
V2 reply); some firmware instead sends ``temperature + 40`` so that -40..215 degC fits in
a byte.  Which one a given release sends is not documented consistently.  If an idle drive
at room temperature reads about 60-65 degC, your firmware is one of those: use
``dataclasses.replace(limits_for(model, fw), temperature_offset_c=40)``.

This module imports nothing but the standard library (firmware_bridge holds bytes on wires).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Mapping

__all__ = [
    "MitLimits",
    "TABLE",
    "UnknownMotorError",
    "limits_for",
    "known_models",
]


class UnknownMotorError(ValueError, LookupError):
    """Raised by :func:`limits_for` for a (model, firmware) pair that is not in :data:`TABLE`."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MitLimits:
    """Ranges one AK drive firmware maps its MIT-mode integer fields onto.

    Units: positions rad, velocities rad/s, torques N*m, all at the actuator output shaft;
    ``kp`` N*m/rad, ``kd`` N*m*s/rad; ``reply_length`` bytes; ``temperature_offset_c`` degC
    (reply byte 6 = temperature_c + temperature_offset_c).
    """

    model: str
    firmware: str
    p_min: float
    p_max: float
    v_min: float
    v_max: float
    t_min: float
    t_max: float
    kp_min: float = 0.0
    kp_max: float = 500.0
    kd_min: float = 0.0
    kd_max: float = 5.0
    reply_length: int
    temperature_offset_c: int
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("model", "firmware"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"MitLimits.{name}={value!r}: must be a non-empty string")
        for lo_name, hi_name in (
            ("p_min", "p_max"),
            ("v_min", "v_max"),
            ("t_min", "t_max"),
            ("kp_min", "kp_max"),
            ("kd_min", "kd_max"),
        ):
            lo = getattr(self, lo_name)
            hi = getattr(self, hi_name)
            for n, v in ((lo_name, lo), (hi_name, hi)):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise ValueError(f"MitLimits.{n}={v!r}: must be a finite number")
            if not lo < hi:
                raise ValueError(
                    f"MitLimits.{lo_name}={lo!r}, {hi_name}={hi!r}: need {lo_name} < {hi_name}"
                )
        if self.kp_min < 0 or self.kd_min < 0:
            raise ValueError(
                f"MitLimits.kp_min={self.kp_min!r}, kd_min={self.kd_min!r}: gains must be >= 0"
            )
        if self.reply_length not in (6, 8) or isinstance(self.reply_length, bool):
            raise ValueError(f"MitLimits.reply_length={self.reply_length!r}: allowed {{6, 8}}")
        t_off = self.temperature_offset_c
        if isinstance(t_off, bool) or not isinstance(t_off, int) or not 0 <= t_off <= 255:
            raise ValueError(
                f"MitLimits.temperature_offset_c={t_off!r}: must be an int in 0..255"
            )

    @property
    def key(self) -> tuple[str, str]:
        """``(model, firmware)``, the key of this entry in :data:`TABLE`."""
        return (self.model, self.firmware)

    @property
    def has_status_bytes(self) -> bool:
        """True if replies carry temperature (byte 6) and error code (byte 7)."""
        return self.reply_length == 8


_ISSUE = "project issue table (vendor manual / driver-table values as quoted); verify on your drive"


def _entry(
    model: str,
    firmware: str,
    p: float,
    v: float,
    t: float,
    reply_length: int,
    note: str = "",
) -> MitLimits:
    return MitLimits(
        model=model,
        firmware=firmware,
        p_min=-p,
        p_max=p,
        v_min=-v,
        v_max=v,
        t_min=-t,
        t_max=t,
        reply_length=reply_length,
        temperature_offset_c=0,
        source=_ISSUE + (f"; {note}" if note else ""),
    )


_ENTRIES: Final[tuple[MitLimits, ...]] = (
    _entry(
        "AK80-9", "V1.1", 12.5, 22.5, 18.0, 6,
        "V +/-22.5 rad/s per the issue; other driver tables use +/-50 rad/s for AK80-9",
    ),
    _entry("AK80-9", "V2", 12.5, 25.64, 18.0, 8),
    _entry(
        "AK80-6", "V1.0", 95.5, 45.0, 12.0, 6,
        "old firmware: P range +/-95.5 rad, unlike the +/-12.5 rad of every other entry",
    ),
    _entry("AK80-6", "V2", 12.5, 76.0, 12.0, 8),
    _entry("AK10-9", "V1.1", 12.5, 50.0, 65.0, 6),
    _entry("AK10-9", "V2", 12.5, 50.0, 65.0, 8),
    _entry("AK70-10", "V1.1", 12.5, 50.0, 24.0, 6),
    _entry("AK70-10", "V2", 12.5, 50.0, 25.0, 8),
    _entry("AK60-6", "V1.1", 12.5, 45.0, 15.0, 6),
    _entry(
        "AK60-6", "V2", 12.5, 60.0, 12.0, 8,
        "T range smaller than V1.1 (+/-12 vs +/-15 N*m): check against your manual",
    ),
    _entry("AK80-64", "V2", 12.5, 8.0, 144.0, 8),
)

#: Every known ``(model, firmware)`` -> :class:`MitLimits`.
TABLE: Final[Mapping[tuple[str, str], MitLimits]] = {e.key: e for e in _ENTRIES}


def known_models() -> dict[str, tuple[str, ...]]:
    """Model -> firmware releases present in :data:`TABLE` (sorted)."""
    out: dict[str, list[str]] = {}
    for model, fw in TABLE:
        out.setdefault(model, []).append(fw)
    return {m: tuple(sorted(fws)) for m, fws in sorted(out.items())}


def _norm_model(model: str) -> str:
    return model.strip().upper()


def _norm_firmware(firmware: str) -> str:
    fw = firmware.strip().upper()
    if fw and fw[0].isdigit():
        fw = "V" + fw
    known = {k[1] for k in TABLE}
    if fw not in known and fw.endswith(".0") and fw[:-2] in known:
        fw = fw[:-2]  # "V2.0" -> "V2"
    return fw


def limits_for(model: str, firmware: str) -> MitLimits:
    """Return the MIT-mode ranges of ``model`` running ``firmware``.

    Matching ignores case and surrounding blanks, accepts a missing ``V`` ("2" -> "V2") and
    "V2.0" for "V2".  An unknown pair raises :class:`UnknownMotorError` (a ``ValueError``)
    listing every known model and its firmware releases.
    """
    if not isinstance(model, str) or not isinstance(firmware, str):
        raise UnknownMotorError(
            f"model={model!r}, firmware={firmware!r}: both must be strings; known: "
            + _known_text()
        )
    key = (_norm_model(model), _norm_firmware(firmware))
    try:
        return TABLE[key]
    except KeyError:
        pass
    raise UnknownMotorError(
        f"unknown (model, firmware)=({model!r}, {firmware!r}); known: {_known_text()}"
    )


def _known_text() -> str:
    return "; ".join(f"{m}: {', '.join(fws)}" for m, fws in known_models().items())

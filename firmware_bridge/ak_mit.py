"""T-Motor / CubeMars AK-series MIT-mode CAN codec (classic CAN, 8-byte data, 11-bit id).

Wire format
-----------
Host -> drive, arbitration id = motor id, 8 data bytes:

* special frames: ``FF FF FF FF FF FF FF FC`` enter motor mode, ``... FD`` exit motor mode,
  ``... FE`` set the current position as zero (:data:`ENTER_MOTOR_MODE`,
  :data:`EXIT_MOTOR_MODE`, :data:`ZERO_POSITION`);
* command, fields P16 / V12 / Kp12 / Kd12 / T12 packed big-endian::

      b0 = P>>8            b1 = P&0xFF          b2 = V>>4
      b3 = (V&0xF)<<4 | Kp>>8                   b4 = Kp&0xFF
      b5 = Kd>>4           b6 = (Kd&0xF)<<4 | T>>8                  b7 = T&0xFF

  The drive applies ``T_ref = Kp*(P - p) + Kd*(V - v) + T`` at the output shaft.

Drive -> host: ``b0`` = motor id, ``P16 = b1<<8 | b2``, ``V12 = b3<<4 | b4>>4``,
``T12 = (b4&0xF)<<8 | b5``; V2 firmware appends ``b6`` = temperature (see
:mod:`firmware_bridge.motor_tables`, ``temperature_offset_c``) and ``b7`` = error code
(:data:`ERROR_NAMES`); V1.x firmware sends 6 bytes.  Some firmware is reported to put q-axis
current rather than torque in the 12-bit T field; this codec decodes the field on the
table's torque range either way (check it against a known load).

Quantisation rule (the one rule used by every encoder and decoder here)
---------------------------------------------------------------------
An n-bit field over ``[lo, hi]`` has ``L = 2**n - 1`` steps of ``q = (hi - lo) / L``
(:func:`quantum`); code ``k`` stands for ``lo + k*q`` -- the grid of ``uint_to_float`` in
the open-source MIT (Ben Katz) drive firmware, from which the AK firmware is derived.  Encoding
picks the *nearest* code, ties rounded up, after clamping to ``[lo, hi]``:
``k = floor((x - lo)*L/(hi - lo) + 1/2)``.  The published host drivers differ (truncation
instead of rounding, ``span/2**n`` instead of ``span/(2**n - 1)``); rounding to nearest
halves the worst-case error to q/2, and the ``2**n - 1`` grid is the one the drive decodes
with, so host and drive read every code as the same value (up to the drive's float32).

The formula is *evaluated* in a centred form, algebraically identical, so that the ties are
resolved exactly and identically on every platform (IEEE-754 double, this operation order)::

    mid = (lo + hi)/2;  span = hi - lo;  H = 2**(n-1)
    encode: k = H + floor((x - mid) * L / span)          (x clamped to [lo, hi] first)
    decode: x = ((k - H) + 0.5) * span / L + mid

Zero on the wire: with a symmetric range (P, V, T in every table entry) there are an even
number of codes, so 0 is *not* on the grid; it falls exactly half way between codes H-1 and
H.  By the tie rule a commanded 0 is sent as code ``H`` (``0x8000`` for P, ``0x800`` for V
and T) which decodes to exactly ``+q/2`` (e.g. +0.0044 N*m for a +/-18 N*m range).  Kp and
Kd ranges start at 0, so gain 0 is code 0 and decodes to exactly 0.0.  The *safe stop*
frame (:func:`safe_stop_command`) is Kp = Kd = 0 and T = code H: the drive applies at most
q/2 of torque, below the resolution of the interface.

Clamping and non-finite values: values outside the table range are clamped and reported in
:attr:`EncodedCommand.clamped`; NaN and +/-inf raise :class:`ValueError` naming the field,
so they never reach the wire.  One more adjustment, also reported: a command whose first
seven bytes would all be ``FF`` (P, V, Kp, Kd at maximum and T in the top 256 codes) could
be taken by the drive for a special frame (``...FD`` would drop the motor out of motor
mode, ``...FE`` would re-zero the encoder); Kd is then lowered by one code (5/4095 N*m*s/rad
with the 0..5 range) and ``"kd"`` is added to ``clamped``.

The codec uses plain Python ints and floats (no numpy, no struct) and allocates little
beyond the returned objects; about 1-2 us per encode or decode on a desktop CPU.  Nothing
here imports anything but the standard library and this package's table.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from .motor_tables import MitLimits

__all__ = [
    "ENTER_MOTOR_MODE",
    "EXIT_MOTOR_MODE",
    "ZERO_POSITION",
    "SPECIAL_FRAMES",
    "FIELDS",
    "FIELD_BITS",
    "ERROR_NAMES",
    "MalformedFrame",
    "MalformedReply",
    "MalformedCommand",
    "EncodedCommand",
    "MitCommand",
    "MitReply",
    "encode_command",
    "decode_command",
    "encode_reply",
    "decode_reply",
    "safe_stop_command",
    "special_frame",
    "quantum",
    "field_range",
    "value_to_code",
    "code_to_value",
    "frame_to_candump",
    "parse_candump",
]

ENTER_MOTOR_MODE: Final[bytes] = bytes.fromhex("FFFFFFFFFFFFFFFC")
EXIT_MOTOR_MODE: Final[bytes] = bytes.fromhex("FFFFFFFFFFFFFFFD")
ZERO_POSITION: Final[bytes] = bytes.fromhex("FFFFFFFFFFFFFFFE")

SpecialKind = Literal["enter_motor_mode", "exit_motor_mode", "zero_position"]
#: Data of each special frame -> its name.
SPECIAL_FRAMES: Final[dict[bytes, SpecialKind]] = {
    ENTER_MOTOR_MODE: "enter_motor_mode",
    EXIT_MOTOR_MODE: "exit_motor_mode",
    ZERO_POSITION: "zero_position",
}

#: Command field names, in wire order; used in ``clamped``, error messages and :func:`quantum`.
FIELDS: Final[tuple[str, ...]] = ("position_rad", "velocity_rad_s", "kp", "kd", "torque_nm")
#: Bits per field.
FIELD_BITS: Final[dict[str, int]] = {
    "position_rad": 16,
    "velocity_rad_s": 12,
    "kp": 12,
    "kd": 12,
    "torque_nm": 12,
}
_ALIASES: Final[dict[str, str]] = {
    "position": "position_rad",
    "p": "position_rad",
    "velocity": "velocity_rad_s",
    "v": "velocity_rad_s",
    "torque": "torque_nm",
    "t": "torque_nm",
}
_BIT = {name: 1 << i for i, name in enumerate(FIELDS)}
_M_P, _M_V, _M_KP, _M_KD, _M_T = (_BIT[n] for n in FIELDS)
#: clamped-mask -> frozenset of field names (precomputed: no allocation per frame).
_CLAMPED_SETS: Final[tuple[frozenset[str], ...]] = tuple(
    frozenset(n for n in FIELDS if mask & _BIT[n]) for mask in range(1 << len(FIELDS))
)

#: Reply error code (byte 7 of V2 replies) -> name.
ERROR_NAMES: Final[dict[int, str]] = {
    0: "none",
    1: "over_temperature",
    2: "over_current",
    3: "over_voltage",
    4: "under_voltage",
    5: "encoder_fault",
    6: "phase_current_unbalance",  # hardware fault
}

_MAX_STD_ID: Final[int] = 0x7FF
_MAX_EXT_ID: Final[int] = 0x1FFFFFFF

_floor = math.floor
_isfinite = math.isfinite


class MalformedFrame(ValueError):
    """A CAN frame that does not follow the MIT-mode protocol (message names field and value)."""


class MalformedReply(MalformedFrame):
    """A drive reply that fails validation (id, length or error code)."""


class MalformedCommand(MalformedFrame):
    """A host command frame that cannot be decoded as an MIT command."""


class EncodedCommand(NamedTuple):
    """Result of :func:`encode_command`.

    ``data``: the 8 data bytes; ``clamped``: names (from :data:`FIELDS`) of the fields whose
    on-wire value is not the nearest code of the requested value -- clamped to the table
    range, or Kd lowered by one code to avoid a special frame.  Empty when nothing changed.
    """

    data: bytes
    clamped: frozenset[str]


@dataclass(frozen=True, slots=True)
class MitCommand:
    """A decoded host command (what the drive will act on), output-shaft units."""

    position_rad: float
    velocity_rad_s: float
    kp: float  # N*m/rad
    kd: float  # N*m*s/rad
    torque_nm: float


@dataclass(frozen=True, slots=True)
class MitReply:
    """A decoded drive reply, output-shaft units.

    ``temperature_c``/``error_code``/``error_name`` are None for 6-byte (V1.x) replies.
    """

    motor_id: int
    position_rad: float
    velocity_rad_s: float
    torque_nm: float
    temperature_c: float | None
    error_code: int | None
    error_name: str | None

    @property
    def fault(self) -> bool:
        """True if the drive reports an error code other than 0."""
        return bool(self.error_code)


# ---------------------------------------------------------------------------------------
# per-limits constants
# ---------------------------------------------------------------------------------------

_Codec = tuple  # (limits, then lo, hi, mid, span for P, V, Kp, Kd, T)
_CODECS: dict[int, _Codec] = {}


def _build_codec(limits: MitLimits) -> _Codec:
    out: list = [limits]
    for lo, hi in (
        (limits.p_min, limits.p_max),
        (limits.v_min, limits.v_max),
        (limits.kp_min, limits.kp_max),
        (limits.kd_min, limits.kd_max),
        (limits.t_min, limits.t_max),
    ):
        lo = float(lo)
        hi = float(hi)
        out += (lo, hi, (lo + hi) / 2.0, hi - lo)
    return tuple(out)


def _codec(limits: MitLimits) -> _Codec:
    c = _CODECS.get(id(limits))
    if c is None or c[0] is not limits:
        if not isinstance(limits, MitLimits):
            raise TypeError(f"limits={limits!r}: expected a MitLimits (see limits_for)")
        if len(_CODECS) > 256:  # bounded: limits objects made on the fly do not accumulate
            _CODECS.clear()
        c = _build_codec(limits)
        _CODECS[id(limits)] = c
    return c


def _canon(field: str) -> str:
    name = _ALIASES.get(field, field)
    if name not in FIELD_BITS:
        raise ValueError(
            f"field={field!r}: allowed {sorted(FIELD_BITS)} (or aliases {sorted(_ALIASES)})"
        )
    return name


def field_range(limits: MitLimits, field: str) -> tuple[float, float]:
    """``(min, max)`` of ``field`` for ``limits`` (units of the field)."""
    c = _codec(limits)
    i = 1 + 4 * FIELDS.index(_canon(field))
    return c[i], c[i + 1]


def quantum(limits: MitLimits, field: str) -> float:
    """Value of one code step of ``field``: ``(max - min) / (2**bits - 1)`` in field units."""
    name = _canon(field)
    lo, hi = field_range(limits, name)
    return (hi - lo) / ((1 << FIELD_BITS[name]) - 1)


def _saturate(field: str, x: float, lo: float, levels: int) -> int:
    """Code for an out-of-range (or non-finite) value; raises for NaN/inf."""
    if not _isfinite(x):
        raise ValueError(f"{field}={x!r} is not finite; refusing to put it on the wire")
    return 0 if x < lo else levels


def value_to_code(limits: MitLimits, field: str, value: float) -> tuple[int, bool]:
    """Quantise one value with the module rule; returns ``(code, clamped)``.

    Raises ValueError for NaN/inf.  (Slow path helper; :func:`encode_command` inlines it.)
    """
    name = _canon(field)
    bits = FIELD_BITS[name]
    levels = (1 << bits) - 1
    c = _codec(limits)
    i = 1 + 4 * FIELDS.index(name)
    lo, hi, mid, span = c[i : i + 4]
    if lo <= value <= hi:
        return (1 << (bits - 1)) + _floor((value - mid) * levels / span), False
    return _saturate(name, value, lo, levels), True


def code_to_value(limits: MitLimits, field: str, code: int) -> float:
    """Value the code ``code`` of ``field`` stands for (inverse of :func:`value_to_code`)."""
    name = _canon(field)
    bits = FIELD_BITS[name]
    levels = (1 << bits) - 1
    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= levels:
        raise ValueError(f"{name} code={code!r}: allowed 0..{levels}")
    c = _codec(limits)
    i = 1 + 4 * FIELDS.index(name)
    _, _, mid, span = c[i : i + 4]
    return ((code - (1 << (bits - 1))) + 0.5) * span / levels + mid


# ---------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------


def encode_command(
    limits: MitLimits,
    position_rad: float,
    velocity_rad_s: float,
    kp: float,
    kd: float,
    torque_nm: float,
) -> EncodedCommand:
    """Pack one MIT command (output-shaft units) into 8 data bytes.

    ``position_rad`` rad, ``velocity_rad_s`` rad/s, ``kp`` N*m/rad, ``kd`` N*m*s/rad,
    ``torque_nm`` N*m (feed-forward).  Out-of-range values are clamped and named in
    ``clamped``; NaN/inf raise ValueError naming the field.  Send with arbitration id = the
    motor's CAN id, standard 11-bit frame.
    """
    (
        _,
        plo, phi, pmid, pspan,
        vlo, vhi, vmid, vspan,
        klo, khi, kmid, kspan,
        dlo, dhi, dmid, dspan,
        tlo, thi, tmid, tspan,
    ) = _codec(limits)
    mask = 0
    if plo <= position_rad <= phi:
        p = 32768 + _floor((position_rad - pmid) * 65535 / pspan)
    else:
        p = _saturate("position_rad", position_rad, plo, 65535)
        mask = _M_P
    if vlo <= velocity_rad_s <= vhi:
        v = 2048 + _floor((velocity_rad_s - vmid) * 4095 / vspan)
    else:
        v = _saturate("velocity_rad_s", velocity_rad_s, vlo, 4095)
        mask |= _M_V
    if klo <= kp <= khi:
        k = 2048 + _floor((kp - kmid) * 4095 / kspan)
    else:
        k = _saturate("kp", kp, klo, 4095)
        mask |= _M_KP
    if dlo <= kd <= dhi:
        d = 2048 + _floor((kd - dmid) * 4095 / dspan)
    else:
        d = _saturate("kd", kd, dlo, 4095)
        mask |= _M_KD
    if tlo <= torque_nm <= thi:
        t = 2048 + _floor((torque_nm - tmid) * 4095 / tspan)
    else:
        t = _saturate("torque_nm", torque_nm, tlo, 4095)
        mask |= _M_T
    if p == 0xFFFF and v == 0xFFF and k == 0xFFF and d == 0xFFF and t >= 0xF00:
        d = 0xFFE  # bytes 0..6 would all be FF: indistinguishable from a special frame
        mask |= _M_KD
    return EncodedCommand(
        bytes(
            (
                p >> 8,
                p & 0xFF,
                v >> 4,
                ((v & 0xF) << 4) | (k >> 8),
                k & 0xFF,
                d >> 4,
                ((d & 0xF) << 4) | (t >> 8),
                t & 0xFF,
            )
        ),
        _CLAMPED_SETS[mask],
    )


def safe_stop_command(limits: MitLimits) -> bytes:
    """Zero-torque frame: Kp = Kd = 0 (exact), T = code nearest 0 (|T| = q/2), P = V = 0.

    With both gains 0 the drive ignores P and V; the applied torque is ``+q_T/2`` where
    ``q_T = quantum(limits, "torque_nm")`` -- the closest the interface can get to zero.
    """
    return encode_command(limits, 0.0, 0.0, 0.0, 0.0, 0.0).data


def special_frame(data: bytes) -> SpecialKind | None:
    """Name of the special frame ``data`` is (enter/exit motor mode, zero position), or None."""
    return SPECIAL_FRAMES.get(bytes(data))


def decode_command(limits: MitLimits, data: bytes) -> MitCommand:
    """Decode a host command as the drive does (for the HIL drive emulator).

    Raises :class:`MalformedCommand` if ``data`` is not 8 bytes or is a special frame
    (check :func:`special_frame` first).
    """
    n = len(data)
    if n != 8:
        raise MalformedCommand(f"command data length={n}: allowed {{8}}")
    kind = SPECIAL_FRAMES.get(bytes(data))
    if kind is not None:
        raise MalformedCommand(
            f"command data={bytes(data).hex().upper()} is the special frame {kind!r}, "
            "not a command; check special_frame() first"
        )
    (
        _,
        _, _, pmid, pspan,
        _, _, vmid, vspan,
        _, _, kmid, kspan,
        _, _, dmid, dspan,
        _, _, tmid, tspan,
    ) = _codec(limits)
    b0, b1, b2, b3, b4, b5, b6, b7 = data
    return MitCommand(
        (((b0 << 8 | b1) - 32768) + 0.5) * pspan / 65535 + pmid,
        (((b2 << 4 | b3 >> 4) - 2048) + 0.5) * vspan / 4095 + vmid,
        ((((b3 & 0xF) << 8 | b4) - 2048) + 0.5) * kspan / 4095 + kmid,
        (((b5 << 4 | b6 >> 4) - 2048) + 0.5) * dspan / 4095 + dmid,
        ((((b6 & 0xF) << 8 | b7) - 2048) + 0.5) * tspan / 4095 + tmid,
    )


# ---------------------------------------------------------------------------------------
# replies
# ---------------------------------------------------------------------------------------


def encode_reply(
    limits: MitLimits,
    motor_id: int,
    position_rad: float,
    velocity_rad_s: float,
    torque_nm: float,
    temperature_c: float | None = None,
    error_code: int | None = None,
) -> bytes:
    """Pack a drive reply (for the HIL drive emulator), output-shaft units.

    Values outside the table range saturate like a drive's would; NaN/inf raise ValueError.
    For 8-byte (V2) tables ``temperature_c`` (degC, rounded to a whole degree, must fit the
    byte after the offset) and ``error_code`` (0..6) are required; for 6-byte tables they
    must be None.
    """
    if isinstance(motor_id, bool) or not isinstance(motor_id, int) or not 0 <= motor_id <= 255:
        raise ValueError(f"motor_id={motor_id!r}: allowed 0..255 (one byte)")
    p, _ = value_to_code(limits, "position_rad", position_rad)
    v, _ = value_to_code(limits, "velocity_rad_s", velocity_rad_s)
    t, _ = value_to_code(limits, "torque_nm", torque_nm)
    head = (motor_id, p >> 8, p & 0xFF, v >> 4, ((v & 0xF) << 4) | (t >> 8), t & 0xFF)
    if limits.reply_length == 6:
        if temperature_c is not None or error_code is not None:
            raise ValueError(
                f"temperature_c={temperature_c!r}, error_code={error_code!r}: "
                f"{limits.model} {limits.firmware} replies are 6 bytes, both must be None"
            )
        return bytes(head)
    if temperature_c is None or error_code is None:
        raise ValueError(
            f"temperature_c={temperature_c!r}, error_code={error_code!r}: "
            f"{limits.model} {limits.firmware} replies are 8 bytes, both are required"
        )
    if not _isfinite(temperature_c):
        raise ValueError(f"temperature_c={temperature_c!r} is not finite")
    off = limits.temperature_offset_c
    raw = _floor(temperature_c + 0.5) + off
    if not 0 <= raw <= 255:
        raise ValueError(
            f"temperature_c={temperature_c!r}: allowed {-off}..{255 - off} degC "
            f"(byte 6 = temperature + {off})"
        )
    if isinstance(error_code, bool) or error_code not in ERROR_NAMES:
        raise ValueError(f"error_code={error_code!r}: allowed {sorted(ERROR_NAMES)}")
    return bytes(head + (raw, error_code))


def decode_reply(
    limits: MitLimits,
    data: bytes,
    expected_motor_id: int | None = None,
    *,
    arbitration_id: int | None = None,
    master_id: int = 0,
) -> MitReply:
    """Decode and validate a drive reply.

    Checks, each failing with :class:`MalformedReply` naming field, value and allowed set:

    * data length equals ``limits.reply_length`` (6 for V1.x, 8 for V2);
    * byte 0 (motor id) equals ``expected_motor_id`` when given;
    * ``arbitration_id``, when given, is ``master_id`` (the MIT firmware answers on the host
      id, 0 by default) or the motor id (some firmware answers on its own id);
    * error code (byte 7) is in 0..6.

    A valid reply that *reports* a fault is returned normally (see :attr:`MitReply.fault`).
    """
    n = len(data)
    if n != limits.reply_length:
        raise MalformedReply(
            f"reply data length={n}: allowed {{{limits.reply_length}}} "
            f"for {limits.model} {limits.firmware}"
        )
    mid_ = data[0]
    if expected_motor_id is not None and mid_ != expected_motor_id:
        raise MalformedReply(
            f"reply motor_id (byte 0)={mid_}: allowed {{{expected_motor_id}}} (expected motor)"
        )
    if arbitration_id is not None and arbitration_id != master_id and arbitration_id != mid_:
        raise MalformedReply(
            f"reply arbitration_id=0x{arbitration_id:03X}: allowed "
            f"{{0x{master_id:03X} (master id), 0x{mid_:03X} (motor id)}}"
        )
    (
        _,
        _, _, pmid, pspan,
        _, _, vmid, vspan,
        _, _, _, _,
        _, _, _, _,
        _, _, tmid, tspan,
    ) = _codec(limits)
    b4 = data[4]
    position = (((data[1] << 8 | data[2]) - 32768) + 0.5) * pspan / 65535 + pmid
    velocity = (((data[3] << 4 | b4 >> 4) - 2048) + 0.5) * vspan / 4095 + vmid
    torque = ((((b4 & 0xF) << 8 | data[5]) - 2048) + 0.5) * tspan / 4095 + tmid
    if n == 6:
        return MitReply(mid_, position, velocity, torque, None, None, None)
    err = data[7]
    name = ERROR_NAMES.get(err)
    if name is None:
        raise MalformedReply(
            f"reply error_code (byte 7)={err}: allowed {sorted(ERROR_NAMES)} "
            f"({', '.join(f'{k}={v}' for k, v in ERROR_NAMES.items())})"
        )
    return MitReply(
        mid_,
        position,
        velocity,
        torque,
        float(data[6] - limits.temperature_offset_c),
        err,
        name,
    )


# ---------------------------------------------------------------------------------------
# candump text
# ---------------------------------------------------------------------------------------


def frame_to_candump(arbitration_id: int, data: bytes, *, extended: bool | None = None) -> str:
    """Format a classic CAN frame as ``candump -L`` prints it: ``"001#FFFFFFFFFFFFFFFC"``.

    Standard ids print as 3 hex digits, extended ones as 8; ``extended=None`` picks extended
    only for ids above 0x7FF.  Hex digits are upper case (as candump prints them).
    """
    if isinstance(arbitration_id, bool) or not isinstance(arbitration_id, int):
        raise ValueError(f"arbitration_id={arbitration_id!r}: must be an int")
    if extended is None:
        extended = arbitration_id > _MAX_STD_ID
    limit = _MAX_EXT_ID if extended else _MAX_STD_ID
    if not 0 <= arbitration_id <= limit:
        raise ValueError(f"arbitration_id=0x{arbitration_id:X}: allowed 0..0x{limit:X}")
    if len(data) > 8:
        raise ValueError(f"data length={len(data)}: allowed 0..8 (classic CAN)")
    ident = f"{arbitration_id:08X}" if extended else f"{arbitration_id:03X}"
    return f"{ident}#{bytes(data).hex().upper()}"


_HEX = "[0-9A-Fa-f]"
# optional "(timestamp)" and interface, then ID#DATA (candump -L / cansend syntax)
_COMPACT = re.compile(
    rf"^(?:\(\s*[0-9.]+\s*\)\s+)?(?:\S+\s+)?"
    rf"(?P<id>{_HEX}{{3}}|{_HEX}{{8}})#(?P<data>(?:{_HEX}{{2}}\.?)*)$"
)
# candump default: "[(timestamp)] can0  001   [8]  FF FF ..." (optionally "  'ascii'" after -a)
_SPACED = re.compile(
    rf"^(?:\(\s*[0-9.]+\s*\)\s+)?\S+\s+(?P<id>{_HEX}{{3}}|{_HEX}{{8}})\s+\[(?P<dlc>\d)\]"
    rf"(?P<data>(?:\s+{_HEX}{{2}})*)(?:\s+'.*')?$"
)


def parse_candump(text: str) -> tuple[int, bytes]:
    """Parse one classic CAN frame printed by candump; returns ``(arbitration_id, data)``.

    Accepts ``"001#FFFFFFFFFFFFFFFC"`` (optionally prefixed ``"(1700000000.000000) can0 "``,
    as ``candump -L`` prints) and ``"can0  001   [8]  FF FF FF FF FF FF FF FC"`` (candump's
    default form, optionally with a ``(timestamp)`` prefix).  A 3-digit id is standard
    (<= 0x7FF), an 8-digit id extended.  Remote, error and CAN FD frames raise ValueError.
    """
    line = text.strip()
    m = _COMPACT.match(line)
    if m is not None:
        data = bytes.fromhex(m.group("data").replace(".", ""))
    else:
        m = _SPACED.match(line)
        if m is None:
            raise ValueError(
                f"candump line={text!r}: expected 'III#DD..' or 'can0  III   [n]  DD ..' "
                "(classic data frame)"
            )
        data = bytes.fromhex(m.group("data"))
        dlc = int(m.group("dlc"))
        if dlc != len(data):
            raise ValueError(f"candump line={text!r}: dlc=[{dlc}] but {len(data)} data bytes")
    ident_text = m.group("id")
    ident = int(ident_text, 16)
    if len(ident_text) == 3 and ident > _MAX_STD_ID:
        raise ValueError(f"candump line={text!r}: standard id=0x{ident:X} > 0x7FF")
    if len(ident_text) == 8 and ident > _MAX_EXT_ID:
        raise ValueError(f"candump line={text!r}: extended id=0x{ident:X} > 0x1FFFFFFF")
    if len(data) > 8:
        raise ValueError(f"candump line={text!r}: data length={len(data)}: allowed 0..8")
    return ident, data

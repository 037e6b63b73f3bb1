"""Framed binary protocol of the serial sensor boards (IMU, foot switch, load cell).

Stdlib only (``firmware_bridge`` imports nothing of ours).

Wire format
===========

One frame on the wire::

    [0x00]  COBS( payload || crc16_be(payload) )  0x00

* ``crc16`` is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection,
  xorout 0x0000; check value ``crc16(b"123456789") == 0x29B1``) over the payload
  only, appended **big-endian** (high byte first).
* COBS (Consistent Overhead Byte Stuffing, Cheshire & Baker) removes every 0x00
  from the frame, so 0x00 is used only as the frame delimiter.  The encoded frame
  is ``len(payload) + 2 + 1 + (len(payload) + 2) // 254`` bytes at most, plus the
  delimiter.  A run of 254 non-zero bytes at the end of the data is encoded
  without a trailing ``0x01`` block (as the reference encoder does); the decoder
  accepts both forms.
* The leading 0x00 is optional (``encode_frame(..., leading_delimiter=True)``).
  Without it, line noise that is not followed by a 0x00 merges with the next
  frame and costs that frame; with it, it costs nothing but one byte per frame.
  Empty frames (consecutive 0x00) are ignored by the decoder.

Payload (all fields little-endian)
==================================

Header, 16 bytes (``struct`` format ``<BBBBIQ``):

====== ===== ================= =============================================
offset type  field             meaning
====== ===== ================= =============================================
0      u8    version           protocol version, must be 1
1      u8    sensor_type       1 = IMU, 2 = foot switch, 3 = load cell
2      u8    sensor_id         board instance (0..255), e.g. left/right shank
3      u8    flags             board-defined status bits, passed through
4      u32   sequence          per (sensor_type, sensor_id) counter, +1 per
                               frame, wraps 0xFFFFFFFF -> 0
8      u64   device_time_us    board clock at sampling, microseconds
====== ===== ================= =============================================

Body, by ``sensor_type`` (the body length must match exactly):

* IMU (1), 24 bytes ``<6f``: ``accel_m_s2`` x, y, z (f32, m/s^2), then
  ``gyro_rad_s`` x, y, z (f32, rad/s).
* Foot switch (2), 1 byte ``<B``: ``contacts`` bitmask, bit 0 heel, bit 1 toe
  (bits 2..7 board-defined, e.g. extra pads).
* Load cell (3), 4 bytes ``<f``: ``force_n`` (f32, newtons).

So a payload is 40 (IMU), 17 (foot switch) or 20 (load cell) bytes, and an
encoded frame (without delimiters) at most 43 bytes.

Decoding never raises for bad input: :func:`decode_frame` / :func:`decode_payload`
return a :class:`DecodeError` value, and :class:`FrameDecoder` counts and drops
such frames.
"""
from __future__ import annotations

import binascii
import enum
import math
import struct
from dataclasses import dataclass
from typing import ClassVar, Union

__all__ = [
    "PROTOCOL_VERSION",
    "HEADER_LEN",
    "MAX_ENCODED_FRAME_LEN",
    "SensorType",
    "FootContact",
    "ImuSample",
    "FootSwitchSample",
    "LoadCellSample",
    "Sample",
    "DecodeError",
    "crc16_ccitt_false",
    "cobs_encode",
    "cobs_decode",
    "CobsDecodeError",
    "encode_payload",
    "encode_frame",
    "decode_payload",
    "decode_frame",
    "FrameDecoder",
]

PROTOCOL_VERSION = 1

_HEADER = struct.Struct("<BBBBIQ")
HEADER_LEN = _HEADER.size  # 16 bytes
_IMU_BODY = struct.Struct("<6f")
_FOOT_BODY = struct.Struct("<B")
_LOAD_BODY = struct.Struct("<f")
_CRC = struct.Struct(">H")

_U32_MASK = 0xFFFFFFFF
_F32_MAX = 3.4028234663852886e38


class SensorType(enum.IntEnum):
    """``sensor_type`` byte of the payload header."""

    IMU = 1
    FOOT_SWITCH = 2
    LOAD_CELL = 3


class FootContact(enum.IntFlag):
    """Bits of :attr:`FootSwitchSample.contacts`."""

    HEEL = 0x01
    TOE = 0x02


# ---------------------------------------------------------------------------
# Sample types
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImuSample:
    """One IMU reading. Floats travel as f32, so they come back rounded to f32."""

    SENSOR_TYPE: ClassVar[SensorType] = SensorType.IMU
    sensor_id: int
    sequence: int
    device_time_us: int
    accel_m_s2: tuple[float, float, float]
    gyro_rad_s: tuple[float, float, float]
    flags: int = 0

    @property
    def sensor_type(self) -> SensorType:
        """The ``sensor_type`` byte of this sample (``SensorType.IMU``)."""
        return self.SENSOR_TYPE


@dataclass(frozen=True, slots=True)
class FootSwitchSample:
    """Foot switch contacts; ``contacts`` is a bitmask of :class:`FootContact`."""

    SENSOR_TYPE: ClassVar[SensorType] = SensorType.FOOT_SWITCH
    sensor_id: int
    sequence: int
    device_time_us: int
    contacts: int
    flags: int = 0

    @property
    def sensor_type(self) -> SensorType:
        """The ``sensor_type`` byte of this sample (``SensorType.FOOT_SWITCH``)."""
        return self.SENSOR_TYPE

    @property
    def heel(self) -> bool:
        """Heel switch closed."""
        return bool(self.contacts & FootContact.HEEL)

    @property
    def toe(self) -> bool:
        """Toe switch closed."""
        return bool(self.contacts & FootContact.TOE)


@dataclass(frozen=True, slots=True)
class LoadCellSample:
    """One load cell reading, newtons (f32 on the wire)."""

    SENSOR_TYPE: ClassVar[SensorType] = SensorType.LOAD_CELL
    sensor_id: int
    sequence: int
    device_time_us: int
    force_n: float
    flags: int = 0

    @property
    def sensor_type(self) -> SensorType:
        """The ``sensor_type`` byte of this sample (``SensorType.LOAD_CELL``)."""
        return self.SENSOR_TYPE


Sample = Union[ImuSample, FootSwitchSample, LoadCellSample]

_BODY_LEN = {
    SensorType.IMU: _IMU_BODY.size,
    SensorType.FOOT_SWITCH: _FOOT_BODY.size,
    SensorType.LOAD_CELL: _LOAD_BODY.size,
}
MAX_PAYLOAD_LEN = HEADER_LEN + max(_BODY_LEN.values())  # 40 bytes
# COBS adds 1 byte per started 254-byte block; +2 for the CRC.
MAX_ENCODED_FRAME_LEN = MAX_PAYLOAD_LEN + 2 + 1 + (MAX_PAYLOAD_LEN + 2) // 254  # 43 bytes


@dataclass(frozen=True, slots=True)
class DecodeError:
    """Why a frame was rejected. ``reason`` is one of the ``DecodeError.*`` strings."""

    reason: str
    detail: str = ""

    COBS: ClassVar[str] = "COBS"  # invalid COBS encoding
    SHORT: ClassVar[str] = "SHORT"  # fewer bytes than header + CRC
    CRC: ClassVar[str] = "CRC"  # CRC mismatch
    VERSION: ClassVar[str] = "VERSION"  # version byte != PROTOCOL_VERSION
    UNKNOWN_TYPE: ClassVar[str] = "UNKNOWN_TYPE"  # sensor_type not in SensorType
    BODY_LENGTH: ClassVar[str] = "BODY_LENGTH"  # body length wrong for sensor_type


# ---------------------------------------------------------------------------
# CRC and COBS
# ---------------------------------------------------------------------------


def crc16_ccitt_false(data: bytes, init: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, unreflected, xorout 0).

    ``binascii.crc_hqx`` is exactly this CRC with a caller-supplied init, in C.
    """
    return binascii.crc_hqx(data, init)


class CobsDecodeError(ValueError):
    """Raised by :func:`cobs_decode` for input that is not valid COBS."""


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode ``data``; the result contains no 0x00 (delimiter not added).

    O(n): the zero search and copies run in C (``bytes.split``); Python only
    loops per zero-delimited segment / 254-byte block.
    """
    out = bytearray()
    segments = bytes(data).split(b"\x00")
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        n = len(seg)
        pos = 0
        # Full 254-byte blocks: code 0xFF, no implied zero after them.
        while n - pos >= 254:
            out.append(0xFF)
            out += seg[pos : pos + 254]
            pos += 254
        rem = n - pos
        if i == last and rem == 0 and n > 0:
            # Data ends right after a full block: no trailing 0x01 block.
            break
        out.append(rem + 1)
        out += seg[pos:]
    return bytes(out)


def cobs_decode(encoded: bytes) -> bytes:
    """Decode one COBS block sequence (without delimiter).

    Raises :class:`CobsDecodeError` if ``encoded`` is empty, contains 0x00, or
    a code byte points past its end. Python loops per block, not per byte.
    """
    enc = bytes(encoded)
    n = len(enc)
    if n == 0:
        raise CobsDecodeError("empty input")
    if b"\x00" in enc:
        raise CobsDecodeError("0x00 inside COBS data")
    parts: list[bytes] = []
    i = 0
    while i < n:
        code = enc[i]
        end = i + code
        if end > n:
            raise CobsDecodeError(f"code 0x{code:02X} at offset {i} runs past end ({n} bytes)")
        parts.append(enc[i + 1 : end])
        if code != 0xFF and end < n:
            parts.append(b"\x00")
        i = end
    return b"".join(parts)


# ---------------------------------------------------------------------------
# Payload encode / decode
# ---------------------------------------------------------------------------


def _check_u(name: str, value: int, bits: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
        raise ValueError(f"{name}={value!r} is not a u{bits}")


def _check_f32(name: str, value: float) -> None:
    # NaN/inf travel as-is; finite values beyond the f32 range would raise in struct.
    if math.isfinite(value) and abs(value) > _F32_MAX:
        raise ValueError(f"{name}={value!r} out of f32 range")


def encode_payload(sample: Sample) -> bytes:
    """Header + body bytes of ``sample`` (no CRC, no COBS). Raises ValueError on out-of-range fields."""
    _check_u("sensor_id", sample.sensor_id, 8)
    _check_u("flags", sample.flags, 8)
    _check_u("sequence", sample.sequence, 32)
    _check_u("device_time_us", sample.device_time_us, 64)
    if isinstance(sample, ImuSample):
        if len(sample.accel_m_s2) != 3 or len(sample.gyro_rad_s) != 3:
            raise ValueError("accel_m_s2 and gyro_rad_s need 3 components each")
        values = (*sample.accel_m_s2, *sample.gyro_rad_s)
        for v in values:
            _check_f32("imu component", v)
        body = _IMU_BODY.pack(*values)
    elif isinstance(sample, FootSwitchSample):
        _check_u("contacts", sample.contacts, 8)
        body = _FOOT_BODY.pack(sample.contacts)
    elif isinstance(sample, LoadCellSample):
        _check_f32("force_n", sample.force_n)
        body = _LOAD_BODY.pack(sample.force_n)
    else:
        raise TypeError(f"not a sample type: {type(sample).__name__}")
    header = _HEADER.pack(
        PROTOCOL_VERSION,
        int(sample.SENSOR_TYPE),
        sample.sensor_id,
        sample.flags,
        sample.sequence,
        sample.device_time_us,
    )
    return header + body


def encode_frame(sample: Sample, *, leading_delimiter: bool = False) -> bytes:
    """Wire bytes of one frame: ``[0x00] COBS(payload || crc16_be) 0x00``."""
    payload = encode_payload(sample)
    raw = payload + _CRC.pack(crc16_ccitt_false(payload))
    frame = cobs_encode(raw) + b"\x00"
    return b"\x00" + frame if leading_delimiter else frame


def decode_payload(payload: bytes) -> Sample | DecodeError:
    """Parse header + body (CRC already checked and stripped). Never raises."""
    if len(payload) < HEADER_LEN:
        return DecodeError(DecodeError.SHORT, f"{len(payload)} < {HEADER_LEN} header bytes")
    version, stype, sid, flags, seq, t_us = _HEADER.unpack_from(payload, 0)
    if version != PROTOCOL_VERSION:
        return DecodeError(DecodeError.VERSION, f"version {version}")
    body_len = len(payload) - HEADER_LEN
    if stype == SensorType.IMU:
        if body_len != _IMU_BODY.size:
            return DecodeError(DecodeError.BODY_LENGTH, f"IMU body {body_len} != {_IMU_BODY.size}")
        ax, ay, az, gx, gy, gz = _IMU_BODY.unpack_from(payload, HEADER_LEN)
        return ImuSample(sid, seq, t_us, (ax, ay, az), (gx, gy, gz), flags)
    if stype == SensorType.FOOT_SWITCH:
        if body_len != _FOOT_BODY.size:
            return DecodeError(DecodeError.BODY_LENGTH, f"foot switch body {body_len} != {_FOOT_BODY.size}")
        return FootSwitchSample(sid, seq, t_us, payload[HEADER_LEN], flags)
    if stype == SensorType.LOAD_CELL:
        if body_len != _LOAD_BODY.size:
            return DecodeError(DecodeError.BODY_LENGTH, f"load cell body {body_len} != {_LOAD_BODY.size}")
        (force,) = _LOAD_BODY.unpack_from(payload, HEADER_LEN)
        return LoadCellSample(sid, seq, t_us, force, flags)
    return DecodeError(DecodeError.UNKNOWN_TYPE, f"sensor_type {stype}")


def decode_frame(encoded: bytes) -> Sample | DecodeError:
    """Decode one frame without its 0x00 delimiter(s): COBS, CRC, layout. Never raises."""
    try:
        raw = cobs_decode(encoded)
    except CobsDecodeError as e:
        return DecodeError(DecodeError.COBS, str(e))
    if len(raw) < HEADER_LEN + 2:
        return DecodeError(DecodeError.SHORT, f"{len(raw)} bytes")
    payload = raw[:-2]
    (crc_rx,) = _CRC.unpack_from(raw, len(raw) - 2)
    crc = crc16_ccitt_false(payload)
    if crc != crc_rx:
        return DecodeError(DecodeError.CRC, f"got 0x{crc_rx:04X}, computed 0x{crc:04X}")
    return decode_payload(payload)


# ---------------------------------------------------------------------------
# Streaming decoder
# ---------------------------------------------------------------------------


class FrameDecoder:
    """Streaming decoder: bytes in, samples out; bad frames are counted and dropped.

    Not thread-safe; feed it from one thread. Counters (plain ints):

    * ``frames_ok``: frames that decoded to a sample.
    * ``frames_corrupt``: delimited chunks that failed COBS, CRC or layout
      (``corrupt_by_reason`` breaks them down by :class:`DecodeError` reason).
      One damaged frame can count twice if the damage created a 0x00.
    * ``bytes_discarded``: bytes (delimiters excluded) of corrupt and oversize
      chunks, plus a partial frame thrown away by :meth:`reset`.
    * ``frames_dropped``: sequence numbers skipped per (sensor_type, sensor_id),
      modulo 2**32 (so ``0xFFFFFFFF -> 0`` is no gap). A frame lost to corruption
      shows up here too, once a later frame of the same sensor arrives.
    * ``sequence_resets``: a sequence that went backwards or repeated (forward gap
      >= 2**31 modulo 2**32, e.g. a board reboot); not counted as drops.
    * ``oversize``: chunks longer than ``max_frame_len`` encoded bytes; they are
      skipped up to the next 0x00 without being buffered.
    """

    COUNTER_NAMES: ClassVar[tuple[str, ...]] = (
        "frames_ok",
        "frames_corrupt",
        "bytes_discarded",
        "frames_dropped",
        "sequence_resets",
        "oversize",
    )

    def __init__(self, max_frame_len: int = 64) -> None:
        """``max_frame_len``: longest accepted encoded frame, bytes, delimiters excluded."""
        if max_frame_len < 1:
            raise ValueError("max_frame_len must be >= 1")
        self.max_frame_len = max_frame_len
        self._buf = bytearray()
        self._skipping = False  # inside an oversize chunk, waiting for 0x00
        self._last_seq: dict[tuple[int, int], int] = {}
        self.frames_ok = 0
        self.frames_corrupt = 0
        self.bytes_discarded = 0
        self.frames_dropped = 0
        self.sequence_resets = 0
        self.oversize = 0
        self.corrupt_by_reason: dict[str, int] = {}
        self.last_error: DecodeError | None = None

    def counters(self) -> dict[str, int]:
        """Snapshot of the counters by name."""
        return {name: getattr(self, name) for name in self.COUNTER_NAMES}

    def reset(self) -> None:
        """Drop any partial frame (e.g. after reopening the port); counters and sequences stay."""
        self.bytes_discarded += len(self._buf)
        self._buf.clear()
        self._skipping = False

    def feed(self, data: bytes) -> list[Sample]:
        """Consume ``data`` (any chunking) and return the samples it completed, in order."""
        out: list[Sample] = []
        data = bytes(data)
        n = len(data)
        start = 0
        if self._skipping:
            idx = data.find(0)
            if idx < 0:
                self.bytes_discarded += n
                return out
            self.bytes_discarded += idx
            self._skipping = False
            start = idx + 1
        buf = self._buf
        maxlen = self.max_frame_len
        while start < n:
            idx = data.find(0, start)
            if idx < 0:
                if len(buf) + (n - start) > maxlen:
                    self.oversize += 1
                    self.bytes_discarded += len(buf) + (n - start)
                    buf.clear()
                    self._skipping = True
                else:
                    buf += data[start:]
                break
            length = len(buf) + (idx - start)
            if length > maxlen:
                self.oversize += 1
                self.bytes_discarded += length
                buf.clear()
            elif length:
                if buf:
                    buf += data[start:idx]
                    chunk = bytes(buf)
                    buf.clear()
                else:
                    chunk = data[start:idx]
                self._handle(chunk, out)
            start = idx + 1
        return out

    def _handle(self, chunk: bytes, out: list[Sample]) -> None:
        result = decode_frame(chunk)
        if isinstance(result, DecodeError):
            self.frames_corrupt += 1
            self.bytes_discarded += len(chunk)
            self.corrupt_by_reason[result.reason] = self.corrupt_by_reason.get(result.reason, 0) + 1
            self.last_error = result
            return
        self.frames_ok += 1
        key = (int(result.SENSOR_TYPE), result.sensor_id)
        prev = self._last_seq.get(key)
        if prev is not None:
            gap = (result.sequence - prev - 1) & _U32_MASK
            if gap:
                if gap < 0x80000000:
                    self.frames_dropped += gap
                else:
                    self.sequence_resets += 1
        self._last_seq[key] = result.sequence
        out.append(result)

"""Serial sensor protocol (COBS + CRC-16/CCITT-FALSE) and the pyserial bridge.

Fast and deterministic: threads are waited on with conditions / polling with
deadlines, never with fixed sleeps.
"""
from __future__ import annotations

import os
import select
import struct
import termios
import time

import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge.serial_bridge import BridgeFault, SerialSensorBridge
from firmware_bridge.serial_protocol import (
    HEADER_LEN,
    MAX_ENCODED_FRAME_LEN,
    CobsDecodeError,
    DecodeError,
    FootContact,
    FootSwitchSample,
    FrameDecoder,
    ImuSample,
    LoadCellSample,
    SensorType,
    cobs_decode,
    cobs_encode,
    crc16_ccitt_false,
    decode_frame,
    encode_frame,
    encode_payload,
)

DEADLINE_S = 3.0  # generous upper bound for anything threaded; normal runs take ms

# Property tests: fixed seed (same examples every run), no example database, no
# per-example deadline (a loaded CI box must not turn slowness into failures).
PROPERTY = dict(derandomize=True, database=None, deadline=None)

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def imu(seq: int, sid: int = 0, t_us: int | None = None, flags: int = 0) -> ImuSample:
    # values exactly representable in f32, so round trips compare equal
    return ImuSample(
        sensor_id=sid,
        sequence=seq,
        device_time_us=1_000 * seq if t_us is None else t_us,
        accel_m_s2=(0.5, -9.8125, 1.25),
        gyro_rad_s=(0.0, -0.015625, 3.0),
        flags=flags,
    )


def load(seq: int, sid: int = 0, force_n: float = 412.5) -> LoadCellSample:
    return LoadCellSample(sensor_id=sid, sequence=seq, device_time_us=500 * seq, force_n=force_n)


def foot(seq: int, sid: int = 0, contacts: int = FootContact.HEEL) -> FootSwitchSample:
    return FootSwitchSample(sensor_id=sid, sequence=seq, device_time_us=250 * seq, contacts=int(contacts))


def raw_frame(payload: bytes) -> bytes:
    """A correctly CRC'd and COBS'd frame around an arbitrary payload."""
    return cobs_encode(payload + struct.pack(">H", crc16_ccitt_false(payload))) + b"\x00"


def crc16_bitwise(data: bytes) -> int:
    """Independent textbook CRC-16/CCITT-FALSE, bit by bit."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def wait_until(pred, timeout_s: float = DEADLINE_S, poll_s: float = 0.002) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(poll_s)
    return pred()


# ---------------------------------------------------------------------------
# CRC
# ---------------------------------------------------------------------------


def test_crc_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_bitwise(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


@settings(**PROPERTY)
@given(st.binary(max_size=300))
def test_crc_matches_bitwise_reference(data: bytes) -> None:
    assert crc16_ccitt_false(data) == crc16_bitwise(data)


# ---------------------------------------------------------------------------
# COBS
# ---------------------------------------------------------------------------

_R = bytes(range(1, 256))  # 0x01..0xFF

# Reference vectors (Cheshire & Baker / Wikipedia "Consistent Overhead Byte Stuffing").
COBS_VECTORS = [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (_R[:254], b"\xff" + _R[:254]),
    (b"\x00" + _R[:254], b"\x01\xff" + _R[:254]),
    (_R, b"\xff" + _R[:254] + b"\x02\xff"),
    (_R[1:] + b"\x00", b"\xff" + _R[1:] + b"\x01\x01"),
    (_R[2:] + b"\x00\x01", b"\xfe" + _R[2:] + b"\x02\x01"),
]


@pytest.mark.parametrize("data,encoded", COBS_VECTORS, ids=range(len(COBS_VECTORS)))
def test_cobs_reference_vectors(data: bytes, encoded: bytes) -> None:
    assert cobs_encode(data) == encoded
    assert cobs_decode(encoded) == data


def _check_cobs(data: bytes) -> None:
    enc = cobs_encode(data)
    assert b"\x00" not in enc
    assert len(enc) <= len(data) + 1 + len(data) // 254  # worst-case overhead
    assert cobs_decode(enc) == data


@pytest.mark.parametrize("n", [1, 2, 253, 254, 255, 256, 507, 508, 509, 1000])
@pytest.mark.parametrize("fill", [0x00, 0x01, 0xFF])
def test_cobs_runs(n: int, fill: int) -> None:
    _check_cobs(bytes([fill]) * n)
    _check_cobs(b"\x00" + bytes([fill]) * n + b"\x00")
    _check_cobs(b"\x42" + bytes([fill]) * n)


def _runs_strategy() -> st.SearchStrategy[bytes]:
    # Non-zero runs of lengths around the 254-byte block boundary, joined by zero runs.
    run = st.tuples(
        st.one_of(st.integers(0, 5), st.integers(250, 260), st.integers(505, 512)),
        st.integers(0, 3),
        st.integers(1, 255),
    )
    return st.lists(run, max_size=4).map(
        lambda runs: b"".join(bytes([v]) * n + b"\x00" * z for n, z, v in runs)
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], **PROPERTY)
@given(st.one_of(st.binary(max_size=1100), st.lists(st.sampled_from([0, 1, 0xFF]), max_size=600).map(bytes), _runs_strategy()))
def test_cobs_round_trip_property(data: bytes) -> None:
    _check_cobs(data)


@pytest.mark.parametrize("bad", [b"", b"\x00", b"\x03\x11", b"\x02\x11\x00\x01", b"\xff" + b"\x01" * 10])
def test_cobs_decode_rejects_invalid(bad: bytes) -> None:
    with pytest.raises(CobsDecodeError):
        cobs_decode(bad)


# ---------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------

f32 = st.floats(width=32, allow_nan=False)
u8 = st.integers(0, 0xFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
samples = st.one_of(
    st.builds(ImuSample, u8, u32, u64, st.tuples(f32, f32, f32), st.tuples(f32, f32, f32), u8),
    st.builds(FootSwitchSample, u8, u32, u64, u8, u8),
    st.builds(LoadCellSample, u8, u32, u64, f32, u8),
)


@settings(**PROPERTY)
@given(samples)
def test_frame_round_trip(sample) -> None:
    wire = encode_frame(sample)
    assert wire.endswith(b"\x00") and b"\x00" not in wire[:-1]
    assert len(wire) - 1 <= MAX_ENCODED_FRAME_LEN
    assert decode_frame(wire[:-1]) == sample
    assert FrameDecoder().feed(encode_frame(sample, leading_delimiter=True)) == [sample]


def test_payload_layout_is_little_endian_and_documented() -> None:
    p = encode_payload(LoadCellSample(sensor_id=7, sequence=0x01020304, device_time_us=0x1122334455667788, force_n=1.0, flags=0x80))
    assert p == bytes([1, 3, 7, 0x80, 4, 3, 2, 1, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]) + struct.pack("<f", 1.0)
    assert len(encode_payload(imu(1))) == HEADER_LEN + 24 == 40
    assert len(encode_payload(foot(1))) == HEADER_LEN + 1
    s = foot(1, contacts=FootContact.HEEL | FootContact.TOE)
    assert s.heel and s.toe and s.sensor_type is SensorType.FOOT_SWITCH
    wire = encode_frame(load(1))
    raw = cobs_decode(wire[:-1])
    assert raw[-2:] == crc16_ccitt_false(raw[:-2]).to_bytes(2, "big")  # CRC big-endian


def test_nan_and_inf_pass_through() -> None:
    s = ImuSample(0, 1, 2, (float("nan"), float("inf"), -float("inf")), (0.0, 0.0, 0.0))
    out = decode_frame(encode_frame(s)[:-1])
    assert isinstance(out, ImuSample)
    assert out.accel_m_s2[0] != out.accel_m_s2[0] and out.accel_m_s2[1:] == (float("inf"), -float("inf"))


@pytest.mark.parametrize(
    "bad",
    [
        LoadCellSample(256, 0, 0, 0.0),
        LoadCellSample(0, -1, 0, 0.0),
        LoadCellSample(0, 2**32, 0, 0.0),
        LoadCellSample(0, 0, 2**64, 0.0),
        LoadCellSample(0, 0, 0, 1e39),
        FootSwitchSample(0, 0, 0, 0x100),
        ImuSample(0, 0, 0, (1.0, 2.0), (1.0, 2.0, 3.0)),  # type: ignore[arg-type]
    ],
)
def test_encode_rejects_out_of_range(bad) -> None:
    with pytest.raises(ValueError):
        encode_frame(bad)


def _header(stype: int, version: int = 1, sid: int = 0, seq: int = 0) -> bytes:
    return struct.pack("<BBBBIQ", version, stype, sid, 0, seq, 0)


@pytest.mark.parametrize(
    "payload,reason",
    [
        (_header(9) + b"\x01\x02\x03\x04", DecodeError.UNKNOWN_TYPE),
        (_header(0) + b"", DecodeError.UNKNOWN_TYPE),
        (_header(1) + b"\x00" * 23, DecodeError.BODY_LENGTH),
        (_header(2) + b"\x00\x00", DecodeError.BODY_LENGTH),
        (_header(3) + b"", DecodeError.BODY_LENGTH),
        (_header(3, version=2) + b"\x00" * 4, DecodeError.VERSION),
        (b"\x01\x03\x00", DecodeError.SHORT),
    ],
)
def test_layout_errors_are_values_not_exceptions(payload: bytes, reason: str) -> None:
    wire = raw_frame(payload)
    result = decode_frame(wire[:-1])
    assert isinstance(result, DecodeError) and result.reason == reason
    dec = FrameDecoder()
    out = dec.feed(wire + encode_frame(load(1)))
    assert out == [load(1)]
    assert dec.frames_corrupt == 1 and dec.frames_ok == 1
    assert dec.corrupt_by_reason == {reason: 1}
    assert dec.bytes_discarded == len(wire) - 1


# ---------------------------------------------------------------------------
# stream decoder: resync
# ---------------------------------------------------------------------------


def test_garbage_before_first_frame() -> None:
    garbage = b"\x13\x37 boot banner v1.2\r\n\xff\xfe"
    frames = [imu(1), imu(2)]
    # Without a leading 0x00, garbage merges with the first frame, which is lost.
    dec = FrameDecoder()
    assert dec.feed(garbage + b"".join(encode_frame(s) for s in frames)) == [imu(2)]
    # 23 + 43 bytes > max_frame_len=64, so this one is counted as oversize, not corrupt
    assert dec.oversize == 1 and dec.frames_corrupt == 0 and dec.frames_dropped == 0
    # With leading delimiters nothing good is lost.
    dec = FrameDecoder()
    assert dec.feed(garbage + b"".join(encode_frame(s, leading_delimiter=True) for s in frames)) == frames
    assert dec.frames_corrupt == 1 and dec.bytes_discarded == len(garbage)


def test_garbage_between_frames() -> None:
    dec = FrameDecoder()
    stream = encode_frame(imu(1)) + b"\x00\xde\xad\x00\xbe\xef\x00" + encode_frame(imu(2)) + b"junk" + encode_frame(imu(3), leading_delimiter=True)
    assert dec.feed(stream) == [imu(1), imu(2), imu(3)]
    assert dec.frames_corrupt == 3  # "dead", "beef", "junk"
    assert dec.bytes_discarded == 2 + 2 + 4
    assert dec.frames_dropped == 0


def test_garbage_inside_frame() -> None:
    f2 = encode_frame(imu(2))
    for garbage in (b"\x55", b"\x00", b"\x01\x00\x02", b"\xff" * 5):
        for cut in (1, len(f2) // 2, len(f2) - 2):
            dec = FrameDecoder()
            out = dec.feed(encode_frame(imu(1)) + f2[:cut] + garbage + f2[cut:] + encode_frame(imu(3)))
            assert out == [imu(1), imu(3)], (garbage, cut)
            assert dec.frames_corrupt >= 1
            assert dec.frames_dropped == 1  # seq 2 missing


def test_truncated_frames() -> None:
    f1, f2, f3 = encode_frame(load(1)), encode_frame(load(2)), encode_frame(load(3))
    # Cut short then terminated (sender reset mid-frame and sent 0x00): just that frame is lost.
    dec = FrameDecoder()
    assert dec.feed(f1 + f2[:7] + b"\x00" + f3) == [load(1), load(3)]
    assert dec.frames_corrupt == 1 and dec.frames_dropped == 1
    # Cut short with no delimiter: it merges with the next frame, costing that one too ...
    dec = FrameDecoder()
    assert dec.feed(f1 + f2[:7] + f3 + encode_frame(load(4))) == [load(1), load(4)]
    assert dec.frames_corrupt == 1 and dec.frames_dropped == 2
    # ... unless frames are sent with a leading delimiter.
    dec = FrameDecoder()
    assert dec.feed(f1 + f2[:7] + encode_frame(load(3), leading_delimiter=True)) == [load(1), load(3)]
    # A truncated frame at the end of input stays pending and yields nothing.
    dec = FrameDecoder()
    assert dec.feed(f1 + f2[:-1]) == [load(1)]
    assert dec.feed(b"\x00") == [load(2)]  # ... until its delimiter arrives


def test_every_single_bit_flip_is_caught_and_next_frame_survives() -> None:
    f1, f2, f3 = (encode_frame(imu(i, t_us=0x0102030405060708 + i)) for i in (1, 2, 3))
    good = {imu(i, t_us=0x0102030405060708 + i) for i in (1, 2, 3)}
    cases = 0
    for pos in range(len(f2) - 1):  # every byte but the delimiter
        for bit in range(8):
            bad = bytearray(f2)
            bad[pos] ^= 1 << bit
            dec = FrameDecoder()
            out = dec.feed(f1 + bytes(bad) + f3)
            assert set(out) <= good, "a corrupted frame was accepted"
            assert out[0] == imu(1, t_us=0x0102030405060708 + 1) and out[-1] == imu(3, t_us=0x0102030405060708 + 3)
            assert len(out) == 2 and dec.frames_corrupt >= 1 and dec.frames_dropped == 1
            cases += 1
    assert cases == 8 * (len(f2) - 1)


def test_flipped_delimiter_costs_next_frame_unless_leading_delimiter() -> None:
    f = [encode_frame(load(i)) for i in (1, 2, 3, 4)]
    bad = f[1][:-1] + b"\x40"
    assert FrameDecoder().feed(f[0] + bad + f[2] + f[3]) == [load(1), load(4)]
    g = [encode_frame(load(i), leading_delimiter=True) for i in (1, 2, 3, 4)]
    assert FrameDecoder().feed(g[0] + g[1][:-1] + b"\x40" + g[2] + g[3]) == [load(1), load(3), load(4)]


@settings(max_examples=150, **PROPERTY)
@given(st.lists(st.integers(0, 10_000), max_size=12))
def test_any_chunking_gives_same_samples(cuts: list[int]) -> None:
    frames = [imu(1), foot(1, sid=1), load(7, sid=2), imu(2), foot(2, sid=1, contacts=0), load(8, sid=2)]
    stream = b"".join(encode_frame(s) for s in frames)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    dec, out, prev = FrameDecoder(), [], 0
    for p in points + [len(stream)]:
        out += dec.feed(stream[prev:p])
        prev = p
    assert out == frames
    assert dec.counters() == {**dict.fromkeys(FrameDecoder.COUNTER_NAMES, 0), "frames_ok": len(frames)}


@settings(max_examples=200, **PROPERTY)
@given(st.binary(max_size=400))
def test_random_garbage_never_raises_and_decoder_recovers(garbage: bytes) -> None:
    dec = FrameDecoder()
    dec.feed(garbage)
    assert len(dec._buf) <= dec.max_frame_len
    assert dec.feed(encode_frame(load(1), leading_delimiter=True))[-1:] == [load(1)]


# ---------------------------------------------------------------------------
# stream decoder: sequence gaps, oversize
# ---------------------------------------------------------------------------


def _feed_seqs(dec: FrameDecoder, seqs, make=imu) -> list:
    return dec.feed(b"".join(encode_frame(make(s)) for s in seqs))


def test_sequence_gaps() -> None:
    dec = FrameDecoder()
    _feed_seqs(dec, [1, 2, 5, 6, 10])
    assert dec.frames_dropped == 2 + 3 and dec.sequence_resets == 0


def test_sequence_wraparound() -> None:
    dec = FrameDecoder()
    _feed_seqs(dec, [0xFFFFFFFE, 0xFFFFFFFF, 0, 1])
    assert dec.frames_dropped == 0
    _feed_seqs(dec, [4])  # 2, 3 missing
    assert dec.frames_dropped == 2
    dec = FrameDecoder()
    _feed_seqs(dec, [0xFFFFFFFD, 1])  # 0xFFFFFFFE, 0xFFFFFFFF, 0 missing across the wrap
    assert dec.frames_dropped == 3 and dec.sequence_resets == 0


def test_sequences_are_per_sensor() -> None:
    dec = FrameDecoder()
    stream = b"".join(
        encode_frame(s)
        for s in [imu(1, sid=0), imu(100, sid=1), load(1, sid=0), imu(2, sid=0), imu(101, sid=1), load(3, sid=0)]
    )
    assert len(dec.feed(stream)) == 6
    assert dec.frames_dropped == 1  # only load cell 0 skipped seq 2


def test_sequence_backwards_is_a_reset_not_a_huge_drop() -> None:
    dec = FrameDecoder()
    out = _feed_seqs(dec, [1000, 1001, 0, 1, 1])  # board reboot, then a duplicate
    assert len(out) == 5  # still delivered
    assert dec.frames_dropped == 0 and dec.sequence_resets == 2


def test_oversize_is_not_buffered() -> None:
    dec = FrameDecoder(max_frame_len=MAX_ENCODED_FRAME_LEN)
    blob = bytes(range(1, 256)) * 40  # 10 200 bytes, no 0x00
    for i in range(0, len(blob), 7):
        assert dec.feed(blob[i : i + 7]) == []
        assert len(dec._buf) <= dec.max_frame_len
    assert dec.feed(b"\x00" + encode_frame(load(1))) == [load(1)]
    assert dec.oversize == 1 and dec.bytes_discarded == len(blob) and dec.frames_corrupt == 0
    # Whole oversize chunk inside one feed() call, delimited on both sides.
    dec = FrameDecoder(max_frame_len=50)
    assert dec.feed(encode_frame(load(1)) + b"\x01" * 51 + b"\x00" + encode_frame(load(2))) == [load(1), load(2)]
    assert dec.oversize == 1 and dec.bytes_discarded == 51
    # Exactly max_frame_len is still accepted.
    wire = encode_frame(imu(1))
    assert FrameDecoder(max_frame_len=len(wire) - 1).feed(wire) == [imu(1)]


# ---------------------------------------------------------------------------
# bridge over loop://
# ---------------------------------------------------------------------------


def test_bridge_loop_reads_frames_written_to_same_port() -> None:
    with SerialSensorBridge("loop://", read_timeout_s=0.01) as bridge:
        assert bridge.latest(SensorType.IMU, 0) is None
        t0 = time.monotonic_ns()
        bridge.write(encode_frame(imu(1)) + encode_frame(foot(1, sid=2)) + b"noise\x00" + encode_frame(load(5, sid=1)))
        got = bridge.wait_for_sample(SensorType.LOAD_CELL, 1, timeout_s=DEADLINE_S)
        t1 = time.monotonic_ns()
        assert got is not None
        sample, rx_ns = got
        assert sample == load(5, sid=1) and t0 <= rx_ns <= t1
        assert bridge.latest(SensorType.IMU, 0)[0] == imu(1)
        assert bridge.latest(2, 2)[0] == foot(1, sid=2)
        bridge.write(encode_frame(imu(3)))
        sample, rx2 = bridge.wait_for_sample(SensorType.IMU, 0, timeout_s=DEADLINE_S, min_sequence=3)
        assert sample == imu(3) and rx2 >= rx_ns
        stats = bridge.stats()
        assert stats["frames_ok"] == 4 and stats["frames_corrupt"] == 1 and stats["frames_dropped"] == 1
        assert stats["read_errors"] == 0 and bridge.faults() == []
        assert set(bridge.snapshot()) == {(1, 0), (2, 2), (3, 1)}
    assert not bridge.is_running


def test_bridge_close_is_prompt_and_idempotent() -> None:
    bridge = SerialSensorBridge("loop://", read_timeout_s=0.5)
    t0 = time.monotonic()
    assert bridge.close(timeout_s=2.0) is True
    assert time.monotonic() - t0 < 0.4  # cancel_read() wakes the blocked read
    assert bridge.close() is True


def test_bridge_open_failure_raises_in_caller() -> None:
    with pytest.raises(serial.SerialException):
        SerialSensorBridge("/dev/does-not-exist-serial-bridge")


class _FakePort:
    """Minimal pyserial stand-in: replays a script of byte chunks / exceptions."""

    def __init__(self, script: list) -> None:
        self.script = list(script)
        self.closed = False

    @property
    def in_waiting(self) -> int:
        return 0

    def read(self, size: int = 1) -> bytes:
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, BaseException):
                raise item
            return item
        time.sleep(0.001)
        return b""

    def write(self, data: bytes) -> int:
        return len(data)

    def cancel_read(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_bridge_serial_error_becomes_fault_and_reconnects() -> None:
    partial = encode_frame(load(2))[:6]
    ports = [
        _FakePort([encode_frame(load(1)), partial, serial.SerialException("device disconnected")]),
        serial.SerialException("could not open port: No such file"),  # first reopen fails
        serial.SerialException("could not open port: No such file"),  # reported once only
        _FakePort([encode_frame(load(3))]),
    ]
    opened: list = []

    def factory(url, **kwargs):
        item = ports.pop(0)
        if isinstance(item, BaseException):
            raise item
        opened.append(item)
        return item

    with SerialSensorBridge("fake://x", serial_factory=factory, reconnect_backoff_s=(0.001, 0.002)) as bridge:
        got = bridge.wait_for_sample(SensorType.LOAD_CELL, 0, timeout_s=DEADLINE_S, min_sequence=3)
        assert got is not None and got[0] == load(3)
        faults = bridge.faults()
        assert [f.kind for f in faults] == ["SERIAL_ERROR", "SERIAL_REOPEN_FAILED"]
        source, kind, value, t_ns = faults[0]  # plain tuple shape
        assert source == "serial:fake://x" and "device disconnected" in value and isinstance(t_ns, int)
        stats = bridge.stats()
        assert stats["read_errors"] == 1 and stats["reopens"] == 1
        assert stats["bytes_discarded"] == len(partial)  # partial frame dropped at reopen, not glued on
        assert stats["frames_corrupt"] == 0 and stats["frames_dropped"] == 1
    assert opened[0].closed and opened[1].closed


def test_bridge_without_reconnect_stops_reader_after_fault() -> None:
    port = _FakePort([OSError(5, "Input/output error")])
    bridge = SerialSensorBridge("fake://y", serial_factory=lambda url, **kw: port, reconnect=False)
    assert wait_until(lambda: not bridge.is_running)
    assert [f.kind for f in bridge.faults()] == ["SERIAL_ERROR"]
    assert isinstance(bridge.faults()[0], BridgeFault) and isinstance(bridge.faults()[0], tuple)
    assert bridge.close() is True and port.closed


# ---------------------------------------------------------------------------
# pty: raw vs cooked
#
# A fresh pty slave is in *cooked* (canonical) mode: ICANON buffers input until a
# newline and makes 0x7F (VERASE) delete the previous byte and 0x04 (VEOF) end a
# read; ICRNL turns 0x0D into 0x0A; a 0x00 counts as end-of-line (VEOL is 0);
# ISIG makes 0x03/0x1A/0x1C raise signals and flush the queue; IXON eats
# 0x11/0x13 as XON/XOFF (and XOFF stalls output); ECHO sends everything back to
# the writer. Every one of those bytes occurs in binary frames (CRC, floats,
# timestamps), so a cooked tty silently corrupts frames and delays them to the
# next 0x0A. pyserial's open() switches the tty to raw (clears ICANON, ECHO, ISIG,
# IEXTEN, ICRNL/INLCR/IGNCR, IXON/IXOFF with xonxoff=False, ISTRIP, OPOST) and
# flushes pending input, so anything written before it opened is discarded.
# ---------------------------------------------------------------------------

CONTROL_BYTES = bytes([0x0A, 0x0D, 0x03, 0x04, 0x11, 0x13, 0x7F, 0x1A, 0x1C, 0x15, 0x17, 0x12, 0x16, 0xFF, 0x80])


class _Pty:
    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self._open = {self.master, self.slave}

    def close(self, fd: int) -> None:
        """Close once; a second close could hit an unrelated fd that reused the number."""
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)


@pytest.fixture
def pty_pair():
    pty = _Pty()
    try:
        yield pty
    finally:
        pty.close(pty.master)
        pty.close(pty.slave)


def _control_samples() -> list:
    """Samples whose wire bytes contain every byte of CONTROL_BYTES."""
    out = []
    for i in range(0, len(CONTROL_BYTES), 4):
        chunk = CONTROL_BYTES[i : i + 4].ljust(4, b"\x0d")
        seq = int.from_bytes(chunk, "little")
        out.append(LoadCellSample(sensor_id=0x0A, sequence=seq, device_time_us=int.from_bytes(chunk * 2, "little"), force_n=0.0, flags=0x0D))
    out.append(FootSwitchSample(sensor_id=0x03, sequence=0x7F111304, device_time_us=0x0D0A0D0A, contacts=0x13))
    return out


def test_pyserial_open_makes_pty_raw_and_bytes_arrive_exact(pty_pair) -> None:
    master, slave, path = pty_pair.master, pty_pair.slave, pty_pair.path
    attrs = termios.tcgetattr(slave)
    assert attrs[3] & termios.ICANON and attrs[3] & termios.ECHO and attrs[0] & termios.ICRNL  # cooked
    with serial.Serial(path, 921600, timeout=0.05) as ser:
        iflag, oflag, _, lflag = termios.tcgetattr(slave)[:4]  # the same tty: its settings are shared
        assert not lflag & (termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
        assert not iflag & (termios.ICRNL | termios.IXON | termios.ISTRIP | termios.INLCR | termios.IGNCR)
        assert not oflag & termios.OPOST
        frames = _control_samples()
        wire = b"".join(encode_frame(s) for s in frames)
        assert set(CONTROL_BYTES) <= set(wire)
        sent = bytes(range(256)) * 4 + wire
        os.write(master, sent)
        got = bytearray()
        deadline = time.monotonic() + DEADLINE_S
        while len(got) < len(sent) and time.monotonic() < deadline:
            got += ser.read(len(sent) - len(got))
        assert bytes(got) == sent
        assert FrameDecoder().feed(bytes(got)[1024:]) == frames
        # nothing was echoed back to the master side
        assert select.select([master], [], [], 0)[0] == []


def test_bridge_over_pty(pty_pair) -> None:
    master, slave, path = pty_pair.master, pty_pair.slave, pty_pair.path
    frames = _control_samples()
    with SerialSensorBridge(path, read_timeout_s=0.02) as bridge:
        os.write(master, b"".join(encode_frame(s) for s in frames))
        last = frames[-1]
        got = bridge.wait_for_sample(last.SENSOR_TYPE, last.sensor_id, timeout_s=DEADLINE_S)
        assert got is not None and got[0] == last
        assert wait_until(lambda: bridge.stats()["frames_ok"] == len(frames))
        assert bridge.latest(SensorType.LOAD_CELL, 0x0A)[0] == frames[-2]
        assert bridge.stats()["frames_corrupt"] == 0 and bridge.faults() == []
        # Hang up the "device": the reader records a fault instead of dying or raising.
        pty_pair.close(master)
        assert wait_until(lambda: any(f.kind == "SERIAL_ERROR" for f in bridge.faults()))
        assert bridge.is_running  # trying to reconnect
        assert bridge.stats()["read_errors"] >= 1
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 1.5  # close() joined despite the reconnect loop


def test_cooked_pty_corrupts_frames(pty_pair) -> None:
    """What goes wrong without raw mode (ECHO/ISIG/IXON off so the test can't signal or stall)."""
    master, slave = pty_pair.master, pty_pair.slave
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~(termios.ECHO | termios.ISIG)
    attrs[0] &= ~termios.IXON
    termios.tcsetattr(slave, termios.TCSANOW, attrs)  # still canonical + ICRNL
    sample = LoadCellSample(sensor_id=0x0D, sequence=0x41_7F_42_0D, device_time_us=0, force_n=0.0)
    wire = encode_frame(sample)
    assert b"\x0d" in wire and b"\x7f" in wire
    os.write(master, wire + b"\nEND\n")
    got = b""
    deadline = time.monotonic() + DEADLINE_S
    while not got.endswith(b"END\n") and time.monotonic() < deadline:
        if select.select([slave], [], [], 0.05)[0]:
            got += os.read(slave, 4096)
    assert got.endswith(b"END\n")
    received = got[: -len(b"\nEND\n")]
    assert received != wire
    assert b"\x0d" not in received  # ICRNL: every CR became LF
    assert b"\x7f" not in received and len(received) < len(wire)  # VERASE ate bytes
    dec = FrameDecoder()
    assert dec.feed(received + b"\x00") == []
    assert dec.frames_corrupt >= 1 and dec.frames_ok == 0

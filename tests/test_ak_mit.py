"""Tests of the AK-series MIT-mode codec, its motor table and the actuator calibration.

The codec is checked against a second, independent implementation written here straight
from the protocol text: it builds the 64-bit word with shifts and ``int.to_bytes``, unpacks
with ``int.from_bytes``, and does the float maths in ``numpy.float64``.  Where the codec
and the reference share something, it is the *documented* quantisation rule (including its
evaluation order, which fixes how exact ties are resolved); that rule is in turn checked
against exact rational arithmetic (``fractions.Fraction``): every code is a nearest code.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import ak_mit
from firmware_bridge.ak_mit import (
    ENTER_MOTOR_MODE,
    ERROR_NAMES,
    EXIT_MOTOR_MODE,
    FIELDS,
    ZERO_POSITION,
    MalformedCommand,
    MalformedReply,
    MitReply,
    decode_command,
    decode_reply,
    encode_command,
    encode_reply,
    frame_to_candump,
    parse_candump,
    quantum,
    safe_stop_command,
    special_frame,
)
from firmware_bridge.calibration import ActuatorCalibration
from firmware_bridge.motor_tables import TABLE, MitLimits, UnknownMotorError, limits_for

ENTRIES = sorted(TABLE.values(), key=lambda e: e.key)
IDS = [f"{e.model}-{e.firmware}" for e in ENTRIES]

# ===========================================================================================
# Independent reference implementation (from the protocol text, numpy float64, big ints)
# ===========================================================================================

REF_BITS = {"position_rad": 16, "velocity_rad_s": 12, "kp": 12, "kd": 12, "torque_nm": 12}


def ref_range(lim: MitLimits, field: str) -> tuple[np.float64, np.float64]:
    lo, hi = {
        "position_rad": (lim.p_min, lim.p_max),
        "velocity_rad_s": (lim.v_min, lim.v_max),
        "kp": (lim.kp_min, lim.kp_max),
        "kd": (lim.kd_min, lim.kd_max),
        "torque_nm": (lim.t_min, lim.t_max),
    }[field]
    return np.float64(lo), np.float64(hi)


def ref_quantum(lim: MitLimits, field: str) -> float:
    lo, hi = ref_range(lim, field)
    return float((hi - lo) / np.float64(2 ** REF_BITS[field] - 1))


def ref_code(lim: MitLimits, field: str, x: float) -> int:
    """Documented rule: clamp, then H + floor((x - mid) * (2^n - 1) / span)."""
    n = REF_BITS[field]
    lo, hi = ref_range(lim, field)
    xx = np.float64(min(max(np.float64(x), lo), hi))
    mid = (lo + hi) / np.float64(2.0)
    code = 2 ** (n - 1) + int(np.floor((xx - mid) * np.float64(2**n - 1) / (hi - lo)))
    assert 0 <= code <= 2**n - 1
    return code


def ref_value(lim: MitLimits, field: str, code: int) -> float:
    """Textbook decode: x = x_min + code * (x_max - x_min) / (2^n - 1)."""
    lo, hi = ref_range(lim, field)
    return float(lo + np.float64(code) * (hi - lo) / np.float64(2 ** REF_BITS[field] - 1))


def ref_encode_command(lim: MitLimits, p, v, kp, kd, t) -> bytes:
    cp, cv, ckp, ckd, ct = (
        ref_code(lim, f, x) for f, x in zip(REF_BITS, (p, v, kp, kd, t))
    )
    word = (cp << 48) | (cv << 36) | (ckp << 24) | (ckd << 12) | ct
    if word >> 8 == (1 << 56) - 1:  # bytes 0..6 all FF -> would look like a special frame
        word -= 1 << 12  # Kd one code lower (Kd is 0xFFF here, no borrow)
    return word.to_bytes(8, "big")


def ref_unpack_command(data: bytes) -> tuple[int, int, int, int, int]:
    w = int.from_bytes(data, "big")
    return (w >> 48, (w >> 36) & 0xFFF, (w >> 24) & 0xFFF, (w >> 12) & 0xFFF, w & 0xFFF)


def ref_unpack_reply(data: bytes) -> tuple[int, int, int, int, int | None, int | None]:
    w = int.from_bytes(data[:6], "big")
    head = (w >> 40, (w >> 24) & 0xFFFF, (w >> 12) & 0xFFF, w & 0xFFF)
    if len(data) == 8:
        return head + (data[6], data[7])
    return head + (None, None)


def ref_encode_reply(lim, motor_id, p, v, t, temp=None, err=None) -> bytes:
    word = (
        (motor_id << 40)
        | (ref_code(lim, "position_rad", p) << 24)
        | (ref_code(lim, "velocity_rad_s", v) << 12)
        | ref_code(lim, "torque_nm", t)
    )
    out = word.to_bytes(6, "big")
    if lim.reply_length == 8:
        out += bytes([int(round(temp)) + lim.temperature_offset_c, err])
    return out


def exact_code_position(lim: MitLimits, field: str, x: float) -> Fraction:
    """Exact real position of x on the code grid: (x - lo) * (2^n - 1) / (hi - lo)."""
    lo, hi = ref_range(lim, field)
    x = min(max(x, float(lo)), float(hi))
    return (Fraction(x) - Fraction(float(lo))) * (2 ** REF_BITS[field] - 1) / (
        Fraction(float(hi)) - Fraction(float(lo))
    )


def ref_guarded(lim: MitLimits, args) -> bool:
    """True if P, V, Kp, Kd codes are all-ones and T >= 0xF00 (bytes 0..6 would be FF)."""
    return all(
        ref_code(lim, f, x) == 2 ** REF_BITS[f] - 1 for f, x in zip(REF_BITS, args[:4])
    ) and ref_code(lim, "torque_nm", args[4]) >= 0xF00


def grid_values(lim: MitLimits, field: str) -> list[float]:
    lo, hi = (float(v) for v in ref_range(lim, field))
    q = ref_quantum(lim, field)
    vals = [lo, hi, 0.0, q, -q, q / 2, -q / 2, 1.5 * q, lo + q, hi - q, lo + q / 2, hi - q / 2,
            lo - 1.0, hi + 1.0, lo - 1e-12, hi + 1e-12, 0.1, -1.0 / 3.0, hi / 7.0, 1e-9]
    return vals


def in_range(lim: MitLimits, field: str, x: float) -> bool:
    lo, hi = ref_range(lim, field)
    return float(lo) <= x <= float(hi)


# ===========================================================================================
# Motor table
# ===========================================================================================

EXPECTED_TABLE = {
    # (model, firmware): (P, V, T, reply_length)
    ("AK80-9", "V1.1"): (12.5, 22.5, 18.0, 6),
    ("AK80-9", "V2"): (12.5, 25.64, 18.0, 8),
    ("AK80-6", "V1.0"): (95.5, 45.0, 12.0, 6),
    ("AK80-6", "V2"): (12.5, 76.0, 12.0, 8),
    ("AK10-9", "V1.1"): (12.5, 50.0, 65.0, 6),
    ("AK10-9", "V2"): (12.5, 50.0, 65.0, 8),
    ("AK70-10", "V1.1"): (12.5, 50.0, 24.0, 6),
    ("AK70-10", "V2"): (12.5, 50.0, 25.0, 8),
    ("AK60-6", "V1.1"): (12.5, 45.0, 15.0, 6),
    ("AK60-6", "V2"): (12.5, 60.0, 12.0, 8),
    ("AK80-64", "V2"): (12.5, 8.0, 144.0, 8),
}


def test_table_matches_the_issue_values():
    assert set(TABLE) == set(EXPECTED_TABLE)
    for key, (p, v, t, n) in EXPECTED_TABLE.items():
        e = TABLE[key]
        assert (e.p_min, e.p_max, e.v_min, e.v_max, e.t_min, e.t_max) == (-p, p, -v, v, -t, t)
        assert (e.kp_min, e.kp_max, e.kd_min, e.kd_max) == (0.0, 500.0, 0.0, 5.0)
        assert e.reply_length == n
        assert e.temperature_offset_c == 0
        assert e.key == key


def test_limits_for_normalises_and_lists_known_on_error():
    assert limits_for("ak80-9", " v2 ") is TABLE[("AK80-9", "V2")]
    assert limits_for("AK80-9", "2") is TABLE[("AK80-9", "V2")]
    assert limits_for("AK80-9", "V2.0") is TABLE[("AK80-9", "V2")]
    with pytest.raises(UnknownMotorError, match=r"'AK80-99'.*AK80-9: V1\.1, V2") as exc:
        limits_for("AK80-99", "V2")
    assert isinstance(exc.value, ValueError)
    with pytest.raises(ValueError, match=r"'V3'.*AK80-64: V2"):
        limits_for("AK80-9", "V3")


def test_mit_limits_validation_names_field():
    base = dict(model="X", firmware="V9", p_min=-1.0, p_max=1.0, v_min=-1.0, v_max=1.0,
                t_min=-1.0, t_max=1.0, reply_length=8, temperature_offset_c=0)
    MitLimits(**base)
    for change, pattern in [
        ({"p_min": 2.0}, r"p_min=2\.0.*p_max=1\.0"),
        ({"v_max": float("nan")}, r"v_max=nan"),
        ({"reply_length": 7}, r"reply_length=7.*\{6, 8\}"),
        ({"temperature_offset_c": 300}, r"temperature_offset_c=300"),
        ({"model": ""}, r"model=''"),
        ({"kp_min": -1.0}, r"kp_min=-1\.0"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            MitLimits(**{**base, **change})


# ===========================================================================================
# Golden frames
# ===========================================================================================

AK80_9_V2 = TABLE[("AK80-9", "V2")]
AK80_9_V11 = TABLE[("AK80-9", "V1.1")]


def test_special_frames_literal():
    assert ENTER_MOTOR_MODE == bytes.fromhex("FFFFFFFFFFFFFFFC")
    assert EXIT_MOTOR_MODE == bytes.fromhex("FFFFFFFFFFFFFFFD")
    assert ZERO_POSITION == bytes.fromhex("FFFFFFFFFFFFFFFE")
    assert special_frame(ENTER_MOTOR_MODE) == "enter_motor_mode"
    assert special_frame(bytearray(EXIT_MOTOR_MODE)) == "exit_motor_mode"
    assert special_frame(ZERO_POSITION) == "zero_position"
    assert special_frame(bytes(8)) is None


# Hand computed (AK80-9 V2: P +/-12.5, V +/-25.64, T +/-18, Kp 0..500, Kd 0..5):
#  zero:  P = 32768 + floor(0) = 0x8000, V = T = 0x800, Kp = 2048 + floor(-250*4095/500)
#         = 2048 - 2048 = 0, Kd likewise 0  -> 80 00 | 80 0 | 0 00 | 00 0 | 8 00
#  p=1:   32768 + floor(65535/25 = 2621.4) = 35389 = 0x8A3D
#  v=-1:  2048 + floor(-4095/51.28 = -79.86) = 1968 = 0x7B0
#  kp=10: 2048 + floor(-240*8.19 = -1965.6) = 82 = 0x052
#  kd=.5: 2048 + floor(-2*819 = -1638) = 410 = 0x19A   (exact tie 409.5 -> rounded up)
#  t=1:   2048 + floor(4095/36 = 113.75) = 2161 = 0x871
#  -> 8A 3D | 7B 0 | 0 52 | 19 A | 8 71
GOLDEN_COMMANDS = [
    (AK80_9_V2, (0.0, 0.0, 0.0, 0.0, 0.0), "8000800000000800"),
    (AK80_9_V2, (1.0, -1.0, 10.0, 0.5, 1.0), "8A3D7B005219A871"),
    (AK80_9_V2, (12.5, -25.64, 500.0, 0.0, -18.0), "FFFF000FFF000000"),
    (AK80_9_V2, (0.0, 0.0, 250.0, 2.5, 0.0), "8000800800800800"),
    (AK80_9_V2, (-12.5, 25.64, 0.0, 5.0, 18.0), "0000FFF000FFFFFF"),
    # AK80-64 V2 (T +/-144): t = -144 -> T code 0x000
    (TABLE[("AK80-64", "V2")], (0.0, 0.0, 0.0, 0.0, -144.0), "8000800000000000"),
]


@pytest.mark.parametrize("lim,args,hexdata", GOLDEN_COMMANDS)
def test_golden_command_frames(lim, args, hexdata):
    enc = encode_command(lim, *args)
    assert enc.data == bytes.fromhex(hexdata)
    assert enc.clamped == frozenset()
    assert ref_encode_command(lim, *args) == bytes.fromhex(hexdata)


def test_golden_reply_frames():
    # V2, motor 1, P=0x8000, V=0x800, T=0x800, 25 degC, no error
    r = decode_reply(AK80_9_V2, bytes.fromhex("0180008008001900"), 1, arbitration_id=0)
    q = {f: quantum(AK80_9_V2, f) for f in FIELDS}
    assert r == MitReply(1, q["position_rad"] / 2, q["velocity_rad_s"] / 2,
                         q["torque_nm"] / 2, 25.0, 0, "none")
    # V1.1 6-byte reply, motor 3, P=0x7FFF, V=0x7FF, T=0x7FF: each -q/2
    r = decode_reply(AK80_9_V11, bytes.fromhex("037FFF7FF7FF"), 3)
    q = {f: quantum(AK80_9_V11, f) for f in FIELDS}
    assert r.motor_id == 3
    assert r.position_rad == -q["position_rad"] / 2
    assert r.velocity_rad_s == -q["velocity_rad_s"] / 2
    assert r.torque_nm == -q["torque_nm"] / 2
    assert (r.temperature_c, r.error_code, r.error_name) == (None, None, None)
    # full scale, over-temperature reported (a valid reply that reports a fault)
    r = decode_reply(AK80_9_V2, bytes.fromhex("02FFFFFFFFFF5A01"), 2)
    assert (r.position_rad, r.velocity_rad_s, r.torque_nm) == (12.5, 25.64, 18.0)
    assert (r.temperature_c, r.error_code, r.error_name, r.fault) == (90.0, 1, "over_temperature",
                                                                      True)
    r = decode_reply(AK80_9_V2, bytes.fromhex("0200000000000006"), 2)
    assert (r.position_rad, r.velocity_rad_s, r.torque_nm) == (-12.5, -25.64, -18.0)
    assert r.error_name == "phase_current_unbalance"


def test_encode_reply_golden_and_temperature_offset():
    assert encode_reply(AK80_9_V2, 1, 0.0, 0.0, 0.0, 25, 0) == bytes.fromhex("0180008008001900")
    assert encode_reply(AK80_9_V11, 3, -12.5, 25.64, 0.0) == bytes.fromhex("030000FFF800")
    off40 = dataclasses.replace(AK80_9_V2, temperature_offset_c=40)
    data = encode_reply(off40, 1, 0.0, 0.0, 0.0, 25.0, 0)
    assert data[6] == 65
    assert decode_reply(off40, data, 1).temperature_c == 25.0
    assert decode_reply(AK80_9_V2, data, 1).temperature_c == 65.0  # wrong offset: reads +40
    with pytest.raises(ValueError, match=r"temperature_c=-41.*-40\.\.215"):
        encode_reply(off40, 1, 0.0, 0.0, 0.0, -41, 0)
    with pytest.raises(ValueError, match=r"both are required"):
        encode_reply(AK80_9_V2, 1, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"6 bytes"):
        encode_reply(AK80_9_V11, 1, 0.0, 0.0, 0.0, 25, 0)
    with pytest.raises(ValueError, match=r"error_code=7"):
        encode_reply(AK80_9_V2, 1, 0.0, 0.0, 0.0, 25, 7)
    with pytest.raises(ValueError, match=r"motor_id=256"):
        encode_reply(AK80_9_V2, 256, 0.0, 0.0, 0.0, 25, 0)
    with pytest.raises(ValueError, match=r"torque_nm=nan"):
        encode_reply(AK80_9_V2, 1, 0.0, 0.0, float("nan"), 25, 0)


# ===========================================================================================
# Zero: the bound and the exact gain zeros, for every table entry
# ===========================================================================================


@pytest.mark.parametrize("lim", ENTRIES, ids=IDS)
def test_zero_is_within_half_a_quantum_and_gains_zero_exact(lim):
    enc = encode_command(lim, 0.0, 0.0, 0.0, 0.0, 0.0)
    cp, cv, ckp, ckd, ct = ref_unpack_command(enc.data)
    assert (ckp, ckd) == (0, 0)  # Kp, Kd ranges start at 0: exact
    cmd = decode_command(lim, enc.data)
    assert cmd.kp == 0.0 and cmd.kd == 0.0
    for field, code, value in (("position_rad", cp, cmd.position_rad),
                               ("velocity_rad_s", cv, cmd.velocity_rad_s),
                               ("torque_nm", ct, cmd.torque_nm)):
        q = quantum(lim, field)
        assert abs(value) <= q / 2  # no epsilon: the centred decode gives exactly q/2
        assert value == q / 2  # documented choice: ties go up, zero -> code 2**(n-1)
        assert code == 2 ** (REF_BITS[field] - 1)
        # exact arithmetic: the code's true value is within q/2 of zero
        lo, hi = ref_range(lim, field)
        exact = Fraction(float(lo)) + code * (Fraction(float(hi)) - Fraction(float(lo))) / (
            2 ** REF_BITS[field] - 1)
        assert abs(exact) <= (Fraction(float(hi)) - Fraction(float(lo))) / (
            2 * (2 ** REF_BITS[field] - 1))
        # textbook decode lo + k*span/L agrees up to cancellation error (a few ulp of lo)
        assert abs(ref_value(lim, field, code)) <= q / 2 + 8 * math.ulp(float(lo))
    assert safe_stop_command(lim) == enc.data
    assert ref_unpack_command(safe_stop_command(lim))[2:4] == (0, 0)


@pytest.mark.parametrize("lim", ENTRIES, ids=IDS)
def test_endpoint_codes_decode_exactly_to_the_range(lim):
    for field in FIELDS:
        lo, hi = ak_mit.field_range(lim, field)
        top = 2 ** REF_BITS[field] - 1
        assert ak_mit.code_to_value(lim, field, 0) == lo
        assert ak_mit.code_to_value(lim, field, top) == hi
        assert ak_mit.value_to_code(lim, field, lo) == (0, False)
        assert ak_mit.value_to_code(lim, field, hi) == (top, False)


# ===========================================================================================
# Codec vs reference over a grid, every table entry
# ===========================================================================================


def _check_one(lim, args):
    enc = encode_command(lim, *args)
    assert enc.data == ref_encode_command(lim, *args), (lim.key, args)
    codes = ref_unpack_command(enc.data)
    cmd = decode_command(lim, enc.data)
    decoded = (cmd.position_rad, cmd.velocity_rad_s, cmd.kp, cmd.kd, cmd.torque_nm)
    guard = ref_guarded(lim, args)
    for field, x, code, y in zip(FIELDS, args, codes, decoded):
        q = ref_quantum(lim, field)
        assert y == pytest.approx(ref_value(lim, field, code), abs=1e-9 * q)
        lo, hi = (float(b) for b in ref_range(lim, field))
        target = min(max(x, lo), hi)
        tol = q if (guard and field == "kd") else q / 2
        assert abs(y - target) <= tol * (1 + 1e-9) + 1e-12 * abs(target), (field, x, y)
        assert abs(y - target) <= q * (1 + 1e-9)  # "within one quantum"
        # the code is a nearest grid point of the exact value (ties either way)
        if not (guard and field == "kd"):
            assert abs(exact_code_position(lim, field, x) - code) <= Fraction(1, 2) + Fraction(
                1, 10**9)
        expect_clamped = not in_range(lim, field, x) or (guard and field == "kd")
        assert (field in enc.clamped) == expect_clamped, (field, x, enc.clamped)


@pytest.mark.parametrize("lim", ENTRIES, ids=IDS)
def test_codec_matches_reference_on_grid(lim):
    grids = [grid_values(lim, f) for f in FIELDS]
    # each field swept over its whole grid while the others rotate through theirs
    for i in range(max(len(g) for g in grids)):
        for shift in range(len(FIELDS)):
            args = tuple(grids[j][(i + j * shift) % len(grids[j])] for j in range(len(FIELDS)))
            _check_one(lim, args)
    # full product of the key points (min, max, 0, +/-quantum): 5**5 frames
    key_points = [[g[0], g[1], g[2], g[3], g[4]] for g in grids]
    for args in itertools.product(*key_points):
        _check_one(lim, args)


@pytest.mark.parametrize("lim", ENTRIES, ids=IDS)
def test_reply_codec_matches_reference_on_grid(lim):
    has8 = lim.reply_length == 8
    for i, (p, v, t) in enumerate(zip(grid_values(lim, "position_rad"),
                                      grid_values(lim, "velocity_rad_s"),
                                      grid_values(lim, "torque_nm"))):
        temp = (20 + i) if has8 else None
        err = (i % 7) if has8 else None
        data = encode_reply(lim, 1 + i, p, v, t, temp, err)
        assert data == ref_encode_reply(lim, 1 + i, p, v, t, temp, err)
        assert len(data) == lim.reply_length
        r = decode_reply(lim, data, 1 + i, arbitration_id=0)
        mid, cp, cv, ct, raw_t, raw_e = ref_unpack_reply(data)
        assert r.motor_id == mid == 1 + i
        for field, code, y, x in (("position_rad", cp, r.position_rad, p),
                                  ("velocity_rad_s", cv, r.velocity_rad_s, v),
                                  ("torque_nm", ct, r.torque_nm, t)):
            q = ref_quantum(lim, field)
            assert y == pytest.approx(ref_value(lim, field, code), abs=1e-9 * q)
            lo, hi = (float(b) for b in ref_range(lim, field))
            assert abs(y - min(max(x, lo), hi)) <= q / 2 * (1 + 1e-9) + 1e-12
        if has8:
            assert r.temperature_c == float(raw_t - lim.temperature_offset_c) == float(temp)
            assert r.error_code == raw_e == err and r.error_name == ERROR_NAMES[err]
        else:
            assert r.temperature_c is None and r.error_code is None


# ===========================================================================================
# Special-frame guard
# ===========================================================================================


@pytest.mark.parametrize("lim", ENTRIES, ids=IDS)
@pytest.mark.parametrize("t_code", [0xF00, 0xFFB, 0xFFC, 0xFFD, 0xFFE, 0xFFF])
def test_command_never_looks_like_a_special_frame(lim, t_code):
    t = ref_value(lim, "torque_nm", t_code)
    assert ref_code(lim, "torque_nm", t) == t_code
    enc = encode_command(lim, lim.p_max, lim.v_max, lim.kp_max, lim.kd_max, t)
    assert enc.data[:7] != b"\xff" * 7
    assert special_frame(enc.data) is None
    assert enc.clamped == {"kd"}
    assert ref_unpack_command(enc.data) == (0xFFFF, 0xFFF, 0xFFF, 0xFFE, t_code)
    assert enc.data == ref_encode_command(lim, lim.p_max, lim.v_max, lim.kp_max, lim.kd_max, t)
    # one torque code lower than 0xF00 needs no adjustment
    enc = encode_command(lim, lim.p_max, lim.v_max, lim.kp_max, lim.kd_max,
                         ref_value(lim, "torque_nm", 0xEFF))
    assert enc.clamped == frozenset() and enc.data[5:7] == b"\xff\xfe"


def test_decode_command_rejects_special_and_short_frames():
    for frame, kind in ((ENTER_MOTOR_MODE, "enter_motor_mode"),
                        (EXIT_MOTOR_MODE, "exit_motor_mode"),
                        (ZERO_POSITION, "zero_position")):
        with pytest.raises(MalformedCommand, match=kind):
            decode_command(AK80_9_V2, frame)
    with pytest.raises(MalformedCommand, match=r"length=7"):
        decode_command(AK80_9_V2, bytes(7))


# ===========================================================================================
# Hypothesis properties
# ===========================================================================================


@st.composite
def entry_and_inrange(draw):
    lim = draw(st.sampled_from(ENTRIES))
    vals = []
    for f in FIELDS:
        lo, hi = (float(b) for b in ref_range(lim, f))
        vals.append(draw(st.floats(min_value=lo, max_value=hi, allow_nan=False)))
    return lim, tuple(vals)


@settings(max_examples=400, deadline=None)
@given(entry_and_inrange())
def test_property_round_trip_in_range(case):
    lim, args = case
    enc = encode_command(lim, *args)
    assert enc.data == ref_encode_command(lim, *args)
    _check_one(lim, args)


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ENTRIES), st.tuples(finite, finite, finite, finite, finite))
def test_property_clamping(lim, args):
    enc = encode_command(lim, *args)
    assert enc.data == ref_encode_command(lim, *args)
    codes = ref_unpack_command(enc.data)
    guarded = ref_guarded(lim, args)
    for field, x, code in zip(FIELDS, args, codes):
        lo, hi = ref_range(lim, field)
        top = 2 ** REF_BITS[field] - 1
        if x < lo:
            assert code == 0 and field in enc.clamped
        elif x > hi:
            assert code == (top - 1 if (field == "kd" and guarded) else top)
            assert field in enc.clamped
        elif field == "kd" and guarded:
            assert code == top - 1 and field in enc.clamped
        else:
            assert field not in enc.clamped


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ENTRIES), st.sampled_from(FIELDS), finite, finite)
def test_property_monotone(lim, field, a, b):
    a, b = min(a, b), max(a, b)
    ca, _ = ak_mit.value_to_code(lim, field, a)
    cb, _ = ak_mit.value_to_code(lim, field, b)
    assert ca <= cb
    assert ca == ref_code(lim, field, a)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ENTRIES), st.sampled_from(FIELDS), st.data())
def test_property_code_round_trip(lim, field, data):
    code = data.draw(st.integers(0, 2 ** REF_BITS[field] - 1))
    value = ak_mit.code_to_value(lim, field, code)
    assert value == pytest.approx(ref_value(lim, field, code), abs=1e-9 * ref_quantum(lim, field))
    assert ak_mit.value_to_code(lim, field, value) == (code, False)


# ===========================================================================================
# Non-finite values and malformed replies
# ===========================================================================================


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), np.float64("nan")])
@pytest.mark.parametrize("index", range(5))
def test_non_finite_rejected_naming_field(index, bad):
    args = [0.0] * 5
    args[index] = bad
    with pytest.raises(ValueError, match="^" + re.escape(f"{FIELDS[index]}={bad!r} is not finite")):
        encode_command(AK80_9_V2, *args)


GOOD_V2 = bytes.fromhex("0180008008001900")
GOOD_V11 = bytes.fromhex("018000800800")


@pytest.mark.parametrize(
    "lim,data,expected,kwargs,pattern",
    [
        (AK80_9_V2, GOOD_V2[:5], 1, {}, r"length=5: allowed \{8\}"),
        (AK80_9_V2, GOOD_V2[:7], 1, {}, r"length=7: allowed \{8\}"),
        (AK80_9_V2, GOOD_V2 + b"\x00", 1, {}, r"length=9: allowed \{8\}"),
        (AK80_9_V2, GOOD_V2[:6], 1, {}, r"length=6: allowed \{8\}"),
        (AK80_9_V11, GOOD_V2, 1, {}, r"length=8: allowed \{6\}"),
        (AK80_9_V2, GOOD_V2[:7] + b"\x07", 1, {}, r"error_code \(byte 7\)=7: allowed \[0, 1"),
        (AK80_9_V2, GOOD_V2[:7] + b"\xff", 1, {}, r"error_code \(byte 7\)=255"),
        (AK80_9_V2, b"\x02" + GOOD_V2[1:], 1, {}, r"motor_id \(byte 0\)=2: allowed \{1\}"),
        (AK80_9_V11, b"\x05" + GOOD_V11[1:], 4, {}, r"motor_id \(byte 0\)=5: allowed \{4\}"),
        (AK80_9_V2, GOOD_V2, 1, {"arbitration_id": 0x005},
         r"arbitration_id=0x005: allowed \{0x000 \(master id\), 0x001 \(motor id\)\}"),
        (AK80_9_V2, GOOD_V2, None, {"arbitration_id": 0x002, "master_id": 0x7F},
         r"arbitration_id=0x002"),
    ],
)
def test_malformed_replies_rejected(lim, data, expected, kwargs, pattern):
    with pytest.raises(MalformedReply, match=pattern) as exc:
        decode_reply(lim, data, expected, **kwargs)
    assert isinstance(exc.value, ValueError)


def test_reply_arbitration_id_accepts_master_or_motor_id():
    assert decode_reply(AK80_9_V2, GOOD_V2, 1, arbitration_id=0).motor_id == 1
    assert decode_reply(AK80_9_V2, GOOD_V2, 1, arbitration_id=1).motor_id == 1
    assert decode_reply(AK80_9_V2, GOOD_V2, None).motor_id == 1
    assert decode_reply(AK80_9_V2, bytearray(GOOD_V2), 1).motor_id == 1
    assert decode_reply(AK80_9_V2, memoryview(GOOD_V2), 1).motor_id == 1


def test_field_helpers():
    assert quantum(AK80_9_V2, "torque") == quantum(AK80_9_V2, "torque_nm") == 36.0 / 4095
    assert quantum(AK80_9_V2, "position_rad") == 25.0 / 65535
    assert ak_mit.field_range(AK80_9_V2, "v") == (-25.64, 25.64)
    with pytest.raises(ValueError, match=r"field='speed'"):
        quantum(AK80_9_V2, "speed")
    with pytest.raises(ValueError, match=r"kp code=4096: allowed 0\.\.4095"):
        ak_mit.code_to_value(AK80_9_V2, "kp", 4096)
    assert ak_mit.value_to_code(AK80_9_V2, "kd", 9.0) == (4095, True)
    with pytest.raises(TypeError, match="MitLimits"):
        encode_command(None, 0, 0, 0, 0, 0)  # type: ignore[arg-type]


# ===========================================================================================
# candump text
# ===========================================================================================


def test_candump_literal_forms():
    assert frame_to_candump(1, ENTER_MOTOR_MODE) == "001#FFFFFFFFFFFFFFFC"
    assert frame_to_candump(0x7FF, b"") == "7FF#"
    assert frame_to_candump(0x12345, b"\x01\xab") == "00012345#01AB"
    assert frame_to_candump(1, b"\x01", extended=True) == "00000001#01"
    assert parse_candump("001#FFFFFFFFFFFFFFFC") == (1, ENTER_MOTOR_MODE)
    assert parse_candump("001#ffffffffffffffFD") == (1, EXIT_MOTOR_MODE)
    assert parse_candump("(1700000000.123456) can0 001#FFFFFFFFFFFFFFFE\n") == (1, ZERO_POSITION)
    assert parse_candump("  can0  001   [8]  FF FF FF FF FF FF FF FC") == (1, ENTER_MOTOR_MODE)
    assert parse_candump(" (000.000100)  vcan0  000   [6]  01 80 00 80 08 00") == (
        0, bytes.fromhex("018000800800"))
    assert parse_candump("can0  12345678   [2]  01 AB   '..'") == (0x12345678, b"\x01\xab")
    assert parse_candump("can0  7FF   [0]") == (0x7FF, b"")
    assert parse_candump("123#11.22.33") == (0x123, b"\x11\x22\x33")


@pytest.mark.parametrize("line", [
    "001#R", "001##0FF", "800#00", "001#0", "001#112233445566778899",
    "can0  001   [3]  01 02", "can0  001   [9]  01 02 03 04 05 06 07 08 09", "hello",
    "1#00", "can0 001 8 FF",
])
def test_candump_rejects(line):
    with pytest.raises(ValueError, match="candump line|id="):
        parse_candump(line)


def test_frame_to_candump_rejects():
    with pytest.raises(ValueError, match=r"arbitration_id=0x20000000"):
        frame_to_candump(0x20000000, b"")
    with pytest.raises(ValueError, match=r"arbitration_id=0x800"):
        frame_to_candump(0x800, b"", extended=False)
    with pytest.raises(ValueError, match=r"length=9"):
        frame_to_candump(1, bytes(9))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0x1FFFFFFF), st.binary(min_size=0, max_size=8), st.booleans())
def test_candump_round_trip(ident, data, spaced):
    line = frame_to_candump(ident, data)
    assert parse_candump(line) == (ident, data)
    if spaced:
        width = 3 if ident <= 0x7FF else 8
        alt = f"can0  {ident:0{width}X}   [{len(data)}]  " + " ".join(f"{b:02X}" for b in data)
        assert parse_candump(alt) == (ident, data)


@settings(max_examples=200, deadline=None)
@given(entry_and_inrange(), st.integers(1, 0x7FF))
def test_command_through_candump(case, motor_id):
    lim, args = case
    data = encode_command(lim, *args).data
    ident, back = parse_candump(frame_to_candump(motor_id, data))
    assert (ident, back) == (motor_id, data)
    assert decode_command(lim, back) == decode_command(lim, data)


# ===========================================================================================
# Calibration
# ===========================================================================================

CAL = {
    "name": "knee_r_motor",
    "can_id": 1,
    "model": "AK80-9",
    "firmware": "V2",
    "direction": 1,
    "zero_offset_rad": 0.0,
    "gear_ratio": 1.0,
    "torque_constant_nm_per_a": 0.819,
    "measured_torque_constant_nm_per_a": None,
}


def test_calibration_from_mapping_like_launch_config():
    cal = ActuatorCalibration.from_mapping(CAL)
    assert cal.limits is AK80_9_V2
    assert cal.effective_torque_constant_nm_per_a == 0.819
    assert cal.wire_torque_scale == 1.0
    assert cal.joint_to_motor_torque(5.0) == 5.0
    cal2 = ActuatorCalibration.from_mapping({k: v for k, v in CAL.items()
                                             if k != "measured_torque_constant_nm_per_a"})
    assert cal2 == cal
    assert ActuatorCalibration.from_mapping({**CAL, "direction": -1.0}).direction == -1


@pytest.mark.parametrize(
    "change,pattern",
    [
        ({"can_id": 0}, r"can_id=0: allowed integer 1\.\.255"),
        ({"can_id": 256}, r"can_id=256"),
        ({"can_id": True}, r"can_id=True"),
        ({"model": "AK99-1"}, r"model/firmware: unknown .*'AK99-1'"),
        ({"firmware": "V7"}, r"'V7'"),
        ({"direction": 0}, r"direction=0: allowed \{\+1, -1\}"),
        ({"direction": 2.0}, r"direction=2\.0"),
        ({"zero_offset_rad": 13.0}, r"zero_offset_rad=13\.0: allowed \[-12\.5, 12\.5\]"),
        ({"zero_offset_rad": float("nan")}, r"zero_offset_rad=nan"),
        ({"gear_ratio": 0.0}, r"gear_ratio=0\.0: allowed \(0\.0, 100\.0\]"),
        ({"gear_ratio": 101}, r"gear_ratio=101\.0: allowed"),
        ({"torque_constant_nm_per_a": 12.0},
         r"torque_constant_nm_per_a=12\.0: allowed \(0\.0, 10\.0\]"),
        ({"can_id": 0x100}, r"can_id=256: allowed integer 1\.\.255 \(reply byte 0"),
        ({"torque_constant_nm_per_a": -0.1}, r"torque_constant_nm_per_a=-0\.1: allowed"),
        ({"torque_constant_nm_per_a": float("inf")}, r"torque_constant_nm_per_a=inf"),
        ({"measured_torque_constant_nm_per_a": 0.115},
         r"measured_torque_constant_nm_per_a=0\.115: allowed \[0\.4095, 1\.638\]"),
        ({"measured_torque_constant_nm_per_a": "1.0"}, r"measured_torque_constant_nm_per_a='1\.0'"),
        ({"name": ""}, r"name=''"),
        ({"colour": "red"}, r"unknown keys \['colour'\]"),
    ],
)
def test_calibration_validation_names_field_value_range(change, pattern):
    with pytest.raises(ValueError, match=pattern):
        ActuatorCalibration.from_mapping({**CAL, **change})


def test_calibration_missing_key():
    with pytest.raises(ValueError, match=r"missing keys \['gear_ratio'\]"):
        ActuatorCalibration.from_mapping({k: v for k, v in CAL.items() if k != "gear_ratio"})


def test_calibration_conversions():
    cal = ActuatorCalibration.from_mapping({
        **CAL, "direction": -1, "zero_offset_rad": 0.3, "gear_ratio": 2.0,
        "measured_torque_constant_nm_per_a": 1.092,  # 1.333 x vendor
    })
    s = 0.819 / 1.092
    assert cal.wire_torque_scale == pytest.approx(s)
    # position: joint 0 sits at the MIT zero offset; direction flips
    assert cal.joint_to_motor_position(0.0) == 0.3
    assert cal.joint_to_motor_position(0.5) == pytest.approx(0.3 - 1.0)
    assert cal.joint_to_motor_velocity(1.5) == -3.0
    # torque: 10 N*m at the joint = 5 N*m at the output shaft, negative, vendor-Kt scaled
    assert cal.joint_to_motor_torque(10.0) == pytest.approx(-5.0 * s)
    kp, kd = cal.joint_to_motor_gains(40.0, 2.0)
    assert (kp, kd) == (pytest.approx(10.0 * s), pytest.approx(0.5 * s))
    # current: joint torque = direction * N * Kt_measured * i
    assert cal.current_to_joint_torque(1.0) == pytest.approx(-2.0 * 1.092)
    assert cal.joint_torque_to_current(cal.current_to_joint_torque(3.0)) == pytest.approx(3.0)
    # numpy arrays work element-wise
    q = np.linspace(-1.0, 1.0, 5)
    np.testing.assert_allclose(cal.motor_to_joint_position(cal.joint_to_motor_position(q)), q)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([1, -1]),
    st.floats(-3.0, 3.0),
    st.floats(0.5, 10.0),
    st.floats(0.6, 1.6),
    st.floats(-2.0, 2.0),
    st.floats(-20.0, 20.0),
)
def test_calibration_round_trips(direction, offset, ratio, kt_factor, q, tau):
    cal = ActuatorCalibration.from_mapping({
        **CAL, "direction": direction, "zero_offset_rad": offset, "gear_ratio": ratio,
        "measured_torque_constant_nm_per_a": 0.819 * kt_factor,
    })
    assert cal.motor_to_joint_position(cal.joint_to_motor_position(q)) == pytest.approx(
        q, abs=1e-9)
    assert cal.motor_to_joint_velocity(cal.joint_to_motor_velocity(q)) == pytest.approx(
        q, abs=1e-9)
    assert cal.motor_to_joint_torque(cal.joint_to_motor_torque(tau)) == pytest.approx(
        tau, abs=1e-9)
    # the torque the drive produces (wire x Kt_true/Kt_vendor, times N, times direction)
    wire = cal.joint_to_motor_torque(tau)
    produced = direction * ratio * wire * (cal.effective_torque_constant_nm_per_a / 0.819)
    assert produced == pytest.approx(tau, abs=1e-9)


def test_calibration_is_frozen():
    cal = ActuatorCalibration.from_mapping(CAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cal.can_id = 2  # type: ignore[misc]
    assert math.isfinite(cal.gear_ratio)

"""`exo can encode/decode`: values <-> candump lines for a given model and firmware."""
import json

import pytest

from runtime.cli.main import main


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def frame_of(line: str) -> str:
    """The ``ID#DATA`` part of a ``(timestamp) iface ID#DATA`` line."""
    return line.split()[-1]


def test_encode_then_decode_round_trip(capsys):
    rc, out, _ = run(capsys, "can", "encode", "--model", "AK10-9", "--firmware", "V2", "--id", "3", "--position", "0.5",
                     "--kp", "20", "--kd", "1", "--torque", "-4")
    assert rc == 0
    line = out.strip()
    assert line.startswith("(") and line.split()[1] == "can0"
    assert frame_of(line).startswith("003#") and len(frame_of(line)) == 4 + 16
    rc, out, _ = run(capsys, "can", "decode", "--model", "AK10-9", "--firmware", "V2", "--json", line)
    cmd = json.loads(out)["command"]
    assert abs(cmd["position_rad"] - 0.5) <= 25.0 / 65535 and abs(cmd["torque_nm"] + 4) <= 130.0 / 4095
    assert abs(cmd["kp"] - 20) <= 500.0 / 4095 and abs(cmd["kd"] - 1) <= 5.0 / 4095


def test_encode_prints_a_full_candump_l_line(capsys):
    rc, out, _ = run(capsys, "can", "encode", "--special", "zero", "--id", "1", "--timestamp", "1733500000")
    assert rc == 0 and out.strip() == "(1733500000.000000) can0 001#FFFFFFFFFFFFFFFE"
    rc, out, _ = run(capsys, "can", "encode", "--iface", "vcan1", "--timestamp", "12.5", "--json")
    doc = json.loads(out)
    assert doc["frame"] == f"(12.500000) vcan1 001#{doc['data']}" and doc["id"] == 1


@pytest.mark.parametrize("args, message", [(("--iface", "can 0"), "--iface"), (("--iface", ""), "--iface"),
                                           (("--timestamp", "-1"), "--timestamp"), (("--timestamp", "nan"), "--timestamp")])
def test_encode_bad_iface_or_timestamp_exit_2(capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["can", "encode", *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and repr(args[1]) in err


def test_special_frames_and_clamping_reported(capsys):
    assert frame_of(run(capsys, "can", "encode", "--special", "zero", "--id", "1")[1]) == "001#FFFFFFFFFFFFFFFE"
    _, out, _ = run(capsys, "can", "encode", "--torque", "1000", "--json")
    assert json.loads(out)["clamped"] == ["torque_nm"]
    rc, out, _ = run(capsys, "can", "decode", "001#FFFFFFFFFFFFFFFD")
    assert "exit_motor_mode" in out


def test_decode_reply_in_candump_default_form_and_errors(capsys):
    rc, out, _ = run(capsys, "can", "decode", "--json", "(1700000000.000000) can0  000   [8]  01 80 00 80 08 00 19 00",
                     "000#0180008008001907", "000#0180")
    rows = [json.loads(x) for x in out.strip().splitlines()]
    assert rows[0]["reply"]["motor_id"] == 1 and rows[0]["reply"]["temperature_c"] == 25.0
    assert "error_code (byte 7)=7" in rows[1]["error"]
    assert "data length=2" in rows[2]["error"]
    assert rc == 1


def test_decode_reads_bare_candump_l_and_python_can_lines(capsys):
    frames = ["001#7FFF7FF0000007FF", "(1733500000.000000) can0 001#7FFF7FF0000007FF",
              "(1733500000.000000) can0 001#7FFF7FF0000007FF R", "(1733500000.000000) vcan0 001#7FFF7FF0000007FF T"]
    rc, out, _ = run(capsys, "can", "decode", "--json", *frames)
    rows = [json.loads(x) for x in out.strip().splitlines()]
    assert rc == 0 and len(rows) == 4
    assert all(r["command"] == rows[0]["command"] for r in rows)
    assert rows[0]["command"]["kp"] == 0.0 and abs(rows[0]["command"]["position_rad"]) < 1e-3


def test_unknown_model_lists_known(capsys):
    rc, _, err = run(capsys, "can", "encode", "--model", "AK99")
    assert rc == 2 and "AK80-9" in err and "AK99" in err


def test_encoded_log_read_by_python_can_and_decoded_back(capsys, tmp_path):
    """`exo can encode` lines form a canutils .log that python-can's LogReader reads; python-can's own log lines
    (with their ` R`/` T`) and the encoded lines decode to the encoded values within the codec's resolution."""
    can = pytest.importorskip("can")
    from firmware_bridge import ak_mit
    from firmware_bridge.motor_tables import limits_for

    model, fw = "AK80-9", "V2"
    limits = limits_for(model, fw)
    commands = [dict(id=1, position=0.3, velocity=-1.5, kp=5.0, kd=0.8, torque=2.5),
                dict(id=2, position=-1.2, velocity=4.0, kp=120.0, kd=2.0, torque=-7.25),
                dict(id=0x7F, position=0.0, velocity=0.0, kp=0.0, kd=0.0, torque=0.0)]
    lines = []
    for i, c in enumerate(commands):
        rc, out, _ = run(capsys, "can", "encode", "--model", model, "--firmware", fw, "--id", str(c["id"]),
                         "--position", str(c["position"]), "--velocity", str(c["velocity"]), "--kp", str(c["kp"]),
                         "--kd", str(c["kd"]), "--torque", str(c["torque"]), "--timestamp", f"{1733500000 + i * 0.002}")
        assert rc == 0
        lines.append(out.strip())
    log = tmp_path / "frames.log"
    log.write_text("\n".join(lines) + "\n")
    msgs = list(can.LogReader(str(log)))
    assert [m.arbitration_id for m in msgs] == [c["id"] for c in commands]
    assert all(m.channel == "can0" and m.dlc == 8 for m in msgs)
    assert msgs[1].timestamp == pytest.approx(1733500000.002, abs=1e-6)

    written = tmp_path / "python_can.log"                    # python-can's own writer: lines end in " R"
    with can.CanutilsLogWriter(str(written), channel="can0") as w:
        for m in msgs:
            w.on_message_received(m)
    py_lines = [x for x in written.read_text().splitlines() if x.strip()]
    assert all(x.endswith((" R", " T")) for x in py_lines)

    tol = {k: ak_mit.quantum(limits, f) for k, f in (("position", "position_rad"), ("velocity", "velocity_rad_s"),
                                                      ("kp", "kp"), ("kd", "kd"), ("torque", "torque_nm"))}
    for source in (lines, py_lines):
        rc, out, _ = run(capsys, "can", "decode", "--model", model, "--firmware", fw, "--master-id", "0x7FF",
                         "--json", *source)
        assert rc == 0
        decoded = [json.loads(x)["command"] for x in out.strip().splitlines()]
        for c, d in zip(commands, decoded, strict=True):
            for key, field in (("position", "position_rad"), ("velocity", "velocity_rad_s"), ("kp", "kp"), ("kd", "kd"),
                               ("torque", "torque_nm")):
                assert abs(d[field] - c[key]) <= tol[key], (key, c, d)

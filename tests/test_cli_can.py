"""`exo can encode/decode`: values <-> candump lines for a given model and firmware."""
import json

from runtime.cli.main import main


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_encode_then_decode_round_trip(capsys):
    rc, out, _ = run(capsys, "can", "encode", "--model", "AK10-9", "--firmware", "V2", "--id", "3", "--position", "0.5",
                     "--kp", "20", "--kd", "1", "--torque", "-4")
    assert rc == 0
    line = out.strip()
    assert line.startswith("003#") and len(line) == 4 + 16
    rc, out, _ = run(capsys, "can", "decode", "--model", "AK10-9", "--firmware", "V2", "--json", line)
    cmd = json.loads(out)["command"]
    assert abs(cmd["position_rad"] - 0.5) <= 25.0 / 65535 and abs(cmd["torque_nm"] + 4) <= 130.0 / 4095
    assert abs(cmd["kp"] - 20) <= 500.0 / 4095 and abs(cmd["kd"] - 1) <= 5.0 / 4095


def test_special_frames_and_clamping_reported(capsys):
    assert run(capsys, "can", "encode", "--special", "zero", "--id", "1")[1].strip() == "001#FFFFFFFFFFFFFFFE"
    rc, out, _ = run(capsys, "can", "encode", "--torque", "1000", "--json")
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


def test_unknown_model_lists_known(capsys):
    rc, _, err = run(capsys, "can", "encode", "--model", "AK99")
    assert rc == 2 and "AK80-9" in err and "AK99" in err

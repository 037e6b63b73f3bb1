"""`exo run` end to end as a user runs it: log readable by rosbags with ROS 2 schemas; signals; crash recovery."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rosbags.highlevel import AnyReader

from _support import REPO, exo_cmd
from runtime.telemetry.read import is_complete, resolve_log


def start_run(out: Path, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(exo_cmd() + ["run", "--seconds", str(seconds), "--out", str(out)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for_cycles(out: Path, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait until the run is past start-up (pids written and some log flushed)."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if (out / "pids.json").exists() and (out / "telemetry").exists():
            time.sleep(1.2)
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    raise AssertionError("run did not start")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_run_report_and_rosbags_reader(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(exo_cmd() + ["run", "--seconds", "2", "--out", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "simulated seated knee" in proc.stdout and "exo demo" in proc.stdout
    rep = subprocess.run(exo_cmd() + ["report", str(out), "--json"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert rep.returncode == 0, rep.stderr
    summary = json.loads(rep.stdout)
    assert not summary["recovered"]
    assert set(summary["loops"]) == {"estimation", "torque"}
    tq = summary["loops"]["torque"]
    assert abs(tq["cycles"] + tq["missed"] - tq["expected_cycles"]) <= 2
    assert summary["torque"]["final_commanded_nm"] == [0.0]
    assert all(Path(p).exists() for p in summary["plots"])
    with AnyReader([out / "telemetry"]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types["/exo/torque/command"] == "exo_runtime/msg/TorqueCommand"
        assert types["/exo/joint_states"] == "sensor_msgs/msg/JointState"
        assert types["/exo/estimation/timing"] == "exo_runtime/msg/CycleTiming"
        n = 0
        for conn, _, raw in reader.messages(connections=[c for c in reader.connections if c.topic == "/exo/torque/timing"]):
            msg = reader.deserialize(raw, conn.msgtype)
            assert msg.loop_name == "torque"
            n += 1
        assert n >= 900


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_fades_and_closes_log(tmp_path, sig):
    out = tmp_path / "run"
    proc = start_run(out, 60)
    wait_for_cycles(out, proc)
    pids = json.loads((out / "pids.json").read_text())
    t_sig = time.monotonic()
    os.kill(proc.pid, sig)
    stdout, _ = proc.communicate(timeout=30)
    assert time.monotonic() - t_sig < 10, stdout
    assert proc.returncode == 0, stdout
    assert f"exit: {sig.name} (fade to zero)" in stdout
    _, mcap = resolve_log(out / "telemetry")
    assert is_complete(mcap)
    assert not pid_alive(pids["torque"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["torque"]["cycles"] > 300


def test_sigkill_leaves_a_recoverable_log_and_the_torque_process_stops(tmp_path):
    out = tmp_path / "run"
    proc = start_run(out, 60)
    wait_for_cycles(out, proc)
    time.sleep(1.0)
    pids = json.loads((out / "pids.json").read_text())
    os.kill(proc.pid, signal.SIGKILL)
    t_kill_wall = time.time_ns()
    proc.communicate(timeout=10)
    # the orphaned torque process sees its parent gone, fades, sends zero and exits
    t_end = time.monotonic() + 5
    while pid_alive(pids["torque"]) and time.monotonic() < t_end:
        time.sleep(0.05)
    assert not pid_alive(pids["torque"])
    _, mcap = resolve_log(out / "telemetry")
    assert not is_complete(mcap)
    rec = subprocess.run(exo_cmd() + ["recover", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    with AnyReader([out / "telemetry"]) as reader:
        last = max(ts for _, ts, _ in reader.messages())
        topics = {c.topic for c in reader.connections}
    assert "/exo/torque/command" in topics
    # everything but the last chunk period (0.25 s) plus the drain interval survived
    assert (t_kill_wall - last) * 1e-9 < 0.75


def test_analyze_reads_real_trials_and_names_bad_files(tmp_path):
    from models.io.lab_files import shared_data_dir

    trc = shared_data_dir() / "GC5_PS" / "trc" / "PS_ngait_og_ss1.trc"
    if not trc.exists():
        pytest.skip(f"shared data not found at {trc.parent}")
    bad = tmp_path / "bad.trc"
    bad.write_text("PathFileType\t4\t(X/Y/Z)\tbad.trc\n")
    p = subprocess.run(exo_cmd() + ["analyze", str(trc), str(bad), "--json-stdout"], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert out[0]["kind"] == "trc" and out[0]["rate_hz"] == 120 and out[0]["n_markers"] == 36
    assert "bad.trc" in out[1]["error"]


def test_operator_signals_estop_and_reset(tmp_path):
    out = tmp_path / "run"
    proc = start_run(out, 60)
    wait_for_cycles(out, proc)
    os.kill(proc.pid, signal.SIGUSR2)        # e-stop: latched, fades
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGUSR1)        # explicit reset: logged, re-activates
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGINT)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, stdout
    rep = subprocess.run(exo_cmd() + ["report", str(out), "--json", "--no-plots"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    summary = json.loads(rep.stdout)
    kinds = [(e["kind"], e["detail"]) for e in summary["events"]]
    assert any(k == "ESTOP" for k, _ in kinds)
    i_reset = next(i for i, (_, d) in enumerate(kinds) if "cleared operator:ESTOP" in d)
    assert any("activate" in d for _, d in kinds[i_reset + 1:])          # re-activated after the reset

"""Performance figures of ``runtime.report.summary``: end-to-end latency from command ages, per-stage budget split,
the recorded stage-latency topic, and the offline ``/analysis/`` topics in the HTML report."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _run_fixture import write_run  # noqa: E402
from _support import REPO, exo_cmd  # noqa: E402

from runtime.telemetry import schema  # noqa: E402
from runtime.report.html import NOT_RECORDED, build_html  # noqa: E402
from runtime.report.summary import E2E_STAGE, STAGE_LATENCY_TOPIC, first_write_ages, load_series, performance  # noqa: E402
from runtime.telemetry.log import TelemetryLog  # noqa: E402


def test_first_write_ages_picks_each_new_command():
    # frame A ready at 5 ms (first write at 6 ms), held; frame B (captured 16.7 ms later) first written at 4 ms age
    ages = [-1.0, -1.0, 0.006, 0.008, 0.010, 0.012, 0.014, 0.016, 0.018, 0.004, 0.006, 0.008, float("nan"), 0.007]
    got = first_write_ages(ages)
    np.testing.assert_allclose(got, [0.006, 0.004, 0.007])
    assert first_write_ages([]).size == 0


def _series(stage_latency=None, ages=()):
    return {"stage_latency": stage_latency or {}, "timing": {}, "command": {"age_s": list(ages)}}


def test_budget_split_and_recorded_end_to_end():
    sl = {"stage:pose": [0.020] * 99 + [0.030], "stage:kinematics": [0.001] * 100,
          "stage:" + E2E_STAGE: [0.015] * 50 + [0.018] * 50}
    perf = performance(_series(sl, ages=[0.5, 0.6]))
    assert perf["stage_source"] == STAGE_LATENCY_TOPIC
    assert set(perf["stages_s"]) == {"pose", "kinematics"}  # end to end is not a stage
    assert perf["stages_s"]["pose"]["p50"] == pytest.approx(0.020)
    assert perf["stages_s"]["pose"]["p99_share"] == pytest.approx(np.percentile(sl["stage:pose"], 99) * 60)
    assert perf["largest_stage"] == "pose"
    assert perf["largest_stage_target_s"] == pytest.approx(1 / 60 - 0.001)
    assert perf["end_to_end_s"]["count"] == 100 and perf["end_to_end_s"]["max"] == pytest.approx(0.018)
    assert perf["frames_over_budget"] == 50
    assert E2E_STAGE in perf["end_to_end_source"]


def test_end_to_end_from_ages_when_not_recorded():
    perf = performance(_series(ages=[0.002, 0.004, 0.019, 0.021, 0.005]))
    assert perf["end_to_end_s"]["count"] == 2
    assert perf["end_to_end_s"]["max"] == pytest.approx(0.005)
    assert perf["frames_over_budget"] == 0 and perf["stages_s"] == {}


def test_report_text_shows_stages_and_end_to_end(tmp_path):
    truth = write_run(tmp_path / "r", seconds=1.0)
    r = subprocess.run(exo_cmd() + ["report", str(truth.run_dir), "--no-plots"], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "end to end, capture -> CAN write: p50" in r.stdout
    pose = truth.stage_durations_s["pose"]
    assert f"  {'pose':<20}{np.percentile(pose, 50) * 1e3:>8.2f}{np.percentile(pose, 99) * 1e3:>8.2f}" in r.stdout


def test_offline_analysis_topics_are_accepted(tmp_path):
    """An ``exo analyze`` log (``/analysis/...``, names as analysis_log.py writes them) fills the same sections."""
    out = tmp_path / "analysis"
    log = TelemetryLog(out / "telemetry", chunk_period_s=0.5)
    hdr = lambda t: schema.make("std_msgs/msg/Header", stamp=t, frame_id="model")  # noqa: E731
    log.register("/analysis/joint_angles", "sensor_msgs/msg/JointState",
                 lambda r: schema.make("sensor_msgs/msg/JointState", header=hdr(r[0]), name=["knee_angle_l"],
                                       position=[r[1]], velocity=[], effort=[0.0]))
    log.register("/analysis/knee_moments", "sensor_msgs/msg/JointState",
                 lambda r: schema.make("sensor_msgs/msg/JointState", header=hdr(r[0]),
                                       name=["knee_adduction_moment_left_pct_bw_ht",
                                             "knee_extension_moment_left_pct_bw_ht"],
                                       position=[], velocity=[], effort=[r[1], -r[1]]))
    v3 = "geometry_msgs/msg/Vector3"
    log.register("/analysis/grf/left", "geometry_msgs/msg/WrenchStamped",
                 lambda r: schema.make("geometry_msgs/msg/WrenchStamped", header=hdr(r[0]),
                                       wrench=schema.make("geometry_msgs/msg/Wrench",
                                                          force=schema.make(v3, x=0.0, y=0.0, z=r[1]),
                                                          torque=schema.make(v3, x=0.0, y=0.0, z=0.0))))
    with log.open():
        for k in range(100):
            t = k * 10_000_000
            v = float(np.sin(k / 10))
            log.write("/analysis/joint_angles", t, (t, v))
            log.write("/analysis/knee_moments", t, (t, 2 * v))
            log.write("/analysis/grf/left", t, (t, 700 * (1 + v)))
    series = load_series(out)
    assert set(series["streams"]) == {"/analysis/joint_angles", "/analysis/knee_moments", "/analysis/grf/left"}
    doc, pngs, _ = build_html(out, tmp_path / "plots")
    assert f"{NOT_RECORDED}: /exo/estimation/joint_angles" not in doc
    assert f"{NOT_RECORDED}: /exo/estimation/knee_moments" not in doc
    kam = 2 * np.sin(np.arange(100) / 10)
    assert (f"<td>knee_adduction_moment_left_pct_bw_ht</td><td>{kam.min():.3f}</td><td>{kam.max():.3f}</td>"
            f"<td>{np.abs(kam).max():.3f}</td>") in doc
    assert f"<td>/analysis/grf/left</td><td>{700 * (1 + np.sin(np.arange(100) / 10)).max():.1f}</td>" in doc
    assert f"{NOT_RECORDED}: /exo/estimation/grf/r" in doc  # the other foot was not recorded
    assert {p.stem for p in pngs} >= {"joint_angles", "knee_moments", "grf_cop"}


# --- peak memory: each process's own figure, labelled (issue 15) ---------------------------------------------------

STATUS = "Name:\tpython\nVmPeak:\t 900000 kB\nVmHWM:\t  422400 kB\nVmRSS:\t  300000 kB\n"


def test_vm_hwm_read_from_the_process_status(tmp_path):
    from runtime.report.memory import own_peak_rss_mb, vm_hwm_mb

    assert vm_hwm_mb(STATUS) == pytest.approx(412.5)
    assert vm_hwm_mb("Name:\tzombie\nState:\tZ\n") is None
    with pytest.raises(ValueError, match="VmHWM unit = 'MB'"):
        vm_hwm_mb("VmHWM:\t 12 MB\n")
    status = tmp_path / "status"
    status.write_text(STATUS)
    assert own_peak_rss_mb(status) == 412.5


def test_peak_memory_keeps_each_process_own_figure():
    from runtime.report.memory import memory_lines, peak_memory

    peak = peak_memory(412.5, {"torque_process": 96.2, "vision_process": None})
    assert peak == {"estimation_process": 412.5, "torque_process": 96.2, "vision_process": None}
    lines = memory_lines(peak)
    assert lines[0] == "estimation process (the session's own process: its VmHWM): 412.5 MB"
    assert lines[1] == "torque process (its own VmHWM, reported by that process at exit): 96.2 MB"
    assert lines[2].endswith(": not reported")
    with pytest.raises(ValueError, match=r"children\['torque_process'\] = -1"):
        peak_memory(412.5, {"torque_process": -1.0})
    with pytest.raises(ValueError, match="own_mb = nan"):
        peak_memory(float("nan"), {})


def test_session_peak_memory_takes_the_torque_process_own_report(monkeypatch):
    """The session's record: its own VmHWM and the number the torque process sent, never RUSAGE_CHILDREN."""
    import runtime.report.memory as memory
    from runtime.session import _peak_rss_mb

    monkeypatch.setattr(memory, "own_peak_rss_mb", lambda: 412.5)
    assert _peak_rss_mb({"peak_rss_mb": 33.3, "loop": {}}) == {"estimation_process": 412.5, "torque_process": 33.3}
    assert _peak_rss_mb({"error": "crashed early"}) == {"estimation_process": 412.5, "torque_process": None}


def _child_peak(conn) -> None:
    from runtime.report.memory import own_peak_rss_mb

    conn.send(own_peak_rss_mb())


def test_spawned_child_reports_its_own_peak_not_the_parents():
    """Why the figures were equal: a spawned child's ru_maxrss starts at the parent's peak (Linux carries it over
    exec); its own VmHWM does not. Parent holds 160 MB; the child (a bare interpreter) reports far less."""
    import multiprocessing as mp

    from runtime.report.memory import own_peak_rss_mb

    ballast = np.ones(20 * 1024 * 1024)     # 160 MB, touched
    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe()
    proc = ctx.Process(target=_child_peak, args=(child_conn,))
    proc.start()
    child_mb = parent_conn.recv()
    proc.join(timeout=30)
    parent_mb = own_peak_rss_mb()
    assert float(ballast[-1]) == 1.0
    assert parent_mb > 160.0
    assert 0.0 < child_mb < parent_mb - 100.0, (child_mb, parent_mb)


def test_report_labels_each_process_memory(tmp_path):
    import json

    truth = write_run(tmp_path / "r", seconds=1.0)
    summary = json.loads((truth.run_dir / "summary.json").read_text())
    summary["peak_rss_mb"] = {"estimation_process": 402.0, "torque_process": 61.5}
    (truth.run_dir / "summary.json").write_text(json.dumps(summary))
    doc, _pngs, _ = build_html(truth.run_dir, tmp_path / "plots")
    assert ("<p>peak memory: estimation process (the session&#x27;s own process: its VmHWM): 402.0 MB; torque process "
            "(its own VmHWM, reported by that process at exit): 61.5 MB</p>") in doc

"""Import of sessions analysed elsewhere: OpenSim ID / JR / SO results and the shared trials' lab results."""
import contextlib
import io
import math
from pathlib import Path

import numpy as np
import pytest

from runtime.clinic.importers import opensim_metrics, stance_from_grf

from _support import needs_shared_data, shared_data_path  # noqa: E402

DATA = shared_data_path()   # $EXO_SHARED_DATA or ../shared/data
PS = DATA / "GC5_PS"
JR1 = PS / "opensim_results_baseline" / "JR" / "PS_ngait_og_ss1_JointReaction_ReactionLoads.sto"
GRF1 = PS / "grf" / "PS_ngait_og_ss1_kinetics.mot"
G = 9.80665


def _write_id(path, t, cols):
    names = list(cols)
    with open(path, "w") as f:
        f.write(f"Inverse Dynamics Generalized Forces\nversion=1\nnRows={t.size}\nnColumns={len(names) + 1}\n"
                "inDegrees=no\nendheader\n")
        f.write("time\t" + "\t".join(names) + "\n")
        for i in range(t.size):
            f.write("\t".join(f"{v:.10f}" for v in (t[i], *(cols[n][i] for n in names))) + "\n")


def _loadsto(path):
    """Independent reader: the labels after 'endheader', then numbers."""
    lines = Path(path).read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if line.strip() == "endheader")
    labels = lines[k + 1].split()
    return labels, np.loadtxt(lines[k + 2:])


def test_inverse_dynamics_moments_give_kem_and_kam_in_closed_form(tmp_path):
    mass, height = 80.0, 1.75
    bw_ht = mass * G * height / 100
    t = np.linspace(0.0, 1.2, 1201)
    a, b = 0.1, 0.7
    bump = np.where((t >= a) & (t <= b), np.sin(math.pi * (t - a) / (b - a)), 0.0)
    p = tmp_path / "walk_id.sto"
    _write_id(p, t, {"knee_angle_l_moment": -60.0 * bump, "knee_adduction_l_moment": -40.0 * bump,
                     "hip_flexion_l_moment": 5.0 * bump})
    r = opensim_metrics(mass_kg=mass, height_m=height, side="left", inverse_dynamics=p, knee_flexion_positive=True,
                        stances=[(a, b)])
    assert r.metrics["peak_kem_pct_bw_ht"] == pytest.approx(60.0 / bw_ht, rel=1e-6)
    assert r.metrics["impulse_kem_pct_bw_ht_s"] == pytest.approx(60.0 / bw_ht * 2 * (b - a) / math.pi, rel=1e-5)
    assert r.metrics["peak_kam_pct_bw_ht"] == pytest.approx(40.0 / bw_ht, rel=1e-6)
    assert r.metrics["peak_kcf_total_bw"] is None and r.metrics["cocontraction_index"] is None
    flipped = opensim_metrics(mass_kg=mass, height_m=height, side="left", inverse_dynamics=p,
                              knee_flexion_positive=False, stances=[(a, b)])
    assert flipped.metrics["peak_kem_pct_bw_ht"] == pytest.approx(0.0, abs=1e-9)   # peak of -bump over stance
    with pytest.raises(ValueError, match="knee_flexion_positive is required"):
        opensim_metrics(mass_kg=mass, height_m=height, side="left", inverse_dynamics=p)
    with pytest.raises(ValueError, match="no column 'knee_angle_r_moment'"):
        opensim_metrics(mass_kg=mass, height_m=height, side="right", inverse_dynamics=p, knee_flexion_positive=True)
    _write_id(p, t, {"knee_angle_l_moment": -60.0 * bump})
    r = opensim_metrics(mass_kg=mass, height_m=height, side="left", inverse_dynamics=p, knee_flexion_positive=True)
    assert r.metrics["peak_kam_pct_bw_ht"] is None                      # no knee adduction coordinate: NULL
    assert any("KAM not available" in n for n in r.notes) and any("whole file" in n for n in r.notes)


@needs_shared_data("GC5_PS")
def test_joint_reaction_peak_matches_an_independent_read_of_the_file():
    stances = stance_from_grf(GRF1, "1")
    labels, grf = _loadsto(GRF1)
    fy = grf[:, labels.index("1_ground_force_vy")]
    loaded = grf[fy >= 20.0, 0]
    assert stances == [(pytest.approx(loaded[0]), pytest.approx(loaded[-1]))]
    r = opensim_metrics(mass_kg=75.0, height_m=1.8, side="left", joint_reaction=JR1, stances=stances)
    labels, jr = _loadsto(JR1)
    cols = [labels.index(f"walker_knee_l_on_tibia_l_in_tibia_l_f{a}") for a in "xyz"]
    in_stance = (jr[:, 0] >= loaded[0] - 1e-9) & (jr[:, 0] <= loaded[-1] + 1e-9)
    expect = np.linalg.norm(jr[in_stance][:, cols], axis=1).max() / (75.0 * G)
    assert r.metrics["peak_kcf_total_bw"] == pytest.approx(expect, rel=1e-12)
    # the lab's OpenSim estimate is close to the implant's measured peak (README: about 2.3 BW in vivo)
    assert 1.8 < r.metrics["peak_kcf_total_bw"] < 2.8


@needs_shared_data("GC5_PS")
def test_exo_import_shared_lab_then_duplicates(tmp_path):
    from runtime.cli.main import main
    from runtime.clinic.store import open_store

    db = f"sqlite:///{tmp_path / 'c.db'}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["import", "--shared-lab", "--data", str(DATA), "--db", db]) == 0
    assert out.getvalue().count("imported PS_ss") == 3
    with open_store(db) as store:
        before = store.counts()
        sessions = store.sessions("GC5_PS")
    assert before["sessions"] == 3 and all(s["source"] == "import" for s in sessions)
    assert all(s["metrics"]["peak_kam_pct_bw_ht"] is None for s in sessions)
    assert {r["role"] for r in sessions[0]["raw_files"]} >= {"opensim_jr", "opensim_so_activation", "lab_ik", "grf"}
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["import", "--shared-lab", "--data", str(DATA), "--db", db]) == 1
    assert err.getvalue().count("duplicate session") == 3
    with open_store(db) as store:
        assert store.counts() == before


@needs_shared_data("GC5_PS")
def test_exo_import_rejects_a_subject_without_mass_and_bad_arguments(tmp_path):
    from runtime.cli.main import main
    from runtime.clinic.store import open_store

    db = f"sqlite:///{tmp_path / 'c.db'}"
    cases = [
        (["--jr", str(JR1), "--subject", "P017", "--height-m", "1.8", "--side", "left"], "mass_kg is missing"),
        (["--jr", str(JR1), "--subject", "Smith", "--mass-kg", "75", "--height-m", "1.8", "--side", "left"],
         "must contain a digit"),
        (["--id", str(JR1), "--subject", "P017", "--mass-kg", "75", "--height-m", "1.8", "--side", "left"],
         "--knee-flexion positive|negative is required"),
        (["--jr", str(JR1), "--subject", "P017", "--mass-kg", "75", "--height-m", "1.8", "--side", "left",
          "--stance-plate", "1"], "--stance-plate = '1': needs --grf"),
        (["--jr", str(JR1), "--subject", "P017", "--mass-kg", "75", "--height-m", "1.8", "--side", "left",
          "--date", "2026-13-01"], "--date = '2026-13-01': expected YYYY-MM-DD"),
    ]
    for argv, msg in cases:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main(["import", *argv, "--db", db]) == 2, argv
        assert msg in err.getvalue(), (argv, err.getvalue())
    with open_store(db) as store:
        assert store.counts() == {"subjects": 0, "sessions": 0, "metrics": 0, "raw_files": 0}


def _write_run(run_dir: Path, amp_nm: float = 10.0, seconds: float = 2.0, rate_hz: float = 500.0) -> None:
    """A run log with only torque commands: tau(t) = amp * sin(2 pi t), written with the project's TelemetryLog."""
    from runtime.telemetry import schema
    from runtime.telemetry.log import TelemetryLog

    log = TelemetryLog(run_dir / "telemetry", chunk_period_s=0.5)
    log.register("/exo/torque/command", "exo_runtime/msg/TorqueCommand",
                 lambda r: schema.make("exo_runtime/msg/TorqueCommand", stamp=r[0], joint_names=["knee_r"],
                                       requested_torque_nm=[r[1]], commanded_torque_nm=[r[1]], command_age_s=0.01,
                                       fade_gain=1.0, state="ACTIVE", stale=False))
    t0 = 1_700_000_000_000_000_000
    with log.open():
        for i in range(int(seconds * rate_hz) + 1):
            t_ns = t0 + int(round(i * 1e9 / rate_hz))
            log.write("/exo/torque/command", t_ns, (t_ns, amp_nm * math.sin(2 * math.pi * i / rate_hz)))
    (run_dir / "summary.json").write_text('{"pipeline": "synthetic test log", "exit_reason": "completed"}')


def test_exo_run_import_gives_assistance_delivered(tmp_path):
    from runtime.cli.main import main
    from runtime.clinic.store import open_store

    run = tmp_path / "run1"
    _write_run(run)
    db = f"sqlite:///{tmp_path / 'c.db'}"
    argv = ["import", "--exo-run", str(run), "--subject", "P017", "--mass-kg", "75", "--height-m", "1.8",
            "--side", "right", "--date", "2026-05-01", "--db", db,
            "--device-config", str(Path(__file__).resolve().parents[1] / "launch" / "config" / "device.yaml")]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    with open_store(db) as store:
        (s,) = store.sessions("P017")
    m = s["metrics"]
    assert m["assistance_peak_nm"] == pytest.approx(10.0, rel=1e-6)
    assert m["assistance_impulse_nm_s"] == pytest.approx(10.0 * 4 / math.pi, rel=1e-4)   # integral of |10 sin 2 pi t|, 2 s
    assert m["peak_kam_pct_bw_ht"] is None and s["source"] == "exo_run"
    assert s["device_settings"]["pipeline"] == "synthetic test log" and "joints" in s["device_settings"]["device"]
    assert {r["role"] for r in s["raw_files"]} == {"telemetry", "run_summary", "device_config"}
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(argv) == 2                                             # the same run again: duplicate
    assert "duplicate session" in err.getvalue()

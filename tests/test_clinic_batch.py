"""Batch analysis: `exo ingest` of every shared trial into PostgreSQL, the same trials on a local Ray cluster with
identical metrics, retries and failures reported (never dropped), manifests."""
import contextlib
import io
import json
import os
from pathlib import Path

import pytest

from runtime.clinic.batch import (BatchReport, JobOutcome, TrialJob, jobs_from, jobs_from_manifest, run_batch,
                                  store_results, summary_table)

from _support import needs_shared_data, shared_data, shared_data_path  # noqa: E402

DATA = shared_data_path()   # $EXO_SHARED_DATA or ../shared/data
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="module")
def pg():
    from _postgres import PostgresCluster

    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def ingested(pg, tmp_path_factory):
    """`exo ingest` (local processes, 2 workers) of every shared trial into a fresh PostgreSQL database."""
    from runtime.cli.main import main

    shared_data("GC5_PS")               # the trials it ingests: skip with the reason when absent
    url = pg.new_database()
    tmp = tmp_path_factory.mktemp("ingest")
    out = tmp / "batch.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["ingest", "--data", str(DATA), "--db", url, "--workers", "2", "--json", str(out),
                   "--output", str(tmp / "csv"), "--encrypt-key", str(tmp / "clinic.key")])
    return {"rc": rc, "stdout": buf.getvalue(), "url": url, "doc": json.loads(out.read_text()), "key": tmp / "clinic.key"}


@pytest.fixture(scope="module")
def on_ray(tmp_path_factory):
    """`exo batch --ray local` over the same trials: a private Ray instance (ray.init(num_cpus=2), no dashboard,
    no usage stats) in a private network namespace (Ray listens on every interface)."""
    from _support import exo_cmd

    from firmware_bridge.netns import netns_available, run_isolated

    shared_data("GC5_PS")               # the trials it analyses: skip with the reason when absent
    ok, why = netns_available()
    if not ok:
        pytest.fail(f"the Ray test needs a private network namespace: {why}")
    out = tmp_path_factory.mktemp("ray") / "ray.json"
    p = run_isolated([*exo_cmd(), "batch", "--trials", str(DATA), "--ray", "local", "--workers", "2", "--no-store",
                      "--json", str(out)], timeout=400, env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
    return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr, "doc": json.loads(out.read_text())}


def test_ingest_records_every_shared_trial_in_postgresql(ingested):
    from runtime.clinic.store import open_store

    assert ingested["rc"] == 0, ingested["stdout"]
    assert "8/8 trials analysed on local (2 worker(s))" in ingested["stdout"]
    assert "trials per minute" in ingested["stdout"]
    assert "imported 3 lab result session(s)" in ingested["stdout"]
    with open_store(ingested["url"]) as store:
        assert store.counts()["sessions"] == 11 and store.counts()["subjects"] == 2
        sessions = {s["trial_name"]: s for s in store.sessions()}
    assert {s["source"] for s in sessions.values()} == {"lab_trial", "import"}
    for name, s in sessions.items():
        m = s["metrics"]
        if s["source"] == "lab_trial":
            assert m["peak_kam_pct_bw_ht"] is not None and m["peak_kcf_total_bw"] is not None
            assert len(s["model_hashes"]["subject_model"]) == 64 and s["software_version"].startswith("exo_runtime")
            assert {"markers", "markerset", "grf"} <= {r["role"] for r in s["raw_files"]}
        else:           # the lab's OpenSim SO + JR: no inverse dynamics file, so KAM/KEM are NULL, not 0
            assert m["peak_kam_pct_bw_ht"] is None and m["peak_kem_pct_bw_ht"] is None
            assert m["peak_kcf_total_bw"] is not None and m["cocontraction_index"] is not None
        # PS trials are one cycle cut at heel strike: no complete stance on either foot -> no symmetry
        assert (m["limb_symmetry_pct"] is None) == name.startswith("PS_")
    # the stored peak KAM of PS ss1 against an independent hand computation from the trial's own plate file
    # (measured 2026-12-07: stored 2.732, quasi-static 2.824 %BW*ht, 3.3 % apart: the shank and foot's inertia
    # that inverse dynamics includes and the lever-arm method neglects)
    assert sessions["PS_ss1"]["metrics"]["peak_kam_pct_bw_ht"] == pytest.approx(_quasi_static_peak_kam_ps1(), rel=0.05)


def _quasi_static_peak_kam_ps1() -> float:
    """Peak external KAM of PS ss1 (%BW*ht) without inverse dynamics: plate 1 (left foot) read with numpy from the
    .mot, its moment about the knee centre plus the free moment and the weight of the shank and foot (quasi-static:
    no segment inertia), on the adduction axis of the tibia (-x for the left knee), over the loaded interval
    (vertical force > 20 N). Knee centre, tibia axes and shank+foot mass and centre of mass come from the
    subject-scaled model posed by IK (the kinematics the chain uses); no part of the chain's dynamics is used.
    PS: 75 kg, 1.80 m (shared data README); %BW*ht = 100 M / (m g h)."""
    import mujoco
    import numpy as np

    from models.trial_analysis import AnalyzeParams, trial_kinematics

    g, mass, height = 9.80665, 75.0, 1.80
    ps = DATA / "GC5_PS"
    kin = trial_kinematics(ps / "trc" / "PS_ngait_og_ss1.trc", ps / "model" / "GC5.osim",
                           AnalyzeParams(mass, height, "left"))
    with open(ps / "grf" / "PS_ngait_og_ss1_kinetics.mot") as f:
        lines = f.read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "endheader") + 1
    header = lines[start].split()
    mot = np.loadtxt(lines[start + 1:])
    col = {h: mot[:, j] for j, h in enumerate(header)}
    axes = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])       # OpenSim (y up, z right) -> world (z up)
    t = kin.time_s

    def series(fmt):
        return np.stack([np.interp(t, col["time"], col[fmt.format(a)]) for a in "xyz"], axis=1) @ axes.T

    force, cop = series("1_ground_force_v{}"), series("1_ground_force_p{}")
    free = series("1_ground_torque_{}")
    m = kin.model
    d = mujoco.MjData(m)
    tibia = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "tibia_l")
    weight = np.array([0.0, 0.0, -g * m.body_subtreemass[tibia]])
    kam = np.full(t.size, np.nan)
    for k in range(t.size):
        d.qpos[:] = kin.mapped.qpos[k]
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        knee, R = d.xpos[tibia], d.xmat[tibia].reshape(3, 3)
        moment = np.cross(cop[k] - knee, force[k]) + free[k] + np.cross(d.subtree_com[tibia] - knee, weight)
        kam[k] = -(moment @ R)[0]
    loaded = force[:, 2] > 20.0
    return float(np.max(kam[loaded])) * 100.0 / (mass * g * height)


def test_analysis_csvs_are_encrypted_at_rest_and_hold_the_stored_peak(ingested):
    import hashlib

    import numpy as np

    from runtime.clinic.files import decrypt_bytes
    from runtime.clinic.store import open_store

    assert "created encryption key" in ingested["stdout"]
    with open_store(ingested["url"]) as store:
        s = next(x for x in store.sessions("GC6_DM") if x["trial_name"] == "DM_og4")
    csvs = {Path(r["path"]).name: r for r in s["raw_files"] if r["role"] == "analysis_csv"}
    assert {"knee_moments.csv.enc", "joint_angles.csv.enc", "knee_contact_force.csv.enc"} <= set(csvs)
    ref = csvs["knee_moments.csv.enc"]
    enc = Path(ref["path"]).read_bytes()
    assert ref["encrypted"] is True and ref["sha256"] == hashlib.sha256(enc).hexdigest()
    assert not Path(ref["path"][:-4]).exists() and b"time_s" not in enc        # no plain copy left
    text = decrypt_bytes(ref["path"], ingested["key"]).decode()
    assert text.startswith("time_s,knee_adduction_moment_right_pct_bw_ht,knee_extension_moment_right_pct_bw_ht")
    data = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1)
    peaks = [data[(data[:, 0] >= a - 1e-9) & (data[:, 0] <= b + 1e-9), 1].max() for a, b in s["analysis"]["stance_s"]]
    assert len(peaks) == s["stances"] >= 1
    # mean over stances of the per-stance peak; the CSV is written with 6 significant digits
    assert np.mean(peaks) == pytest.approx(s["metrics"]["peak_kam_pct_bw_ht"], rel=1e-5)


def test_private_local_ray_refuses_the_host_network():
    from runtime.clinic.batch import RayBackend
    from firmware_bridge.netns import in_private_netns

    if in_private_netns():
        pytest.skip("already in a private network namespace")
    with pytest.raises(RuntimeError, match="private network namespace"):
        RayBackend("local", 1)


def test_ray_cluster_gives_identical_metrics(ingested, on_ray):
    assert on_ray["rc"] == 0, on_ray["stdout"] + on_ray["stderr"]
    assert "8/8 trials analysed on ray (2 worker(s))" in on_ray["stdout"] and "trials per minute" in on_ray["stdout"]
    assert on_ray["doc"]["backend"] == "ray" and on_ray["doc"]["trials_per_minute"] > 0
    local = {r["trial"]: r for r in ingested["doc"]["trials"]}
    ray = {r["trial"]: r for r in on_ray["doc"]["trials"]}
    assert local.keys() == ray.keys()
    for name in local:
        assert ray[name] == local[name], name          # bit-identical floats, NULLs in the same places
    from runtime.clinic.store import open_store

    with open_store(ingested["url"]) as store:           # and what PostgreSQL holds is the same numbers
        stored = {s["trial_name"]: s["metrics"] for s in store.sessions() if s["source"] == "lab_trial"}
    for name, row in ray.items():
        assert {k: row[k] for k in stored[name]} == stored[name]


def test_re_ingesting_is_rejected_as_duplicates_and_changes_nothing(ingested):
    from runtime.clinic.store import open_store

    doc = ingested["doc"]       # the same analysed trials (jobs and results) recorded a second time
    jobs = [TrialJob(**{**j, "extra_files": tuple(tuple(x) for x in j["extra_files"])}) for j in doc["jobs"]]
    results = {r["trial"]: r for r in doc["results"]}
    rep = BatchReport([JobOutcome(j, results[j.name]) for j in jobs], 1.0, "local", 2)
    with open_store(ingested["url"]) as store:
        before = store.counts()
        res = store_results(store, rep, progress=lambda s: None)
        assert res["stored"] == [] and len(res["rejected"]) == 8
        assert all("duplicate session" in r for r in res["rejected"])
        assert store.counts() == before


@needs_shared_data("GC5_PS", "model", "GC5.osim")
def test_failed_trials_are_retried_and_reported_never_dropped(tmp_path):
    bad = tmp_path / "bad.trc"
    bad.write_text("PathFileType\t4\t(X/Y/Z)\tbad.trc\nDataRate\nnot a trc\n")
    good_markerset = str(DATA / "GC5_PS" / "model" / "GC5.osim")
    jobs = [TrialJob("missing", "P001", 70.0, 1.7, "left", str(tmp_path / "nope.trc"), good_markerset),
            TrialJob("corrupt", "P001", 70.0, 1.7, "left", str(bad), good_markerset),
            TrialJob("no_mass", "P002", None, 1.7, "left", str(bad), good_markerset)]
    lines = []
    rep = run_batch(jobs, workers=1, retries=1, progress=lines.append)
    assert [o.job.name for o in rep.failed] == ["missing", "corrupt", "no_mass"] and not rep.succeeded
    for o in rep.outcomes:
        assert len(o.errors) == 2                                  # first attempt + one retry
    assert "nope.trc" in rep.outcomes[0].errors[0]
    assert "bad.trc" in rep.outcomes[1].errors[0]
    assert "subject P002 has no mass_kg" in rep.outcomes[2].errors[0]
    assert sum("attempt 2 failed" in s for s in lines) == 3
    assert [r["errors"] for r in summary_table(rep)] == [o.errors for o in rep.outcomes]


class _FlakyBackend:
    """Fails each job's first attempt, then returns a fixed result: exercises the retry loop itself."""

    name, workers = "flaky", 1

    def __init__(self):
        self.calls = []

    def run(self, jobs):
        self.calls.append([j.name for j in jobs])
        first = len(self.calls) == 1
        return [{"trial": j.name, "error": "boom"} if first or j.name == "never" else
                {"trial": j.name, "metrics": {}, "stances": 0, "seconds": 0.0} for j in jobs]

    def close(self):
        pass


def test_retry_loop_resubmits_only_failures():
    jobs = [TrialJob(n, "P001", 70.0, 1.7, "left", "x.trc", "m.osim") for n in ("a", "never", "b")]
    be = _FlakyBackend()
    rep = run_batch(jobs, retries=2, backend=be, progress=lambda s: None)
    assert be.calls == [["a", "never", "b"], ["a", "never", "b"], ["never"]]
    assert [o.ok for o in rep.outcomes] == [True, False, True]
    assert rep.outcomes[1].errors == ["boom"] * 3
    with pytest.raises(ValueError, match="--retries = -1"):
        run_batch(jobs, retries=-1, backend=be)


def test_manifest_paths_defaults_and_errors(tmp_path):
    m = tmp_path / "manifest.yaml"
    m.write_text("subjects:\n  P017: {mass_kg: 71.5, height_m: 1.74, affected_side: right}\n"
                 "trials:\n  - {name: t1, subject: P017, side: right, trc: a/t1.trc, markerset: /abs/m.xml,"
                 " date: 2026-01-05}\n")
    (job,) = jobs_from(tmp_path)
    assert (job.mass_kg, job.height_m, job.affected_side) == (71.5, 1.74, "right")
    assert job.trc == str(tmp_path / "a" / "t1.trc") and job.markerset == "/abs/m.xml"
    assert job.session_date == "2026-01-05"
    m.write_text("trials:\n  - {name: t1, subject: P017, side: right, trc: a.trc, markerset: m.xml, colour: red}\n")
    with pytest.raises(ValueError, match=r"trials\[0\]: unknown key\(s\) \['colour'\]"):
        jobs_from_manifest(m)
    m.write_text("trials:\n  - {name: t1, subject: P017, side: right, markerset: m.xml}\n")
    with pytest.raises(ValueError, match=r"trials\[0\]\.trc is missing"):
        jobs_from_manifest(m)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        jobs_from(tmp_path / "nothing")


def test_batch_report_throughput():
    rep = BatchReport([JobOutcome(TrialJob("a", "P1", 1, 1, "left", "", ""), result={})] * 3, 30.0, "local", 2)
    assert rep.trials_per_minute == pytest.approx(6.0)

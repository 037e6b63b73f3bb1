"""The trunk in the live estimation chain (``EstimatorParams.grf_trunk``): the replay input carries the trial's thorax
markers, the chain runs ``models.grf.trunk.TrunkTracker`` on them per frame, and its KAM / vGRF follow the offline
chain with ``AnalyzeParams(grf_trunk=True)``.

References: the marker set file itself (which markers sit on the torso), the raw trial file, the lab's own OpenSim
inverse kinematics of the trial (Rajagopal lumbar angles: a fit we did not write), and the offline zero-lag chain.
"""
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from _support import shared_data

from models.io.lab_files import shared_data_dir
from models.io.shared_trials import shared_trials
from runtime.estimation.chain import (
    EstimatorParams,
    KinematicsToLoads,
    MarkerRecording,
    load_marker_recording,
    resample_hold,
    run_offline,
)


@pytest.fixture(scope="module")
def ps1():
    shared_data("GC5_PS", "model", "GC5.osim")          # skip with the reason when the lab data are absent
    return next(t for t in shared_trials(shared_data_dir()) if t.name == "PS_ss1")


def _chain(t, trunk: bool) -> KinematicsToLoads:
    # muscles off: the knee moments and the GRF do not depend on them, and the chain is cheaper
    return KinematicsToLoads.for_subject(t.markerset, EstimatorParams(t.mass_kg, t.height_m, t.side, rate_hz=60.0,
                                                                      grf_trunk=trunk, muscles=False))


@pytest.fixture(scope="module")
def trunk_on(ps1):
    est = _chain(ps1, True)
    rec = resample_hold(load_marker_recording(ps1.trc, est.marker_names, est.torso), 60.0)
    return est, rec, run_offline(est, rec)


def test_replay_recording_carries_the_thorax_markers(ps1, trunk_on):
    """The torso markers of GC5.osim's MarkerSet but the shoulders, read from the trial in that order, held to 60 Hz
    with the same frames as the leg markers."""
    from models.io.axes import opensim_to_z_up
    from models.io.lab_files import read_trial

    est, rec, _ = trunk_on
    root = ET.parse(ps1.markerset).getroot()
    on_torso = [m.get("name") for m in root.iter("Marker") if (m.findtext("body") or "").strip() == "torso"]
    assert set(est.torso.names) == {n for n in on_torso if "shoulder" not in n.lower()}
    assert len(est.torso.names) == 4 and est.torso.offsets_m.shape == (4, 3)
    raw = load_marker_recording(ps1.trc, est.marker_names, est.torso)
    trial = read_trial(ps1.trc)
    markers = getattr(trial, "markers", trial)
    pos = opensim_to_z_up(np.asarray(markers.positions_m, float))
    for k, name in enumerate(est.torso.names):
        np.testing.assert_array_equal(raw.torso_markers_m[:, k], pos[:, list(markers.marker_names).index(name)])
    assert rec.torso_markers_m.shape == (rec.time_s.size, 4, 3) and np.isfinite(rec.torso_markers_m).all()
    np.testing.assert_array_equal(rec.torso_offsets_m, est.torso.offsets_m)
    for i, t in enumerate(rec.time_s):                    # held like the leg markers: the same raw frame
        j = int(np.searchsorted(raw.time_s, t + 1e-9, side="right") - 1)
        np.testing.assert_array_equal(rec.torso_markers_m[i], raw.torso_markers_m[j])
        np.testing.assert_array_equal(rec.markers_m[i], raw.markers_m[j])
    # without the estimator's torso markers the recording has none
    assert load_marker_recording(ps1.trc, est.marker_names).torso_markers_m is None


def test_inconsistent_torso_input_is_refused_naming_the_field(trunk_on):
    est, rec, _ = trunk_on
    with pytest.raises(ValueError, match="torso_markers_m and torso_offsets_m"):
        MarkerRecording("x", rec.time_s, rec.markers_m, 60.0, torso_markers_m=rec.torso_markers_m)
    with pytest.raises(ValueError, match="torso_markers_m"):
        MarkerRecording("x", rec.time_s, rec.markers_m, 60.0, None, rec.torso_markers_m[:-1], rec.torso_offsets_m)
    other = MarkerRecording("x", rec.time_s[:5], rec.markers_m[:5], 60.0, None, rec.torso_markers_m[:5],
                            rec.torso_offsets_m + 0.01)
    with pytest.raises(ValueError, match="torso_offsets_m"):
        run_offline(est, other)
    with pytest.raises(ValueError, match="trunk_extension_tau_s"):
        EstimatorParams(75.0, 1.8, "left", trunk_extension_tau_s=0.0)


def test_trunk_off_or_without_torso_markers_holds_the_trunk_to_the_pelvis(ps1, trunk_on):
    """grf_trunk off, or on with a recording that has no torso markers: the same numbers as before the trunk existed
    (MyoLeg's upper body welded to the pelvis), no trunk stage; on with them: the trunk moves the GRF and the KAM."""
    est_on, rec, r_on = trunk_on
    est_off = _chain(ps1, False)
    assert est_off.trunk is None and est_on.trunk is not None
    bare = MarkerRecording(rec.name, rec.time_s, rec.markers_m, rec.rate_hz)
    r_off = run_offline(est_off, rec)                      # torso markers given, but grf_trunk off
    est_on.reset()
    r_bare = run_offline(est_on, bare)
    for r in (r_off, r_bare):
        assert np.isnan(r.lumbar_rad).all()
    np.testing.assert_array_equal(r_bare.kam_pct_bw_ht, r_off.kam_pct_bw_ht)
    np.testing.assert_array_equal(r_bare.grf_n, r_off.grf_n)
    assert "trunk" not in r_off.stage_s and "trunk" in r_on.stage_s and (r_on.stage_s["trunk"] > 0).all()
    assert np.isfinite(r_on.lumbar_rad).all()
    assert np.nanmax(np.abs(r_on.kam_pct_bw_ht - r_off.kam_pct_bw_ht)) > 0.05


def test_live_trunk_angles_follow_the_lab_inverse_kinematics(ps1, trunk_on):
    """Lumbar bending and rotation of the live chain against the lab's OpenSim IK of the trial (Rajagopal ``back``
    joint, same Rz Rx Ry order), shifted by the chain's lag. Regression guard, measured 2026-12-07: bending RMSE
    1.93 deg (r 0.887), rotation 1.65 deg (r 0.898) over lab ranges of 9.5 / 10.5 deg; each RMSE may grow 15 %,
    r stays above 0.85. (Extension is not compared: the chain holds it near an EMA by design.)"""
    from models.io.storage import read_mot

    est, _, r = trunk_on
    ik = read_mot(ps1.ik_ref)
    ik = ik.to_radians() if ik.in_degrees else ik
    s = np.arange(r.time_s.size) > 15
    for j, name, rmse0 in ((1, "lumbar_bending", 1.93), (2, "lumbar_rotation", 1.65)):
        lab = np.interp(r.time_s - est.lag_s, ik.time_s, ik.column(name))[s]
        live = r.lumbar_rad[s, j]
        rmse = float(np.degrees(np.sqrt(np.mean((live - lab) ** 2))))
        corr = float(np.corrcoef(live, lab)[0, 1])
        assert rmse <= 1.15 * rmse0 and corr > 0.85, (name, rmse, corr)


def test_regression_guard_live_trunk_kam_and_vgrf_follow_the_offline_trunk_chain(ps1, trunk_on):
    """grf_trunk on in both chains: the live chain's KAM and vertical GRF against the offline zero-lag analysis with
    ``AnalyzeParams(grf_trunk=True)``, shifted by the chain's lag. The KAM bounds are those of the trunk-less guard in
    test_estimation.py (RMSE 0.209, r^2 0.943, R^2 0.932, peak error 0.123 %BW*ht, each error + 15 %). Measured
    2026-12-07 with the trunk: RMSE 0.185, r^2 0.963, R^2 0.955, peak error 0.081 (without it in both: 0.172,
    0.963, -, 0.123): the live extension EMA against the offline trial median does not show (an EMA of 0.3..30 s
    moves the RMSE by < 0.002). vGRF, both feet, all frames past the first 15: RMSE 1.23 %BW (1.28 without the
    trunk), may grow 15 %."""
    from models.trial_analysis import AnalyzeParams, analyze_trial

    est, _, r = trunk_on
    off = analyze_trial(ps1.trc, ps1.markerset, AnalyzeParams(ps1.mass_kg, ps1.height_m, ps1.side, grf_trunk=True))
    assert any("trunk bending/rotation from 4 thorax markers" in n for n in off.notes), off.notes
    ref = np.interp(r.time_s - est.lag_s, off.time_s, off.kam_pct_bw_ht)
    ok = np.isfinite(r.kam_pct_bw_ht) & np.isfinite(ref) & (np.arange(r.time_s.size) > 15)
    assert ok.sum() > 30
    live, ref = r.kam_pct_bw_ht[ok], ref[ok]
    e = live - ref
    got = {"rmse": float(np.sqrt(np.mean(e ** 2))), "r2": float(np.corrcoef(live, ref)[0, 1]) ** 2,
           "cod": 1.0 - float(np.sum(e ** 2) / np.sum((ref - ref.mean()) ** 2)),
           "peak_err": abs(float(live.max()) - float(ref.max()))}
    assert got["rmse"] <= 0.209 * 1.15, got
    assert 1.0 - got["r2"] <= (1.0 - 0.943) * 1.15, got
    assert 1.0 - got["cod"] <= (1.0 - 0.932) * 1.15, got
    assert got["peak_err"] <= 0.123 * 1.15, got
    bw = ps1.mass_kg * 9.80665
    late = np.arange(r.time_s.size) > 15
    ev = np.concatenate([np.nan_to_num(r.grf_n[late, k, 2])
                         - np.interp(r.time_s - est.lag_s, off.time_s, off.foot_force_n[side][:, 2])[late]
                         for k, side in enumerate(("right", "left"))])       # grf_n's feet: right, left
    vgrf = 100.0 * float(np.sqrt(np.mean(ev ** 2))) / bw
    assert vgrf <= 1.23 * 1.15, vgrf


def test_replay_pipeline_passes_the_torso_markers(trunk_on):
    """The 60 Hz loop's replay capture and estimation stage give the trunk the recording's torso markers: the same
    numbers as the offline run, frame for frame."""
    from runtime.pipeline.frame import PipelineFrame
    from runtime.pipeline.stages import EstimationStage, ReplayCapture

    est, rec, r = trunk_on
    est.reset()
    cap, stage = ReplayCapture(rec, lambda: 0, loop=False), EstimationStage(est)
    frame = PipelineFrame()
    for i in range(25):
        cap.step(frame)
        stage.step(frame)
        np.testing.assert_array_equal(frame.torso_m, rec.torso_markers_m[i])
        np.testing.assert_array_equal(frame.estimate.lumbar_rad, r.lumbar_rad[i])
        assert frame.estimate.kam_pct_bw_ht == r.kam_pct_bw_ht[i] or (
            np.isnan(frame.estimate.kam_pct_bw_ht) and np.isnan(r.kam_pct_bw_ht[i]))


def test_warm_up_exercises_the_trunk_and_forgets_it(trunk_on):
    est, rec, r = trunk_on
    assert est.warm_up(frames=3) > 0.0
    assert np.isnan(est.trunk.angles).all()               # reset after the warm-up
    f = est.step(rec.markers_m[0], rec.time_s[0], torso_m=rec.torso_markers_m[0])
    np.testing.assert_array_equal(f.lumbar_rad, r.lumbar_rad[0])

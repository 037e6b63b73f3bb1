"""The learned knee contact force estimator: artefact integrity, onnxruntime inference, the causal window's lag,
the feature extraction (synthetic frames and a short PS trial through the chain), and physics as the default."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from models.muscles.kcf_features import FEATURE_NAMES, KNEE_MUSCLES, N_FEATURES, KcfFeatures
from models.muscles.kcf_learned import (ARTIFACT_DIR, ARTIFACT_STEM, LAG_FRAMES, OFFLINE_AHEAD, OUTPUTS, WINDOW,
                                        LearnedKcf, causal_windows, centred_windows, invariant_targets, load_card, split)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CARD = ARTIFACT_DIR / f"{ARTIFACT_STEM}.json"
ONNX = ARTIFACT_DIR / f"{ARTIFACT_STEM}.onnx"
#: asymmetric contact points (m), PS-like: 6.8 mm medial of the tibia origin, 21 mm half spacing
GEOM = (0.0278, 0.0142)


def _card() -> dict:
    return json.loads(CARD.read_text())


def test_artifact_hash_size_and_feature_list():
    card = _card()
    assert hashlib.sha256(ONNX.read_bytes()).hexdigest() == card["sha256"]
    assert ONNX.stat().st_size == card["bytes"] < 5_000_000
    assert tuple(card["features"]["names"]) == FEATURE_NAMES
    assert card["network"]["input"]["shape"] == [1, WINDOW, N_FEATURES]
    assert card["network"]["causal"]["lag_frames"] == LAG_FRAMES
    for fold in ("held_out_PS", "held_out_DM"):
        for side in ("medial", "lateral"):
            assert math.isfinite(card["metrics"][fold]["pooled_causal"][side]["r2"])
    assert load_card()["sha256"] == card["sha256"]
    assert tuple(card["network"]["output"]["names"]) == OUTPUTS == ("axial_bw", "frontal_moment_per_bw_h")
    assert "F_med = (F_ax d_l + M_f) / (d_m + d_l)" in card["network"]["split"]["formula"]
    assert all(len(v["offsets_m"]) == 2 for v in card["data"]["condyles"].values())


def test_split_is_winby_and_inverts_the_targets():
    from models.muscles.knee_contact import medial_lateral_split

    rng = np.random.default_rng(2)
    med, lat = rng.normal(1.5, 0.5, 50), rng.normal(0.8, 0.3, 50)
    ax, m = invariant_targets(med, lat, GEOM)
    np.testing.assert_allclose(ax, med + lat, rtol=1e-12)
    got = split(ax, m, GEOM)
    np.testing.assert_allclose(got, (med, lat), rtol=0, atol=1e-12)
    h = 0.5 * sum(GEOM)
    np.testing.assert_allclose(medial_lateral_split(ax, m * h, *GEOM), (med, lat), rtol=0, atol=1e-12)
    # symmetric points: m is medial minus lateral; the same outputs give a more lateral split at points sitting medial
    np.testing.assert_allclose(invariant_targets(med, lat, (0.02, 0.02))[1], med - lat, rtol=1e-12)
    assert (split(ax, m, (0.0278, 0.0142))[0] < split(ax, m, (0.02, 0.02))[0]).all()


def test_learned_outputs_are_split_at_the_subjects_points():
    x = np.random.default_rng(4).normal(size=(40, N_FEATURES))
    a, b = LearnedKcf(70.0, GEOM), LearnedKcf(70.0, (0.021, 0.021))
    ya, yb = a.trial(x, offline=False), b.trial(x, offline=False)
    np.testing.assert_allclose(ya.sum(1), yb.sum(1), rtol=1e-12)          # the same axial force
    bw = 70.0 * 9.80665
    np.testing.assert_allclose(invariant_targets(ya[:, 0] / bw, ya[:, 1] / bw, GEOM)[1],
                               invariant_targets(yb[:, 0] / bw, yb[:, 1] / bw, (0.021, 0.021))[1], atol=1e-9)
    assert np.abs(ya - yb).max() > 1.0


@pytest.mark.parametrize("bad", [(0.0, 0.02), (0.03, -0.01), (float("nan"), 0.02), (0.02,), None, "left"])
def test_bad_geometry_refused(bad):
    with pytest.raises(ValueError, match="condyle|offsets"):
        LearnedKcf(70.0, bad)


def test_tampered_artifact_is_refused(tmp_path):
    card = _card()
    (tmp_path / card["artifact"]).write_bytes(ONNX.read_bytes()[:-1] + b"\0")
    (tmp_path / CARD.name).write_text(json.dumps(card))
    with pytest.raises(ValueError, match="sha256"):
        load_card(tmp_path)


def test_onnxruntime_reproduces_the_cards_check_output():
    card = _card()
    x = np.random.default_rng(card["check"]["input_seed"]).normal(size=(1, WINDOW, N_FEATURES)).astype(np.float32)
    y = LearnedKcf(75.0, GEOM).run(x)
    assert y.shape == (1, WINDOW, 2)
    np.testing.assert_allclose(y.reshape(-1), np.array(card["check"]["output"]), atol=1e-5, rtol=0)


def test_step_equals_causal_trial_and_lag():
    est = LearnedKcf(70.0, GEOM)
    x = np.random.default_rng(1).normal(size=(60, N_FEATURES))
    live = np.array([est.step(f).copy() for f in x])
    assert live.shape == (60, 2)
    np.testing.assert_allclose(live, est.trial(x, offline=False), rtol=1e-6, atol=1e-6)
    # causal: frame k's estimate does not change with frames after k + LAG_FRAMES
    k = 40
    x2 = x.copy()
    x2[k + LAG_FRAMES + 1:] += 3.0
    c1, c2 = est.trial(x, offline=False), est.trial(x2, offline=False)
    np.testing.assert_array_equal(c1[:k + LAG_FRAMES + 1], c2[:k + LAG_FRAMES + 1])
    assert np.abs(c1[k + LAG_FRAMES + 1:] - c2[k + LAG_FRAMES + 1:]).max() > 0
    # offline: frame k sees exactly OFFLINE_AHEAD frames of the future
    x3 = x.copy()
    x3[k + OFFLINE_AHEAD] += 3.0
    o1, o3 = est.trial(x, offline=True), est.trial(x3, offline=True)
    assert np.abs(o1[k] - o3[k]).max() > 0
    np.testing.assert_array_equal(o1[:k], o3[:k])
    # a new recording starts from an edge-padded window again
    est.reset()
    np.testing.assert_allclose(est.step(x[0]), live[0], rtol=1e-6)


def test_windows_padding():
    z = np.arange(10.0)[:, None]
    c = causal_windows(z)
    assert c.shape == (10, WINDOW, 1)
    assert c[0, :, 0].tolist() == [0.0] * WINDOW and c[9, -1, 0] == 9.0 and c[9, -2, 0] == 8.0
    o = centred_windows(z)
    assert o[3, WINDOW - 1 - OFFLINE_AHEAD, 0] == 3.0 and o[3, -1, 0] == 9.0


def test_bad_input_named():
    with pytest.raises(ValueError, match="mass_kg"):
        LearnedKcf(-1.0, GEOM)
    with pytest.raises(ValueError, match="rate_hz"):
        LearnedKcf(70.0, GEOM, rate_hz=30.0)
    with pytest.raises(ValueError, match="side"):
        KcfFeatures("both", 70.0, 1.7, 60.0, [])
    with pytest.raises(ValueError, match="muscle_names"):
        KcfFeatures("left", 70.0, 1.7, 60.0, ["vasmed_r"])
    f = KcfFeatures("left", 70.0, 1.7, 60.0, [m + "_l" for m in KNEE_MUSCLES])
    n = len(KNEE_MUSCLES)
    with pytest.raises(ValueError, match="coordinates_rad"):
        f.step(SimpleNamespace(coordinates_rad=np.zeros(3)), np.zeros(n), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="reaction_moment_nm"):
        f.step(_frame([0, 0, 0, 0.5, 0], 0.3), np.zeros(n), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="muscle_force_n"):
        f.step(_frame([0, 0, 0, 0.5, 0], 0.3), np.zeros(n - 1), np.zeros(3), np.zeros(3))


def _frame(q, left_cop_x, loaded=True):
    return SimpleNamespace(coordinates_rad=np.asarray(q, float), grf_n=np.array([[1.0, 2.0, 50.0], [30.0, 40.0, 686.0]]),
                           cop_m=np.array([[0.5, 0.1, 0.0], [left_cop_x, 0.2, 0.0]]),
                           contact=np.array([False, loaded]), kam_pct_bw_ht=2.5, kem_pct_bw_ht=-1.0,
                           knee_moment_nm=70.0 * 9.80665 * 1.7 / 100.0, synergy=np.array([0.1, 0.2, 0.3, 0.4]),
                           activation=np.arange(len(KNEE_MUSCLES)) / 100.0)


_FORCE = 686.0 * np.arange(1, len(KNEE_MUSCLES) + 1) / 10.0        # N: 0.1 .. 1.3 BW of 70 kg
_RF, _RM = np.array([68.6, -1372.0, 34.3]), np.array([11.67, -2.334, 23.34])    # N; N m (1, -0.2, 2 %BW*ht)


def test_features_of_synthetic_frames():
    names = [m + "_l" for m in KNEE_MUSCLES]
    f = KcfFeatures("left", 70.0, 1.7, 60.0, names)
    a = f.step(_frame([0.1, 0, 0, 0.5, 0], 0.30), _FORCE, _RF, _RM).copy()
    b = f.step(_frame([0.2, 0, 0, 0.4, 0], 0.33), _FORCE, _RF, _RM).copy()
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    assert a[col["hip_flexion_vel_rad_s"]] == 0.0
    assert b[col["hip_flexion_vel_rad_s"]] == pytest.approx(6.0)
    assert b[col["knee_angle_vel_rad_s"]] == pytest.approx(-6.0)
    bw = 70.0 * 9.80665
    assert b[col["grf_vertical_side_bw"]] == pytest.approx(686.0 / bw)       # left is the side: second foot
    assert b[col["grf_horizontal_side_bw"]] == pytest.approx(50.0 / bw)
    assert b[col["grf_vertical_other_bw"]] == 0.0 and b[col["contact_other"]] == 0.0   # right foot not in contact
    assert a[col["cop_travel_side_m"]] == 0.0 and b[col["cop_travel_side_m"]] == pytest.approx(0.03)
    assert b[col["knee_moment_pct_bw_ht"]] == pytest.approx(1.0)
    assert not any(n.startswith("activation_") for n in FEATURE_NAMES)     # strength-blind: tensions instead
    forces = [col[f"force_{m}_bw"] for m in KNEE_MUSCLES]
    np.testing.assert_allclose(b[forces], _FORCE / bw, rtol=1e-12)
    reaction = [col[f"reaction_{q}"] for q in ("force_x_bw", "force_y_bw", "force_z_bw", "moment_x_pct_bw_ht",
                                               "moment_y_pct_bw_ht", "moment_z_pct_bw_ht")]
    np.testing.assert_allclose(b[reaction], [0.1, -2.0, 0.05, 1.0, -0.2, 2.0], rtol=1e-3)
    c = f.step(_frame([0.2, 0, 0, 0.4, 0], 0.40, loaded=False), _FORCE, _RF, _RM)
    assert c[col["contact_side"]] == 0.0 and c[col["cop_travel_side_m"]] == 0.0
    # a right knee's tibia frame is the mirror image: lateral force and frontal / transverse moments change sign
    r = KcfFeatures("right", 70.0, 1.7, 60.0, [m + "_r" for m in KNEE_MUSCLES])
    rr = r.step(_frame([0.2, 0, 0, 0.4, 0], 0.33), _FORCE, _RF, _RM)
    np.testing.assert_allclose(rr[reaction], [0.1, -2.0, -0.05, -1.0, 0.2, 2.0], rtol=1e-3)
    # a frame whose muscle stage did not run (activations NaN): no forces nor reaction
    nan_frame = _frame([0.2, 0, 0, 0.4, 0], 0.33)
    nan_frame.activation = np.full(len(KNEE_MUSCLES), np.nan)
    d = f.step(nan_frame, _FORCE, _RF, _RM)
    assert np.isnan(d[forces]).all() and np.isnan(d[reaction]).all()


@pytest.mark.skipif(not (DATA / "GC5_PS" / "trc" / "PS_ngait_og_ss1.trc").exists(), reason="shared PS data absent")
def test_features_on_a_short_ps_trial():
    from models.io.shared_trials import shared_trials
    from runtime.estimation.chain import (EstimatorParams, KinematicsToLoads, MarkerRecording, load_marker_recording,
                                          resample_hold, run_offline)
    from runtime.estimation.kcf_dataset import run_with_features

    trial = shared_trials(DATA)[0]
    est = KinematicsToLoads.for_subject(trial.markerset, EstimatorParams(75.0, 1.8, "left"))
    full = resample_hold(load_marker_recording(trial.trc, est.marker_names, torso=est.torso), 60.0)
    assert full.torso_markers_m is not None             # the chain's GRF trunk reads the thorax markers
    rec = MarkerRecording(full.name, full.time_s[:20], full.markers_m[:20], 60.0, None, full.torso_markers_m[:20],
                          full.torso_offsets_m)
    res = run_offline(est, rec)
    got = run_with_features(est, rec, KcfFeatures("left", 75.0, 1.8, 60.0, est.muscle_names))
    x = got["x"]
    assert x.shape == (20, N_FEATURES)
    np.testing.assert_array_equal(got["valid"], res.valid)
    np.testing.assert_allclose(got["kcf_n"], res.kcf_n, rtol=1e-9)           # frame by frame = the offline chain
    assert np.isfinite(x[res.valid]).all() and res.valid.sum() >= 15
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    np.testing.assert_allclose(x[:, :5], res.coordinates_rad)
    np.testing.assert_allclose(x[1:, 5:10], np.diff(res.coordinates_rad, axis=0) * 60.0)
    np.testing.assert_allclose(x[:, col["knee_moment_pct_bw_ht"]], 100.0 * res.knee_moment_nm / (75.0 * 9.80665 * 1.8))
    forces = x[res.valid][:, [col[f"force_{m}_bw"] for m in KNEE_MUSCLES]]
    assert (forces >= 0).all() and forces.max() > 0.05                    # tensions >= 0, in BW
    # the tibia's intersegmental reaction (tibia frame, BW): under the largest vertical GRF of the side's foot the
    # femur presses the tibia down its long axis by most of a body weight (the foot pushes it up)
    v = x[res.valid]
    k = np.argmax(v[:, col["grf_vertical_side_bw"]])
    assert v[k, col["grf_vertical_side_bw"]] > 0.5 and -1.5 < v[k, col["reaction_force_y_bw"]] < -0.5
    from runtime.estimation.kcf_dataset import targets

    t = targets(got["kcf_n"], 75.0, est.condyles)                       # the round trip: targets -> split -> chain
    ok = np.isfinite(t["y"]).all(axis=1)
    back = np.stack(split(t["y"][ok, 0], t["y"][ok, 1], est.condyles), axis=1)
    np.testing.assert_allclose(back, got["kcf_n"][ok, :2] / (75.0 * 9.80665), rtol=0, atol=1e-9)
    assert est.condyles.centre_m != 0.0                                  # PS: asymmetric points
    kcf = LearnedKcf(75.0, est.condyles).trial(x, offline=False)
    assert np.isfinite(kcf[res.valid]).all() and kcf.shape == (20, 2)
    # kcf: learned in the chain: the same physics outputs, medial / lateral from the network (fed the frame's muscle
    # tensions and tibia reaction) on the frames the chain's muscle stage ran, total = medial + lateral
    est2 = KinematicsToLoads.for_subject(trial.markerset, EstimatorParams(75.0, 1.8, "left", kcf="learned"))
    res2 = run_offline(est2, rec)
    np.testing.assert_array_equal(res2.activation, res.activation)
    ran = np.isfinite(res.activation).all(axis=1)
    learned = LearnedKcf(75.0, est2.condyles)
    expect = np.array([learned.step(x[i]).copy() for i in np.flatnonzero(ran)])
    np.testing.assert_allclose(res2.kcf_n[ran, :2], expect, rtol=1e-9)
    np.testing.assert_allclose(res2.kcf_n[ran, 2], expect.sum(axis=1), rtol=1e-9)
    assert not np.allclose(res2.kcf_n[ran, :2], res.kcf_n[ran, :2])


def test_physics_is_the_default():
    from runtime.core.config import EstimationLoopConfig
    from runtime.estimation.chain import EstimatorParams

    assert EstimationLoopConfig().kcf == "physics"
    assert EstimatorParams(75.0, 1.8, "left").kcf == "physics"
    with pytest.raises(ValueError, match="kcf"):
        EstimatorParams(75.0, 1.8, "left", kcf="neural")


def test_export_matches_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from models.muscles.kcf_learned_train import KcfNet, export

    torch.manual_seed(0)
    net = KcfNet().eval()
    export(net, tmp_path / "k.onnx")            # raises when onnxruntime differs from PyTorch by > 1e-4
    assert (tmp_path / "k.onnx").stat().st_size > 0

"""Synthetic 2-D keypoints from the shared lab marker trials (issue 17, "How to validate"): the camera, the
reprojection of the truth, the noise, the joint centres, and misplaced marker-set coordinates caught."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from models.body.blazepose import BLAZEPOSE_33
from models.body.markerset import Marker, MarkerSet, from_opensim_markerset
from models.io.axes import opensim_to_z_up
from models.io.keypoints2d import read_keypoints2d, write_keypoints_csv
from models.io.lab_files import shared_data_dir
from models.io.shared_trials import shared_trials
from models.io.synthetic_keypoints import (
    fit_rigid,
    harrington_hip_centres,
    matrix_to_rodrigues,
    render_marker_trial,
    write_calibration_toml,
)
from models.io.trc import read_trc
from runtime.vision.calibration import read_calibration, rodrigues_to_matrix

IDX = {n: i for i, n in enumerate(BLAZEPOSE_33)}
TRIALS = {t.name: t for t in shared_trials(shared_data_dir())}
PS_STATIC = Path(TRIALS["PS_ss1"].markerset).parent / "Static_for_scaling.trc"

pytestmark = pytest.mark.skipif(not Path(TRIALS["PS_ss1"].trc).exists(), reason="shared lab data not present")


def _static_for(name: str) -> Path | None:
    return PS_STATIC if name.startswith("PS") else None


@pytest.fixture(scope="module", params=["PS_ss1", "DM_og1"])
def rendered(request):
    t = TRIALS[request.param]
    r = render_marker_trial(t.trc, t.markerset, static_trc=_static_for(t.name), side=t.side)
    return t, r


def test_truth_reprojects_onto_noiseless_keypoints_through_written_calibration(rendered, tmp_path: Path) -> None:
    _, r = rendered
    path = write_calibration_toml(tmp_path / "Calib.toml", r.camera)
    cams = read_calibration(path)
    assert len(cams) == 1
    cam = cams[0]
    assert cam.image_size == (1920, 1080)
    np.testing.assert_array_equal(cam.K, r.camera.K)
    np.testing.assert_array_equal(cam.translation_cw_m, r.camera.t_cw)
    uv = cam.project(r.truth_world_m)
    kp = r.keypoints_clean
    det = kp.detected
    # every landmark with a truth is in the image and detected; the others have none
    np.testing.assert_array_equal(det, np.isfinite(r.truth_world_m).all(axis=-1))
    assert det[:, [IDX[f"{s}_{j}"] for s in ("left", "right") for j in ("hip", "knee", "ankle", "heel", "foot_index")]].all()
    assert np.max(np.abs(uv[det] - kp.xy_px[det])) < 1e-9
    assert np.all(np.isnan(kp.xy_px[~det]))
    assert np.all(kp.score[:, :11] == 0.0)  # face not detected
    assert np.all(kp.score[:, [IDX["left_pinky"], IDX["right_index"], IDX["left_thumb"]]] == 0.0)


def test_time_is_the_trials(rendered) -> None:
    t, r = rendered
    trial = read_trc(t.trc)
    np.testing.assert_array_equal(r.keypoints.time_s, trial.time_s)
    np.testing.assert_array_equal(r.keypoints_clean.time_s, trial.time_s)


def test_side_on_camera_geometry(rendered) -> None:
    t, r = rendered
    cam = r.camera
    assert cam.K[0, 0] == 1400.0 and cam.K[1, 1] == 1400.0
    assert r.keypoints.image_size == (1920, 1080)
    axis = cam.R_cw[2]
    assert abs(axis[2]) < 1e-12  # optical axis horizontal
    hips = 0.5 * (r.truth_world_m[:, IDX["left_hip"]] + r.truth_world_m[:, IDX["right_hip"]])
    c = cam.center_world_m
    assert c[2] == pytest.approx(np.mean(hips[:, 2]), abs=1e-9)  # at hip height
    # horizontal distance from the walking line: depth of the hip path along the optical axis
    depth = (hips - c) @ axis
    assert 6.0 <= float(np.mean(depth)) <= 8.0
    assert float(np.mean(depth)) == pytest.approx(7.0, abs=0.05)
    # the camera sees the trial's side: that hip is nearer in most frames
    near, far = (f"{t.side}_hip", f"{'right' if t.side == 'left' else 'left'}_hip")
    d_near = (r.truth_world_m[:, IDX[near]] - c) @ axis
    d_far = (r.truth_world_m[:, IDX[far]] - c) @ axis
    assert np.mean(d_near < d_far) > 0.95
    # walking crosses the image horizontally, by f * travel / depth
    xs = r.keypoints_clean.xy_px[:, IDX[near], 0]
    travel = abs(float((hips[-1] - hips[0]) @ cam.R_cw[0]))
    assert travel > 1.0
    assert abs(xs[-1] - xs[0]) == pytest.approx(1400.0 * travel / 7.0, rel=0.1)


def test_noise_has_the_stated_sigma(rendered) -> None:
    _, r = rendered
    det = r.keypoints.detected
    d = (r.keypoints.xy_px - r.keypoints_clean.xy_px)[det]
    n = d.size
    assert n > 2000
    # standard error of a Gaussian sample std: sigma / sqrt(2 n) = 0.03 px at n = 2000; 4 of them allowed
    assert float(np.std(d)) == pytest.approx(2.0, abs=4 * 2.0 / math.sqrt(2 * n))
    assert abs(float(np.mean(d))) < 4 * 2.0 / math.sqrt(n)
    np.testing.assert_array_equal(r.keypoints.score, r.keypoints_clean.score)


def test_noise_is_seeded() -> None:
    t = TRIALS["DM_og1"]
    a = render_marker_trial(t.trc, t.markerset, side=t.side, seed=5)
    b = render_marker_trial(t.trc, t.markerset, side=t.side, seed=5)
    c = render_marker_trial(t.trc, t.markerset, side=t.side, seed=6)
    z = render_marker_trial(t.trc, t.markerset, side=t.side, noise_px=0.0)
    np.testing.assert_array_equal(a.keypoints.xy_px, b.keypoints.xy_px)
    assert not np.array_equal(a.keypoints.xy_px, c.keypoints.xy_px, equal_nan=True)
    np.testing.assert_array_equal(z.keypoints.xy_px, a.keypoints_clean.xy_px)


def test_rendered_keypoints_round_trip_through_csv(rendered, tmp_path: Path) -> None:
    _, r = rendered
    back = read_keypoints2d(write_keypoints_csv(tmp_path / "kp.csv", r.keypoints))
    np.testing.assert_array_equal(back.xy_px, r.keypoints.xy_px)
    np.testing.assert_array_equal(back.time_s, r.keypoints.time_s)
    assert back.image_size == (1920, 1080)


def test_segment_lengths_plausible_and_nearly_rigid(rendered) -> None:
    t, r = rendered
    T = r.truth_world_m
    for s in ("left", "right"):
        thigh = np.linalg.norm(T[:, IDX[f"{s}_hip"]] - T[:, IDX[f"{s}_knee"]], axis=1)
        shank = np.linalg.norm(T[:, IDX[f"{s}_knee"]] - T[:, IDX[f"{s}_ankle"]], axis=1)
        # 0.245 and 0.246 of stature (Winter, Biomechanics and Motor Control of Human Movement, 4th ed., Table 4.1)
        assert np.mean(thigh) == pytest.approx(0.245 * t.height_m, rel=0.12), s
        assert np.mean(shank) == pytest.approx(0.246 * t.height_m, rel=0.12), s
        # knee from the thigh cluster, hip from the pelvis: their distance varies by soft tissue only
        assert np.std(thigh) < 0.01 and np.std(shank) < 0.015
    assert float(np.nanmin(T[..., 2])) > 0.0  # above the floor


def test_knee_and_ankle_centres_match_the_static_trials_epicondyles() -> None:
    """Rendering the static trial itself: the placed epicondyles / malleoli against their recordings."""
    t = TRIALS["PS_ss1"]
    r = render_marker_trial(PS_STATIC, t.markerset, static_trc=PS_STATIC)
    st = read_trc(PS_STATIC)
    p = opensim_to_z_up(st.positions_m)
    j = {n: i for i, n in enumerate(st.marker_names)}
    for side, S, med_ankle in (("left", "L", "LAnkleMedial"), ("right", "R", "RankleMedial")):
        knee = 0.5 * (p[:, j[f"{S}KneeLateral"]] + p[:, j[f"{S}KneeMedial"]])
        ankle = 0.5 * (p[:, j[f"{S}AnkleLateral"]] + p[:, j[med_ankle]])
        assert np.max(np.linalg.norm(r.truth_world_m[:, IDX[f"{side}_knee"]] - knee, axis=1)) < 1e-3
        assert np.max(np.linalg.norm(r.truth_world_m[:, IDX[f"{side}_ankle"]] - ankle, axis=1)) < 1e-3


def _moved(ms: MarkerSet, name: str, delta_m: tuple[float, float, float]) -> MarkerSet:
    return MarkerSet(tuple(Marker(m.name, m.body, m.offset_m + np.asarray(delta_m) if m.name == name else m.offset_m)
                           for m in ms), source=ms.source + f" ({name} moved)")


def test_misplaced_static_marker_is_caught_and_not_used() -> None:
    t = TRIALS["PS_ss1"]
    good = render_marker_trial(t.trc, t.markerset, static_trc=PS_STATIC, side="left")
    assert good.misplaced == ()
    ms = _moved(from_opensim_markerset(t.markerset, exclude_bodies=()), "LKneeMedial", (0.03, 0.0, 0.0))
    bad = render_marker_trial(t.trc, ms, static_trc=PS_STATIC, side="left")
    assert [m.name for m in bad.misplaced] == ["LKneeMedial"]
    assert bad.misplaced[0].error_m > 0.02 and "static trial" in bad.misplaced[0].check
    assert any("LKneeMedial" in n and "not used" in n for n in bad.notes)
    assert any("re-placed" in n for n in bad.notes)
    # the knee comes from the static recording, not from the moved coordinate (15 mm off if it were used)
    err = np.linalg.norm(bad.truth_world_m[:, IDX["left_knee"]] - good.truth_world_m[:, IDX["left_knee"]], axis=1)
    assert np.max(err) < 2e-3


def test_marker_set_errors_of_dm_are_caught() -> None:
    t = TRIALS["DM_og1"]
    r = render_marker_trial(t.trc, t.markerset, side=t.side)
    caught = {m.name: m for m in r.misplaced}
    # R.Knee.Medial 1.17 m from the femur; R.Thigh.Lateral 69 mm off its neighbours in every DM trial
    assert set(caught) == {"R.Knee.Medial", "R.Thigh.Lateral"}
    assert caught["R.Thigh.Lateral"].error_m > 0.05
    assert any("mirrored" in n for n in r.notes)
    # a cluster marker moved 40 mm is caught by the walking trial's inter-marker distances
    ms = _moved(from_opensim_markerset(t.markerset, exclude_bodies=()), "L.Shank.Lateral", (0.0, 0.04, 0.0))
    r2 = render_marker_trial(t.trc, ms, side=t.side)
    assert "L.Shank.Lateral" in {m.name for m in r2.misplaced}


def test_harrington_regression_on_a_known_pelvis() -> None:
    # pelvis frame (x anterior, y superior, z right) placed in the world by a rotation and a shift
    pw, pd = 0.25, 0.15
    local = {"ra": [0, 0, pw / 2], "la": [0, 0, -pw / 2], "rp": [-pd, 0.02, 0.05], "lp": [-pd, 0.02, -0.05]}
    ang = 0.7
    R = np.array([[math.cos(ang), 0, math.sin(ang)], [0, 1, 0], [-math.sin(ang), 0, math.cos(ang)]]) @ np.array(
        [[1, 0, 0], [0, 0, -1], [0, 1, 0]])
    shift = np.array([1.0, -2.0, 0.9])
    w = {k: (R @ np.asarray(v, float) + shift)[None] for k, v in local.items()}
    hr, hl = harrington_hip_centres(w["ra"], w["la"], w["rp"], w["lp"])
    # PD = |mid-ASIS - mid-PSIS| = sqrt(0.15^2 + 0.02^2); in mm: x = -0.24 PD - 9.9, y = -0.3 PW - 10.9, z = 0.33 PW + 7.3
    pd_true = math.hypot(pd, 0.02) * 1000
    # the frame's x is mid-PSIS -> mid-ASIS made normal to z: it tilts by atan(0.02 / 0.15) about z
    tilt = math.atan2(-0.02, pd)
    x_ax = np.array([math.cos(tilt), math.sin(tilt), 0.0])
    y_ax = np.array([-math.sin(tilt), math.cos(tilt), 0.0])
    exp_r = ((-0.24 * pd_true - 9.9) * x_ax + (-0.30 * 250 - 10.9) * y_ax + np.array([0, 0, 0.33 * 250 + 7.3])) / 1000
    exp_l = exp_r * np.array([1, 1, -1])
    np.testing.assert_allclose(hr[0], R @ exp_r + shift, atol=1e-12)
    np.testing.assert_allclose(hl[0], R @ exp_l + shift, atol=1e-12)


@pytest.mark.parametrize("angle", [0.0, 1e-8, 0.3, 2.0, math.pi - 1e-5, math.pi])
def test_rodrigues_round_trip(angle: float) -> None:
    axis = np.array([0.3, -0.5, 0.81])
    axis /= np.linalg.norm(axis)
    R = rodrigues_to_matrix(angle * axis)
    back = rodrigues_to_matrix(matrix_to_rodrigues(R))
    np.testing.assert_allclose(back, R, atol=1e-12)


def test_fit_rigid_recovers_a_pose_with_gaps() -> None:
    rng = np.random.default_rng(1)
    local = rng.normal(0, 0.1, (5, 3))
    R = rodrigues_to_matrix([0.4, -1.1, 0.2])
    t = np.array([0.5, 1.0, -0.3])
    world = np.repeat((local @ R.T + t)[None], 3, axis=0)
    world[1, [0, 3]] = np.nan  # three points left
    world[2, [0, 1, 2]] = np.nan  # two left: no fit
    Rf, tf, ok = fit_rigid(local, world, np.ones((3, 5)))
    np.testing.assert_array_equal(ok, [True, True, False])
    np.testing.assert_allclose(Rf[:2], np.stack([R, R]), atol=1e-12)
    np.testing.assert_allclose(tf[:2], np.stack([t, t]), atol=1e-12)
    assert np.all(np.isnan(Rf[2]))

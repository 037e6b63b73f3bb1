"""Multi-view triangulation: exact on synthetic views, robust to bad views, and on the real pose2sim demo."""
import json
import math

import numpy as np
import pytest

from runtime.vision.calibration import CameraCalibration
from runtime.vision.triangulation import (_MIRROR_INDEX, consistent_views, estimate_time_offsets, fix_left_right,
                                          reprojection_errors, triangulate)
from runtime.vision.pose_types import BLAZEPOSE_LANDMARKS


def _ring(n=4, radius=3.5, height=1.9, distortion=(-0.05, 0.14, 0.0006, 0.0007, 0.0)):
    """Cameras on a ring around the origin looking at (0, 0, 0.9), world z up (like the pose2sim lab)."""
    cams = []
    for i in range(n):
        a = 2 * math.pi * i / n + 0.3
        c = np.array([radius * math.cos(a), radius * math.sin(a), height])
        z = (np.array([0, 0, 0.9]) - c)
        z /= np.linalg.norm(z)
        x = np.cross(z, [0, 0, 1.0])
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.vstack([x, y, z])
        K = np.array([[1680.0, 0, 540], [0, 1680.0, 960], [0, 0, 1]])
        cams.append(CameraCalibration(f"cam{i + 1:02d}", (1080, 1920), K, np.array(distortion), R, -R @ c))
    return cams


def _skeleton_track(n=30, seed=0):
    """(n, 33, 3) points in a 0.5 x 0.4 x 1.7 m volume moving smoothly."""
    rng = np.random.default_rng(seed)
    base = rng.uniform([-0.25, -0.2, 0.0], [0.25, 0.2, 1.7], (33, 3))
    t = np.arange(n)[:, None] / 60.0                       # (n, 1)
    dx = 0.8 * t + 0.05 * np.sin(7 * t + base[None, :, 2])
    dy = 0.1 * np.sin(3 * t + base[None, :, 0])
    dz = np.broadcast_to(0.02 * np.cos(5 * t), dx.shape)
    return base[None] + np.stack([dx, dy, dz], axis=-1)


def _observe(cams, P):
    return np.stack([c.project(P) for c in cams], axis=1)      # (F, V, L, 2)


def test_exact_with_distortion():
    cams = _ring()
    P = _skeleton_track()
    tri = triangulate(cams, _observe(cams, P))
    np.testing.assert_allclose(tri.points_m, P, atol=1e-6)
    assert np.nanmax(tri.reprojection_px) < 1e-4
    assert (tri.n_views == 4).all()


def test_weights_outliers_and_too_few_views():
    cams = _ring()
    P = _skeleton_track(5)
    uv = _observe(cams, P)
    rng = np.random.default_rng(1)
    uv = uv + rng.normal(0, 0.5, uv.shape)
    bad = uv.copy()
    bad[:, 2, :5] += 200.0                                  # camera 3 wrong on 5 landmarks
    w = np.ones(uv.shape[:3])
    tri = triangulate(cams, bad, w, outlier_px=30.0)
    err = np.linalg.norm(tri.points_m - P, axis=-1)
    assert err.max() < 0.01
    assert not tri.used[:, :5, 2].any() and tri.used[:, 5:, 2].all()
    # the same garbage with weight 0 is ignored without outlier rejection
    w0 = w.copy()
    w0[:, 2, :5] = 0.0
    tri0 = triangulate(cams, bad, w0, outlier_px=math.inf)
    assert np.linalg.norm(tri0.points_m - P, axis=-1).max() < 0.01
    # one view left: no point
    w1 = np.zeros_like(w)
    w1[:, 0] = 1.0
    assert np.isnan(triangulate(cams, uv, w1).points_m).all()
    with pytest.raises(ValueError, match="uv must have shape"):
        triangulate(cams, uv[:, :3], w[:, :3])
    with pytest.raises(ValueError, match="at least 2 views"):
        triangulate(cams[:1], uv[:, :1])


def test_bystander_view_is_inconsistent_and_label_swaps_are_undone():
    cams = _ring()
    P = _skeleton_track(10)
    uv = _observe(cams, P)
    w = np.ones(uv.shape[:3])
    other = uv.copy()
    other[:, 1] = cams[1].project(P + np.array([1.2, -0.8, 0.0]))    # camera 2 follows someone 1.4 m away
    cons, med = consistent_views(cams, other, w)
    assert cons[:, [0, 2, 3]].all() and not cons[:, 1].any()
    assert (med[:, 1] > 100).all() and (med[:, [0, 2, 3]] < 1).all()
    # camera 4 reports the subject with left and right exchanged in frames 3..6
    P2 = P.copy()
    swapped = uv.copy()
    swapped[3:7, 3] = uv[3:7, 3][:, _MIRROR_INDEX]
    cons2, _ = consistent_views(cams, swapped, w)
    fixed, w2, sw = fix_left_right(cams, swapped, w, cons2)
    assert sw[3:7, 3].all() and sw.sum() == 4
    np.testing.assert_allclose(fixed, uv, atol=1e-9)
    tri = triangulate(cams, fixed, w2)
    np.testing.assert_allclose(tri.points_m, P2, atol=1e-6)
    assert BLAZEPOSE_LANDMARKS[_MIRROR_INDEX[BLAZEPOSE_LANDMARKS.index("left_knee")]] == "right_knee"


def test_time_offsets_recovered():
    cams = _ring()
    P = _skeleton_track(60)
    uv = _observe(cams, P)
    w = np.ones(uv.shape[:3])
    shifted = uv.copy()
    shifted[:, 2] = np.roll(uv[:, 2], -3, axis=0)          # camera 3 runs 3 frames ahead
    shifted[-3:, 2] = np.nan
    w[-3:, 2] = 0.0
    assert estimate_time_offsets(cams, shifted, w, max_lag=4) == [0, 0, -3, 0]


def test_reprojection_errors_shape():
    cams = _ring(3)
    P = _skeleton_track(2)
    e = reprojection_errors(cams, P, _observe(cams, P).transpose(0, 2, 1, 3))
    assert e.shape == (2, 33, 3) and e.max() < 1e-6


@pytest.fixture(scope="module")
def mono_doc(tmp_path_factory, pose2sim_demo):
    """`exo monocular-check` on 14 frames of the real pose2sim demo (with cam02's left/right swap): its JSON."""
    from runtime.cli.main import main

    out = tmp_path_factory.mktemp("mono") / "mono.json"
    assert main(["monocular-check", "--frames", "46:60", "--json", str(out)]) == 0
    return json.loads(out.read_text())


# What the check gives today (measured 2026-12-07, frames 46..59, mean of both sides): joint angle RMSE (deg) hip
# flexion 9.14, hip adduction 6.29, hip rotation 24.44, knee 11.45, ankle 16.83, mean 13.63; root translation
# 3.30 cm; reference reprojection median 12.8 px; monocular floor normal 17.19 deg off the calibrated vertical;
# camera height 1.475 m estimated vs 1.8965 m calibrated. Each error may grow by at most 15 %.
MONO_ACHIEVED_DEG = {"hip_flexion_rmse_deg": 9.14, "hip_adduction_rmse_deg": 6.29, "hip_rotation_rmse_deg": 24.44,
                     "knee_angle_rmse_deg": 11.45, "ankle_angle_rmse_deg": 16.83}
MONO_MARGIN = 0.15


def test_regression_guard_monocular_check_on_the_pose2sim_demo(mono_doc):
    """The four-camera reference and the monocular figures of the table, each at most 15 % worse than today."""
    doc = mono_doc
    ref = doc["reference"]
    assert ref["frames"] == 14
    assert min(ref["consistent_fraction_per_camera"]) >= 0.9
    assert ref["reprojection_px_median"] <= 12.83 * (1 + MONO_MARGIN)     # 1080x1920 images, subject ~750 px tall
    got = doc["joint_angle_rmse_deg"]
    assert set(got) == set(MONO_ACHIEVED_DEG)
    for name, achieved in MONO_ACHIEVED_DEG.items():
        assert got[name] <= achieved * (1 + MONO_MARGIN), (name, got[name], achieved)
    assert doc["mean_joint_angle_rmse_deg"] <= 13.63 * (1 + MONO_MARGIN)
    assert doc["mean_joint_angle_rmse_deg"] == pytest.approx(np.mean(list(got.values())))
    assert doc["root_translation_rmse_cm"] <= 3.30 * (1 + MONO_MARGIN)
    g = doc["monocular_grounding_vs_calibration"]
    assert abs(g["reference_lowest_foot_z_m_p5"]) < 0.1          # the triangulated feet stand on the lab floor
    assert g["camera_height_calibrated_m"] == pytest.approx(1.8965, abs=1e-3)   # the demo's Calib.toml
    assert 0 <= g["floor_normal_error_deg"] <= 17.19 * (1 + MONO_MARGIN)
    height_err = abs(g["camera_height_estimated_m"] - g["camera_height_calibrated_m"])
    assert height_err <= abs(1.475 - 1.8965) * (1 + MONO_MARGIN)


# The model-based fit of the same cam01 frames (issue 17; re-measured 2026-12-07 08:53 UTC, frames 46..59, after
# f75f6ee/b1e6cdc: the trial's segment lengths estimated, BlazePose's world landmarks as the weak prior, 200
# iterations): hip flexion 9.79, hip adduction 5.80, hip rotation 20.12, knee 11.01, ankle 9.62, mean 11.27 deg
# (was 15.97); root translation 9.70 cm (was 5.88: on 14 frames the length corrections are weakly determined, shank
# +12 %). All 100 frames (not run here): grounding 12.76 deg / 8.35 cm, fit 11.16 deg / 7.11 cm (was 13.33 / 7.73).
# Each may grow <= 15 %.
FIT_ACHIEVED_DEG = {"hip_flexion_rmse_deg": 9.79, "hip_adduction_rmse_deg": 5.80, "hip_rotation_rmse_deg": 20.12,
                    "knee_angle_rmse_deg": 11.01, "ankle_angle_rmse_deg": 9.62}


def test_regression_guard_monocular_model_fit_on_the_pose2sim_demo(mono_doc):
    """The model fit's figures (``model_fit``), each at most 15 % worse than today."""
    fit = mono_doc["model_fit"]
    assert fit["frames"] == 14
    got = fit["joint_angle_rmse_deg"]
    assert set(got) == set(FIT_ACHIEVED_DEG)
    for name, achieved in FIT_ACHIEVED_DEG.items():
        assert got[name] <= achieved * (1 + MONO_MARGIN), (name, got[name], achieved)
    assert fit["mean_joint_angle_rmse_deg"] == pytest.approx(np.mean(list(got.values())))
    assert fit["mean_joint_angle_rmse_deg"] <= 11.27 * (1 + MONO_MARGIN)
    assert fit["root_translation_rmse_cm"] <= 9.70 * (1 + MONO_MARGIN)


def test_anchor_monocular_check_vs_opencap_monocular(mono_doc):
    """Anchor: OpenCap Monocular (Uhlrich lab preprint) reports 4.8 deg joint angle and 3.4 cm root translation
    error. Reported beside ours; our root translation meets it, our joint angles do not (13.6 deg, README)."""
    doc = mono_doc
    assert doc["anchors"]["OpenCap Monocular"] == {"joint_angle_deg": 4.8, "root_translation_cm": 3.4}
    print("joint angle RMSE", round(doc["mean_joint_angle_rmse_deg"], 2), "deg vs 4.8; root translation",
          round(doc["root_translation_rmse_cm"], 2), "cm vs 3.4")
    assert doc["root_translation_rmse_cm"] <= 3.4


def test_monocular_check_rejects_bad_frames(capsys):
    from runtime.cli.main import main

    assert main(["monocular-check", "--frames", "a:b"]) == 2
    assert "--frames" in capsys.readouterr().err

"""Camera calibration readers against the files' own numbers and OpenCV's projection."""
import math
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from runtime.vision.calibration import (CameraCalibration, guess_intrinsics, read_calibration, read_qca, read_toml,
                                        rodrigues_to_matrix)


def _footage(fn):
    from _support import footage_or_skip

    return footage_or_skip(fn)      # no registry access: nothing to check against, skipped with the reason


@pytest.fixture(scope="module")
def qca_path():
    return _footage("pose2sim_single_person")["calibration"]


def test_qca_units_and_camera_centres(qca_path):
    cams = read_qca(qca_path)
    assert [c.name for c in cams] == ["cam01", "cam02", "cam03", "cam04"]
    root = ET.parse(qca_path).getroot()
    for c, el in zip(cams, root.findall("cameras/camera")):
        tr, intr = el.find("transform"), el.find("intrinsic")
        centre_mm = np.array([float(tr.get(k)) for k in "xyz"])
        np.testing.assert_allclose(c.center_world_m, centre_mm / 1000.0, atol=1e-9)   # mm -> m
        assert c.K[0, 0] == pytest.approx(float(intr.get("focalLengthU")) / 64.0)        # 1/64 px -> px
        assert c.image_size == (1088, 1920)
        # cameras 1.7-2.1 m high around the capture volume, every one looking down at it
        assert 1.5 < c.center_world_m[2] < 2.2
        assert c.optical_axis_world[2] < -0.2


def test_qca_optical_axes_meet_in_the_capture_volume(qca_path):
    """The four optical axes pass within a few cm of one point, which each camera sees near its image centre."""
    cams = read_qca(qca_path)
    A, b = np.zeros((3, 3)), np.zeros(3)
    for c in cams:
        d = c.optical_axis_world
        M = np.eye(3) - np.outer(d, d)
        A += M
        b += M @ c.center_world_m
    p = np.linalg.solve(A, b)
    assert 0.2 < p[2] < 1.2 and np.linalg.norm(p[:2]) < 2.0
    for c in cams:
        d = c.optical_axis_world
        miss = np.linalg.norm(np.cross(p - c.center_world_m, d))
        assert miss < 0.6
        uv = c.project(p)
        assert np.linalg.norm(uv - c.K[:2, 2]) < 130.0


def test_projection_matches_opencv(qca_path):
    cams = read_qca(qca_path, distortion="normalized")
    rng = np.random.default_rng(0)
    pts = rng.uniform([-1.5, -1.0, 0.0], [0.5, 1.0, 1.8], (50, 3))
    for c in cams:
        rvec, _ = cv2.Rodrigues(c.rotation_cw)
        ref, _ = cv2.projectPoints(pts, rvec, c.translation_cw_m, c.K, c.distortion)
        np.testing.assert_allclose(c.project(pts), ref[:, 0], atol=1e-6)
        und_ref = cv2.undistortPoints(ref, c.K, c.distortion, P=c.K)[:, 0]
        np.testing.assert_allclose(c.undistort_pixels(ref[:, 0]), und_ref, atol=1e-3)
        np.testing.assert_allclose(c.undistort_pixels(ref[:, 0]), c.project(pts, distort=False), atol=1e-6)


def test_qca_distortion_readings(qca_path):
    a = read_qca(qca_path, distortion="normalized")[0]
    b = read_qca(qca_path, distortion="pose2sim")[0]
    n = read_qca(qca_path, distortion="none")[0]
    np.testing.assert_allclose(b.distortion, a.distortion / 64.0)
    assert not n.distortion.any()
    with pytest.raises(ValueError, match="distortion"):
        read_qca(qca_path, distortion="fisheye")


def test_sports2d_toml():
    path = _footage("sports2d_calibration")
    (cam,) = read_toml(path)
    assert cam.image_size == (1768, 994)
    assert cam.K[0, 2] == pytest.approx(884.0)
    R = cv2.Rodrigues(np.array([1.2082126924727719, 1.2098328575850605, -1.2082126924727719]))[0]
    np.testing.assert_allclose(cam.rotation_cw, R, atol=1e-12)
    np.testing.assert_allclose(cam.center_world_m, -R.T @ np.array([-3.510103521992233, 1.7079310029359385, 10.0]))
    pts = np.array([[0.0, 0.0, 0.0], [1.0, 0.5, 1.7], [-2.0, 1.0, 0.3]])
    ref, _ = cv2.projectPoints(pts, cv2.Rodrigues(R)[0], cam.translation_cw_m, cam.K, cam.distortion)
    np.testing.assert_allclose(cam.project(pts), ref[:, 0], atol=1e-6)
    assert read_calibration(path)[0].name == cam.name


def test_rodrigues_matches_opencv():
    rng = np.random.default_rng(2)
    for _ in range(20):
        r = rng.normal(0, 1.5, 3)
        np.testing.assert_allclose(rodrigues_to_matrix(r), cv2.Rodrigues(r)[0], atol=1e-12)


def test_guess_intrinsics():
    cam = guess_intrinsics(1768, 994, hfov_deg=70.0)
    assert cam.hfov_deg == pytest.approx(70.0)
    assert cam.K[0, 0] == pytest.approx(884.0 / math.tan(math.radians(35.0)))
    assert cam.K[0, 2] == pytest.approx(883.5) and cam.K[1, 2] == pytest.approx(496.5)
    assert "60" in guess_intrinsics(640, 480).assumption and "assumed" in cam.assumption
    # a point on the optical axis lands on the principal point; a point at the half-angle on the image edge
    assert cam.project(np.array([0.0, 0.0, 3.0])) == pytest.approx(cam.K[:2, 2])
    edge = cam.project(np.array([3.0 * math.tan(math.radians(35.0)), 0.0, 3.0]))
    assert edge[0] == pytest.approx(cam.K[0, 2] + 884.0)


def test_bad_input_named(tmp_path):
    with pytest.raises(ValueError, match="hfov_deg"):
        guess_intrinsics(640, 480, hfov_deg=0.0)
    with pytest.raises(ValueError, match="width_px"):
        guess_intrinsics(0, 480)
    p = tmp_path / "Calib.toml"
    p.write_text('[c1]\nname = "c1"\nsize = [640, 480]\nmatrix = [[500, 0, 320], [0, 500, 240], [0, 0, 1]]\n'
                 'distortions = [0, 0, 0, 0]\nrotation = [0, 0, 0]\ntranslation = [0, 0, 0]\nfisheye = true\n')
    with pytest.raises(ValueError, match="fisheye"):
        read_toml(p)
    q = tmp_path / "bad.qca.txt"
    q.write_text("<calibration><cameras/></calibration>")
    with pytest.raises(ValueError, match="no <cameras><camera>"):
        read_qca(q)
    with pytest.raises(ValueError, match="K must be"):
        CameraCalibration("x", (10, 10), np.zeros((3, 3)), np.zeros(5), np.eye(3), np.zeros(3))

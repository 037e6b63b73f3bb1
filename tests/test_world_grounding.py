"""World grounding of monocular landmarks, on a synthetic walker seen by a known tilted camera."""
import math

import numpy as np
import pytest

from runtime.vision.calibration import CameraCalibration, guess_intrinsics
from runtime.vision.pose_types import BLAZEPOSE_LANDMARKS as NAMES
from runtime.vision.world import (FOOT_LANDMARK_HEIGHT_M, LEG_LENGTH_FRACTION_OF_HEIGHT, PoseArrays, ground_monocular, jitter,
                                  metric_scale, smooth_causal)

FPS = 30.0


def _walker(duration_s=3.0, speed=1.2):
    """(N, 33, 3) landmarks of a point skeleton walking along +x on the floor z = 0 (world z up); in stance the
    heel landmark is FOOT_LANDMARK_HEIGHT_M above the floor, the toe tip 2 cm lower."""
    t = np.arange(int(duration_s * FPS)) / FPS
    stride = speed * 1.0                                     # period 1 s
    P = np.zeros((t.size, 33, 3))

    def foot(phase_shift):
        ph = (t + phase_shift) % 1.0
        cyc = np.floor(t + phase_shift)
        x = np.where(ph < 0.5, stride * cyc, stride * (cyc + 0.5 - 0.5 * np.cos(np.pi * (ph - 0.5) / 0.5)))
        z = np.where(ph < 0.5, 0.0, 0.08 * np.sin(np.pi * (ph - 0.5) / 0.5))
        return x - phase_shift * stride, z

    feet = {"left": foot(0.0), "right": foot(0.5)}
    mid_feet = 0.5 * (feet["left"][0] + feet["right"][0]) + 0.05        # the ankles are 5 cm ahead of the heels
    pelvis_x = speed * t + np.mean(mid_feet - speed * t)                # smooth, above the feet on average
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        fx, fz = feet[side]
        heel = np.stack([fx, np.full_like(fx, 0.1 * sgn), fz + FOOT_LANDMARK_HEIGHT_M], axis=1)
        P[:, NAMES.index(f"{side}_heel")] = heel
        P[:, NAMES.index(f"{side}_foot_index")] = heel + [0.22, 0, -0.02]
        ankle = heel + [0.05, 0, 0.08]
        P[:, NAMES.index(f"{side}_ankle")] = ankle
        hip = np.stack([pelvis_x, np.full_like(fx, 0.09 * sgn), np.full_like(fx, 0.92)], axis=1)
        P[:, NAMES.index(f"{side}_hip")] = hip
        P[:, NAMES.index(f"{side}_knee")] = 0.5 * (hip + ankle) + [0.06, 0, 0]
        for name, off in (("shoulder", [0, 0.19, 1.42]), ("elbow", [0, 0.22, 1.15]), ("wrist", [0.05, 0.22, 0.9]),
                          ("pinky", [0.07, 0.22, 0.85]), ("index", [0.08, 0.21, 0.85]), ("thumb", [0.08, 0.2, 0.87]),
                          ("eye_inner", [0.08, 0.02, 1.64]), ("eye", [0.08, 0.035, 1.64]),
                          ("eye_outer", [0.08, 0.05, 1.64]), ("ear", [0.0, 0.08, 1.62])):
            P[:, NAMES.index(f"{side}_{name}")] = np.stack(
                [pelvis_x + off[0], np.full_like(fx, off[1] * sgn), np.full_like(fx, off[2])], axis=1)
        P[:, NAMES.index(f"mouth_{side}")] = np.stack([pelvis_x + 0.09, np.full_like(fx, 0.02 * sgn),
                                                       np.full_like(fx, 1.56)], axis=1)
    P[:, NAMES.index("nose")] = np.stack([pelvis_x + 0.11, np.zeros_like(t), np.full_like(t, 1.6)], axis=1)
    return t, P


def _camera(height=1.2, roll_deg=3.0):
    """A camera 4 m to the walker's right, looking at the walkway, pitched down, rolled a little."""
    c = np.array([2.0, -4.0, height])
    target = np.array([2.0, 0.0, 0.8])
    z = (target - c) / np.linalg.norm(target - c)
    x = np.cross(z, [0, 0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.vstack([x, y, z])                                  # world -> camera (OpenCV axes)
    r = math.radians(roll_deg)
    Rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    R = Rz @ R
    K = np.array([[1400.0, 0, 640], [0, 1400.0, 360], [0, 0, 1]])
    return CameraCalibration("synthetic", (1280, 720), K, np.zeros(5), R, -R @ c)


def _observe(P, cam, scale_error=1.1, noise_m=0.004, noise_px=1.0, seed=0):
    rng = np.random.default_rng(seed)
    hips = P[:, [NAMES.index("left_hip"), NAMES.index("right_hip")]].mean(axis=1)
    W = (P - hips[:, None, :]) @ cam.rotation_cw.T / scale_error + rng.normal(0, noise_m, P.shape)
    uv = cam.project(P) + rng.normal(0, noise_px, P.shape[:2] + (2,))
    return W, uv


def test_grounding_recovers_scale_floor_and_trajectory():
    t, P = _walker()
    cam = _camera()
    W, uv = _observe(P, cam)
    legs = [np.linalg.norm(P[:, NAMES.index(f"{s}_knee")] - P[:, NAMES.index(f"{s}_hip")], axis=1)
            + np.linalg.norm(P[:, NAMES.index(f"{s}_ankle")] - P[:, NAMES.index(f"{s}_knee")], axis=1)
            for s in ("left", "right")]
    height = float(np.median(np.concatenate(legs))) / LEG_LENGTH_FRACTION_OF_HEIGHT
    g = ground_monocular(PoseArrays(t, uv, np.ones((t.size, 33)), W), cam, height, heading="walking")
    assert g.scale == pytest.approx(1.1, rel=0.02)
    true_up = cam.rotation_cw @ np.array([0, 0, 1.0])
    assert math.degrees(math.acos(np.clip(g.floor_normal_camera @ true_up, -1, 1))) < 2.0
    assert g.camera_height_m == pytest.approx(1.2, abs=0.04)
    R = g.rotation_world_from_camera
    assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-9)
    # heights above the floor and the walking path (project frame: y = walking direction, z up)
    np.testing.assert_allclose(g.smoothed_m[..., 2], P[..., 2], atol=0.05)
    hips_true = P[:, [NAMES.index("left_hip"), NAMES.index("right_hip")]].mean(axis=1)
    d_true = hips_true - hips_true[0]
    d_est = g.smoothed_m[:, [NAMES.index("left_hip"), NAMES.index("right_hip")]].mean(axis=1)
    d_est = d_est - d_est[0]
    np.testing.assert_allclose(d_est[:, 1], d_true[:, 0], atol=0.06)        # along the walk, cm-level
    assert np.abs(d_est[:, 0]).max() < 0.06                                 # no sideways drift
    # jitter falls with smoothing, the causal lag is the filter's
    assert g.jitter["offline"] < 0.1 * g.jitter["raw"]
    assert g.jitter["causal"] < 0.5 * g.jitter["raw"]
    assert g.causal_lag_s == pytest.approx(smooth_causal(np.zeros((4, 1)), FPS)[1])
    assert 0.02 < g.causal_lag_s < 0.06


def test_jitter_metric_closed_form():
    """A parabola has constant acceleration (zero variance); white noise sigma gives 6 sigma^2 fs^4."""
    t = np.arange(2000) / FPS
    assert jitter((0.5 * 3.0 * t ** 2)[:, None], FPS) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(1)
    sigma = 0.01
    x = rng.normal(0, sigma, (20000, 3))
    assert jitter(x, FPS) == pytest.approx(6 * sigma ** 2 * FPS ** 4, rel=0.05)


def test_bad_inputs_named():
    t, P = _walker(1.0)
    with pytest.raises(ValueError, match="height_m"):
        metric_scale(P, 0.0)
    cam = guess_intrinsics(1280, 720)
    W, uv = _observe(P, _camera())
    with pytest.raises(ValueError, match="heading"):
        ground_monocular(PoseArrays(t, uv, np.ones((t.size, 33)), W), cam, 1.7, heading="north")

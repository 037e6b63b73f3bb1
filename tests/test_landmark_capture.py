"""Landmarks into the 60 Hz loop: released on the camera's timeline, held between frames, stale -> zero torque."""
import numpy as np

import pytest

from runtime.pipeline.stages import ControllerAssistanceStage, PipelineFrame
from runtime.vision.front_end import LandmarkTrack
from runtime.vision.pose_types import BLAZEPOSE_LANDMARKS
from runtime.vision.process import LandmarkReplayCapture

NAMES = ("left_hip", "right_hip", "left_knee", "right_knee")


def _track(n=10, fps=30.0, valid=None):
    t = np.arange(n) / fps
    world = np.zeros((n, 33, 3))
    for k in range(n):
        world[k, :, 0] = k                     # frame number in x: tells which frame was delivered
    vis = np.ones((n, 33))
    if n > 3:
        vis[3, BLAZEPOSE_LANDMARKS.index("right_knee")] = 0.2      # not visible enough in frame 3
    return LandmarkTrack("synthetic", t, world, vis, np.ones(n, bool) if valid is None else valid, {}, {})


class Clock:
    def __init__(self):
        self.t = 1_000_000_000

    def __call__(self):
        return self.t


def test_frames_arrive_on_the_camera_timeline_and_are_held_between():
    clock = Clock()
    cap = LandmarkReplayCapture(_track(), NAMES, clock, loop_rate_hz=60.0)
    f = PipelineFrame(assistance_nm=[0.0])
    delivered = []
    for cycle in range(20):                       # 60 Hz loop, 30 fps camera
        cap.step(f)
        delivered.append(None if f.markers_m is None else int(f.markers_m[0, 0]))
        clock.t += 16_666_667
    # first cycle: nothing yet (the camera's first frame lands half a cycle later), then every frame held twice
    assert delivered[0] is None
    assert delivered[1:7] == [0, 0, 1, 1, 2, 2]
    assert cap.frames == 10 and cap.holds == 10
    # capture time of frame k = start + half a loop period + k / fps
    assert f.capture_ns == 1_000_000_000 + 8_333_333 + int(9 / 30.0 * 1e9)


def test_low_visibility_landmarks_are_missing_not_guessed():
    clock = Clock()
    cap = LandmarkReplayCapture(_track(), NAMES, clock, loop_rate_hz=60.0)
    f = PipelineFrame(assistance_nm=[0.0])
    for _ in range(8):
        cap.step(f)
        clock.t += 16_666_667
        if f.markers_m is not None and int(np.nanmax(f.markers_m[:, 0])) == 3:
            assert np.isnan(f.markers_m[NAMES.index("right_knee")]).all()
            assert np.isfinite(f.markers_m[NAMES.index("left_knee")]).all()
            return
    raise AssertionError("frame 3 never delivered")


def test_stale_input_ramps_the_assistance_to_zero():
    """Proportional assistance on a constant estimated moment; the input goes stale -> the controller's limiter
    ramps to exactly zero (slew-limited), and it stays there."""
    from controllers.assistance import AssistanceParameters, AssistanceStage, make_strategy
    from controllers.gait_phase import GaitPhaseEstimator

    clock = Clock()
    cap = LandmarkReplayCapture(_track(n=40), NAMES, clock, loop_rate_hz=60.0, stale_after_s=0.2)
    params = AssistanceParameters(strategy="proportional", level=1.0, moment_fraction=0.2, ramp_in_s=0.0,
                                  torque_limit_nm=18.0, slew_limit_nm_per_s=300.0)
    stage = ControllerAssistanceStage(AssistanceStage(make_strategy(params), GaitPhaseEstimator()), ["knee_r"], None,
                                      "right", clock)
    f = PipelineFrame(assistance_nm=[0.0])

    class Est:
        valid = True
        knee_moment_nm = 50.0                  # extension positive: -50 N m in the controller's flexion-positive sign
        coordinate_names = ("knee_angle_r",)
        coordinates_rad = np.array([0.3])
        grf_n = np.zeros((2, 3))

    f.estimate = Est()
    torques, stale = [], []
    for k in range(120):
        if k == 30:
            cap.track = _track(n=3)            # the camera stops after frame 2 of a new take: input goes stale
            cap._k, cap._t0 = 0, None
        cap.step(f)
        stage.step(f)
        torques.append(f.assistance_nm[0])
        stale.append(f.stale)
        clock.t += 16_666_667
    assert torques[25] == pytest.approx(-10.0)            # 0.2 x the moment, extension assist (negative)
    assert all(abs(t) <= 18.0 for t in torques)
    assert all(abs(b - a) <= 300.0 * 16_666_667e-9 + 1e-9 for a, b in zip(torques, torques[1:]))   # slew limit
    first_stale = stale.index(True, 31)
    assert torques[-1] == 0.0 and all(t == 0.0 for t in torques[first_stale + 3:])

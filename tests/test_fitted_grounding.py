"""The live path's fixed-lag model fit (``runtime.vision.front_end.FittedGrounding``): its answers come
``lag_frames`` frames late (67 ms in whole frames), stamped with the frame they describe, carry the fit's reprojection error and fraction
used, and place the model's landmark sites where the generating walk had them; the landmark track keeps it all."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.vision.front_end import FittedGrounding, LandmarkTrack
from runtime.vision.pose_types import BoundingBox, PoseResult


@pytest.fixture(scope="module")
def fitted() -> dict:
    from models.kinematics.monocular_synthetic import side_camera, synthetic_walk
    from runtime.vision.calibration import CameraCalibration

    cam = side_camera()
    g = FittedGrounding(CameraCalibration("side", (1920, 1080), cam.K, np.zeros(5), cam.R_cw, cam.t_cw), 1.8,
                        camera_in_floor_frame=True, fps=60.0)
    w = synthetic_walk(g.lm, cam, duration_s=0.5, fps=60.0)
    outs = []
    for k in range(w.time_s.size):
        pose = PoseResult(np.nan_to_num(w.xy_px[k], nan=0.0), np.zeros(33), w.score[k], w.score[k], np.zeros((33, 3)),
                          0.9, BoundingBox(0, 0, 10, 10))
        outs.append(g.step_frame(pose, float(w.time_s[k]), 1_000_000 + k))
    return {"g": g, "walk": w, "outs": outs}


def test_answers_lag_frames_late_stamped_with_the_frame_they_describe(fitted: dict) -> None:
    g, w, outs = fitted["g"], fitted["walk"], fitted["outs"]
    lag = g.lag_frames
    assert lag == g.params.lag_frames_at(60.0) == 4     # 67 ms at 60 fps
    assert all(o is None for o in outs[:lag])
    got = [(k, o) for k, o in enumerate(outs) if o is not None]
    assert len(got) == w.time_s.size - lag
    for k, o in got:
        assert o.t_s == w.time_s[k - lag] and o.capture_ns == 1_000_000 + k - lag


def test_sites_quality_and_visibility(fitted: dict) -> None:
    g, w, outs = fitted["g"], fitted["walk"], fitted["outs"]
    from models.body.blazepose import BLAZEPOSE_33

    sel = [BLAZEPOSE_33.index(n) for n in g.lm.landmark_names]
    errs, reps = [], []
    for k, o in enumerate(outs):
        if o is None:
            continue
        d = k - g.lag_frames
        errs.append(np.linalg.norm(o.world_m[sel] - w.sites_m[d], axis=1))
        reps.append(o.reprojection_px)
        assert np.all(np.isnan(np.delete(o.world_m, sel, axis=0)))     # not on the model: NaN, visibility 0
        assert np.all(np.delete(o.visibility, sel) == 0) and np.all(o.visibility[sel] == 0.9)
        assert 0 < o.landmarks_used_frac <= 1
    errs = np.array(errs)
    # 2 px noise at 7 m (f 1400 px: 1 px = 5 mm in the image plane); depth from anatomy and the floor
    assert float(np.median(errs)) < 0.05, f"median site error {np.median(errs):.3f} m"
    assert 1.0 < float(np.median(reps)) < 6.0


def test_landmark_track_keeps_the_described_time_and_quality(tmp_path: Path) -> None:
    n = 5
    t = np.arange(n) / 30.0
    tr = LandmarkTrack("x", t, np.zeros((n, 33, 3)), np.ones((n, 33)), np.ones(n, bool), {}, {},
                       described_t_s=t - 7 / 30.0, reprojection_px=np.linspace(2, 3, n),
                       landmarks_used_frac=np.full(n, 0.75))
    tr.save(str(tmp_path / "t.npz"))
    back = LandmarkTrack.load(str(tmp_path / "t.npz"))
    np.testing.assert_array_equal(back.described_t_s, tr.described_t_s)
    np.testing.assert_array_equal(back.reprojection_px, tr.reprojection_px)
    np.testing.assert_array_equal(back.landmarks_used_frac, tr.landmarks_used_frac)
    plain = LandmarkTrack("x", t, np.zeros((n, 33, 3)), np.ones((n, 33)), np.ones(n, bool), {}, {})
    np.testing.assert_array_equal(plain.described_t_s, t)
    assert np.all(np.isnan(plain.reprojection_px))
    with pytest.raises(ValueError, match="described_t_s"):
        LandmarkTrack("x", t, np.zeros((n, 33, 3)), np.ones((n, 33)), np.ones(n, bool), {}, {}, described_t_s=t[:2])


def test_replay_stamps_the_described_frame_and_passes_the_reprojection_error() -> None:
    """A lagged track: row k (released when frame k arrives) describes frame k - 7; the capture stage stamps that
    frame's capture time and source time (so the command age includes the lag) and hands its reprojection error
    to the estimation stage."""
    from runtime.pipeline.stages import PipelineFrame
    from runtime.vision.process import LandmarkReplayCapture

    n, fps, lag = 12, 30.0, 7
    t = np.arange(n) / fps
    world = np.zeros((n, 33, 3))
    track = LandmarkTrack("lagged", t, world, np.ones((n, 33)), np.ones(n, bool), {}, {},
                          described_t_s=t - lag / fps, reprojection_px=2.0 + np.arange(n),
                          landmarks_used_frac=np.ones(n))
    now = [1_000_000_000]
    cap = LandmarkReplayCapture(track, ("left_hip", "right_hip"), lambda: now[0], loop_rate_hz=60.0)
    f = PipelineFrame(assistance_nm=[0.0])
    seen = []
    for _ in range(30):
        cap.step(f)
        if f.vision_s is not None and f.markers_m is not None and f.t_s not in [s[0] for s in seen]:
            seen.append((f.t_s, f.capture_ns, f.reprojection_px))
        now[0] += 16_666_667
    t0 = 1_000_000_000 + 8_333_333            # the first frame lands half a loop period after the first cycle
    for k, (ts, cns, rep) in enumerate(seen):
        assert ts == t[k] - lag / fps
        assert cns == t0 + int((t[k] - lag / fps) * 1e9)
        assert rep == 2.0 + k
    assert len(seen) >= 10


def test_the_lag_in_ms_follows_the_window_in_time_and_is_refused_at_the_staleness_limit() -> None:
    """The window is MonocularFitParams.lag_s (67 ms) in whole camera frames: the same lag at 30 and 60 fps.  A
    command is held for one camera frame after waiting for an estimation cycle, so its age peaks at lag + 1 / fps
    + 1 / loop rate: 117 ms at 30 fps and 100 ms at 60 fps with the 60 Hz loop, which reach the torque loop's
    0.1 s staleness limit and are refused, naming the setting and the figures (measured: exo demo on the 30 fps
    clip with the fit on faulted STALE at 101.8 ms)."""
    from models.kinematics.monocular_params import MonocularFitParams
    from runtime.vision.front_end import check_fit_lag

    assert check_fit_lag(30.0, 0.15) == pytest.approx(2 / 30)
    assert check_fit_lag(60.0, 0.15) == pytest.approx(4 / 60)
    assert check_fit_lag(30.0, 0.15) == pytest.approx(check_fit_lag(60.0, 0.15))
    with pytest.raises(ValueError, match=r"estimation.monocular_fit: the fixed-lag fit answers 2 frames late "
                                         r"\(MonocularFitParams.lag_s = 67 ms, at least 2 frames\), 67 ms at 30 fps; "
                                         r"held for one camera frame \(33 ms\) .* 60 Hz \(17 ms\), a command gets "
                                         r"117 ms old, not below torque_loop.stale_after_s = 0.1 s"):
        check_fit_lag(30.0, 0.1)
    with pytest.raises(ValueError, match=r"4 frames late .* 67 ms at 60 fps; .* 100 ms old"):    # reaching it
        check_fit_lag(60.0, 0.1)
    assert check_fit_lag(60.0, 0.1, loop_rate_hz=120.0) == pytest.approx(4 / 60)              # 92 ms
    assert check_fit_lag(120.0, 0.1) == pytest.approx(8 / 120)                                 # 92 ms
    assert check_fit_lag(60.0, 0.1, MonocularFitParams(lag_s=0.05)) == pytest.approx(3 / 60)   # 83 ms
    with pytest.raises(ValueError, match=r"7 frames late \(MonocularFitParams.lag_s = 117 ms.*117 ms at 60 fps"):
        check_fit_lag(60.0, 0.15, MonocularFitParams(lag_s=0.117))                             # 117+17+17 ms
    for bad in (0.0, float("nan"), -1.0):
        with pytest.raises(ValueError, match="camera frame rate"):
            check_fit_lag(bad, 0.1)
        with pytest.raises(ValueError, match="estimation.rate_hz"):
            check_fit_lag(60.0, 0.1, loop_rate_hz=bad)


def test_the_front_end_needs_the_camera_rate() -> None:
    from runtime.vision.front_end import _fit_fps

    assert _fit_fps("clip.mp4", 30.0) == 30.0
    for bad in (None, 0.0, float("nan")):
        with pytest.raises(ValueError, match=r"source 'clip.mp4': frame rate .* unknown"):
            _fit_fps("clip.mp4", bad)

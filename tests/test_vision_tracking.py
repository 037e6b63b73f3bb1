"""The prompted person is tracked on the real sports2d demo, through the crossing, never switching.

The demo (1768×994, 30 fps, 230 frames): a man stands on a utility box (hips at y ≈ 250–310 px)
and jumps off around frame 170, landing at x ≈ 950–1300; a woman walks right to left on the
ground (hips at y ≈ 700–770 px), visible from frame ≈ 38 (behind the tree at the right edge
before) until ≈ 197 (she leaves at the left edge). She passes under the man at frames ≈ 125–150.
The prompt is a box on the woman at frame 40 (found by inspecting the detector's output and the
frames). Every 4th frame is processed to keep the runtime reasonable (≈ 48 frames).

Both backends: ONNX (the default when built; the detector only when the track needs it) and mediapipe
(the detector on every frame).
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mediapipe")

from runtime.vision.pose_types import BoundingBox  # noqa: E402

START, STEP = 40, 4
WOMAN_AT_START = BoundingBox(1400, 500, 1700, 990)
LAST_VISIBLE = 196  # she is fully in view up to here (frame 198: half out; 203: gone)


@pytest.fixture(scope="module", params=["onnx", "mediapipe"])
def tracked(request, sports2d_video):
    from runtime.vision.frame_sources import VideoFileSource
    from runtime.vision.tracking import PromptedTracker, tracker_backend

    pose, detector, settings = tracker_backend(request.param)
    tracker = PromptedTracker(pose, detector, settings)
    with VideoFileSource(sports2d_video, start=START, step=STEP) as src:
        for f in src:
            if f.index == START:
                tracker.start(f.image, f.index, f.t_capture_ns, WOMAN_AT_START)
            else:
                tracker.update(f.image, f.index, f.t_capture_ns)
    return request.param, tracker


@pytest.fixture(scope="module")
def history(tracked):
    return tracked[1].history


def test_detector_runs_only_when_needed(tracked):
    backend, tracker = tracked
    ran = [tf.detector_ran for tf in tracker.history]
    assert tracker.detector_runs == sum(ran)
    if backend == "mediapipe":
        assert all(ran)
        return
    tracked_frames = [tf for tf in tracker.history if tf.status == "tracked"]
    skipped = [tf for tf in tracked_frames if not tf.detector_ran]
    # the track holds through the walk: the detector runs on a small minority of the tracked frames
    assert len(skipped) >= 0.75 * len(tracked_frames), [(tf.index, tf.detector_ran) for tf in tracked_frames]
    assert all(tf.pose.extras["roi_source"] == "tracking" and tf.candidates == 1 for tf in skipped)
    # lost frames always look with the detector
    assert all(tf.detector_ran for tf in tracker.history if tf.status == "lost")
    s = tracker.summary()
    assert s["detector_runs"] == tracker.detector_runs and s["frames_without_detector"] == len(skipped)
    assert tracker.pose.detector_runs >= tracker.detector_runs   # model runs: tiles and prompted searches too


def test_auto_backend_is_onnx_when_built_else_mediapipe(tmp_path, capsys):
    from runtime.vision.tracking import tracker_backend

    pose, _, settings = tracker_backend("auto")
    assert pose.name == "onnx-cpu" and settings.detector == "when_needed"
    pose, _, settings = tracker_backend("auto", model_dir=tmp_path)   # nothing built there
    assert pose.name == "mediapipe" and settings.detector == "every_frame"
    err = capsys.readouterr().err
    assert "ONNX pose backend unavailable" in err and "falling back to the mediapipe backend" in err
    with pytest.raises(FileNotFoundError, match="pose_build"):
        tracker_backend("onnx", model_dir=tmp_path)
    with pytest.raises(ValueError, match="backend"):
        tracker_backend("tflite")


def _hips(tf) -> np.ndarray:
    return 0.5 * (tf.pose.image_xy[23] + tf.pose.image_xy[24])


def test_woman_tracked_on_every_frame_she_is_visible(history):
    visible = [tf for tf in history if tf.index <= LAST_VISIBLE]
    assert [tf.index for tf in visible] == list(range(START, LAST_VISIBLE + 1, STEP))
    lost = [tf.index for tf in visible if tf.status != "tracked"]
    assert lost == [], f"lost while visible: {lost}"
    hips = np.array([_hips(tf) for tf in visible])
    idx = np.array([tf.index for tf in visible], float)
    # on the ground the whole time: never the man on the box
    assert hips[:, 1].min() > 600, hips[:, 1].min()
    # right to left: monotone within a stride's sway, and close to a straight line in time
    assert np.all(np.diff(hips[:, 0]) < 25.0), np.diff(hips[:, 0])
    slope, icpt = np.polyfit(idx, hips[:, 0], 1)
    assert -11.0 < slope < -7.0, slope  # px per frame: from x ≈ 1510 at frame 40 to ≈ 100 at 196
    assert np.abs(hips[:, 0] - (slope * idx + icpt)).max() < 90.0
    assert hips[0, 0] > 1400 and hips[-1, 0] < 200


def test_no_switch_to_the_man_after_she_leaves(history):
    after = [tf for tf in history if tf.index > LAST_VISIBLE]
    assert len(after) >= 7
    for tf in after:
        # she is gone: lost, or (while half out of the frame at 198-200) still at the left edge
        if tf.status == "tracked":
            assert tf.index <= 202 and _hips(tf)[0] < 150, (tf.index, _hips(tf))
        else:
            assert tf.pose is None and tf.bbox is None
    assert all(tf.status == "lost" for tf in after if tf.index >= 204)
    # the man is in view and found by the detector on those frames: a tracker that switched would take him
    assert sum(1 for tf in after for b in tf.others if b.center[0] > 800) >= 3


def test_bad_prompt_is_refused(sports2d_video):
    from runtime.vision.frame_sources import VideoFileSource
    from runtime.vision.tracking import track_video

    with VideoFileSource(sports2d_video, start=0, stop=1) as src:
        with pytest.raises(ValueError, match=r"bbox: no person found inside the prompt"):
            track_video(src, BoundingBox(1000, 700, 1100, 800), start_index=0)  # grass, nobody there


def test_mediapipe_own_tracker_switches_people(sports2d_video):
    """The reference failure our tracker avoids: MediaPipe's video-mode graph (its own ROI tracking)
    over the same frames holds the man on the box, then the woman, then the man again."""
    from runtime.vision.frame_sources import VideoFileSource
    from runtime.vision.pose_mediapipe import MediaPipePose

    hips = []
    with MediaPipePose() as pose, VideoFileSource(sports2d_video, start=START, step=STEP) as src:
        for f in src:
            r = pose.infer(f.image, f.t_capture_ns)
            if r is not None:
                hips.append((f.index, *(0.5 * (r.image_xy[23] + r.image_xy[24]))))
    on_box = [i for i, x, y in hips if y < 450]                   # the man standing on the box
    woman_left = [i for i, x, y in hips if y > 600 and x < 500 and i <= LAST_VISIBLE]  # the woman near the left
    man_landed = [i for i, x, y in hips if i > LAST_VISIBLE and x > 900]               # the man after his jump
    assert on_box and woman_left and man_landed, hips
    assert min(on_box) < min(woman_left) < min(man_landed)


def test_occlusion_reported_lost_then_reacquired(sports2d_video):
    """The woman hidden behind a grey panel for frames 96-108: those frames are reported lost (no pose
    invented), and she is picked up again afterwards, on the ground and further left — not the man."""

    from runtime.vision.frame_sources import VideoFileSource
    from runtime.vision.prompts import parse_interactions
    from runtime.vision.tracking import track_video

    hidden = range(96, 109)

    with VideoFileSource(sports2d_video, start=80, stop=141, step=4) as src:
        hist = track_video(_occluded(src, hidden), BoundingBox(1080, 500, 1400, 990), start_index=80,
                           interaction=parse_interactions("occlusion"))
    status = {tf.index: tf.status for tf in hist}
    assert all(status[i] == "lost" for i in hidden if i in status), status
    after = [tf for tf in hist if tf.index > hidden[-1]]
    assert all(tf.status == "tracked" for tf in after), status
    before_x = _hips(next(tf for tf in hist if tf.index == 92))[0]
    for tf in after:
        x, y = _hips(tf)
        assert y > 600 and x < before_x, (tf.index, x, y)


def test_appearance_from_the_region_equals_the_whole_frame(history, sports2d_video):
    """The fast path converts only the region the histograms cover to HSV: the same histograms."""
    import cv2

    from runtime.vision.frame_sources import VideoFileSource
    from runtime.vision.tracking import appearance, appearance_rgb

    poses = {tf.index: tf.pose for tf in history if tf.pose is not None}
    checked = 0
    with VideoFileSource(sports2d_video, start=START, stop=START + 41, step=STEP) as src:
        for f in src:
            p = poses.get(f.index)
            if p is None:
                continue
            a = appearance(cv2.cvtColor(f.image, cv2.COLOR_RGB2HSV), p)
            b = appearance_rgb(f.image, p)
            assert set(a) == set(b) and a, (f.index, set(a), set(b))
            for k in a:
                np.testing.assert_array_equal(a[k], b[k])
            checked += 1
    assert checked >= 8


def test_bounded_search_spends_at_most_two_model_runs_per_frame(sports2d_video):
    """Live bound (``search_views_per_frame``, ``exo demo --live-vision``) on every frame of the clip from the
    prompt on: no frame runs more than two models (detector views + landmark crops; the whole tiled search took
    60-125 ms here), she is tracked on the same frames as by the unbounded search while in view, nobody else is
    taken after she leaves, and the search visits every detector view (the man on the right is seen)."""
    from runtime.vision.frame_sources import VideoFileSource

    tracker, detector, runs = _bounded_tracker()
    with VideoFileSource(sports2d_video, start=START) as src:
        per_frame = _run_counted(tracker, runs, src, START, WOMAN_AT_START)
    assert max(n for _, n in per_frame) <= 2, [x for x in per_frame if x[1] > 2]
    hist = tracker.history
    visible = [tf for tf in hist if tf.index <= LAST_VISIBLE]
    assert [tf.index for tf in visible if tf.status != "tracked"] == []
    after = [tf for tf in hist if tf.index > LAST_VISIBLE]
    for tf in after:
        if tf.status == "tracked":
            assert tf.index <= 202 and _hips(tf)[0] < 150, (tf.index, _hips(tf))
    assert all(tf.status == "lost" for tf in after if tf.index >= 204)
    assert sum(1 for tf in after for b in tf.others if b.center[0] > 800) >= 3
    n_views = len(detector.views(src.width, src.height))
    assert n_views >= 2 and tracker._view_cursor in range(n_views)


def test_bounded_search_setting_is_checked():
    from runtime.vision.tracking import TrackerSettings

    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="search_views_per_frame"):
            TrackerSettings(search_views_per_frame=bad)


def _occluded(frames, hidden):
    """``frames`` with the woman hidden behind a grey panel on the frames whose index is in ``hidden``."""
    from dataclasses import replace

    for f in frames:
        if f.index in hidden:
            img = f.image.copy()
            img[430:, 780:1300] = 128
            f = replace(f, image=img)
        yield f


def _bounded_tracker():
    """A live-bounded ONNX tracker whose model runs (detector and landmark sessions) are counted in ``runs``."""
    from dataclasses import replace

    from runtime.vision.tracking import PromptedTracker, tracker_backend

    pose, detector, settings = tracker_backend("onnx")
    if settings.detector != "when_needed":
        pytest.skip("ONNX pose models not built (make pose-models)")
    runs = {"n": 0}
    for name in ("detector_runner", "landmark_runner"):
        inner = getattr(pose, name)

        def counted(*a, _inner=inner, **k):
            runs["n"] += 1
            return _inner(*a, **k)
        setattr(pose, name, counted)
    return PromptedTracker(pose, detector, replace(settings, roi_search=True, search_views_per_frame=1)), detector, runs


def _run_counted(tracker, runs, frames, start_index, prompt):
    """(index, model runs) per frame of ``frames`` through ``tracker``, started at ``start_index`` on ``prompt``."""
    per_frame = []
    for f in frames:
        before = runs["n"]
        if f.index == start_index:
            tracker.start(f.image, f.index, f.t_capture_ns, prompt)
        else:
            tracker.update(f.image, f.index, f.t_capture_ns)
        per_frame.append((f.index, runs["n"] - before))
    return per_frame


def test_bounded_search_reacquires_after_an_occlusion_longer_than_the_extrapolation(sports2d_video):
    """Hidden for 13 frames (more than ``max_extrapolate`` = 10): the bounded search goes from the crop search to
    the detector views one per frame, poses the detection near the prediction from its own ROI, and picks her
    up again within a cycle of the views; no frame spends more than two model runs."""

    from runtime.vision.frame_sources import VideoFileSource

    hidden = range(96, 109)

    tracker, detector, runs = _bounded_tracker()
    with VideoFileSource(sports2d_video, start=80, stop=141) as src:
        per_frame = _run_counted(tracker, runs, _occluded(src, hidden), 80, BoundingBox(1080, 500, 1400, 990))
        n_views = len(detector.views(src.width, src.height))
    assert max(n for _, n in per_frame) <= 2, [x for x in per_frame if x[1] > 2]
    hist = {tf.index: tf for tf in tracker.history}
    assert all(hist[i].status == "lost" for i in hidden)
    back = [i for i in range(hidden[-1] + 1, 141) if hist[i].status == "tracked"]
    assert back and back[0] <= hidden[-1] + n_views + 1, back[:3]
    assert all(hist[i].status == "tracked" for i in range(back[0], 141))
    before_x = _hips(hist[92])[0]
    for i in back:
        x, y = _hips(hist[i])
        assert y > 600 and x < before_x, (i, x, y)

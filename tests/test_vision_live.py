"""The live vision path: drop reasons and capture slots of the frame grabber, the bounded live anonymiser, the
per-frame summary, the bounded tracker settings, and the vision process on a short section of the demo clip."""
from __future__ import annotations

import time

import numpy as np
import pytest

from runtime.vision import frame_sources as fs
from runtime.vision.pose_types import BoundingBox
from tests._support import synthetic_pose  # noqa: E402


def test_every_drop_has_a_reason_and_capture_times_are_schedule_slots():
    """A 120 Hz source, a consumer at ~40 Hz alternating two named stages: the drops per reason add up to the
    drops, each reason is one the consumer named, and each delivered frame's capture slot lies on the paced
    schedule (a whole number of periods after the first frame's)."""
    src = fs.SyntheticSource(rate_hz=120.0, n=120)
    state = {"now": "pose"}
    dues, seen = [], []
    with fs.LatestFrameGrabber(src, pace=True, busy_reason=lambda: state["now"]) as grab:
        while True:
            f = grab.get(timeout_s=2.0)
            if f is None:
                break
            seen.append(f.index)
            dues.append(grab.last_due_ns)
            state["now"] = "pose"
            time.sleep(0.015)
            state["now"] = "anonymise"
            time.sleep(0.010)
    st = grab.stats
    assert st.dropped > 20 and sum(st.dropped_by_reason.values()) == st.dropped, st
    assert set(st.dropped_by_reason) <= {"pose", "anonymise", "pending at close"}, st.dropped_by_reason
    period = 1e9 / 120.0
    k = (np.asarray(dues) - dues[0]) / period
    assert np.allclose(k, np.asarray(seen) - seen[0], atol=1e-3), (k[:5], seen[:5])
    with fs.LatestFrameGrabber(fs.SyntheticSource(rate_hz=120.0, n=5), pace=True) as g2:
        while g2.get(timeout_s=2.0) is not None:
            pass
    assert sum(g2.stats.dropped_by_reason.values()) == g2.stats.dropped
    assert set(g2.stats.dropped_by_reason) <= {"busy", "pending at close"}


class _OneFace:
    """Face-pass double with the interface :class:`LiveAnonymiser` uses: one fixed 'face' box per pass."""

    def __init__(self, box: BoundingBox) -> None:
        self.box, self.calls = box, 0

    def head_regions(self, frame_rgb):
        self.calls += 1
        return [(self.box, "face-short")]

    def close(self) -> None:
        pass


def test_live_anonymiser_current_head_every_frame_bounded_faces_and_deferred_full_pass():
    from runtime.vision.anonymise import Anonymiser, _clip, grow, pose_head_box
    from runtime.vision.anonymise_live import LiveAnonymiser

    rng = np.random.default_rng(3)
    img = rng.integers(0, 255, (240, 480, 3), dtype=np.uint8)
    written = []
    face = BoundingBox(400, 20, 430, 50)
    faces = _OneFace(face)
    full = Anonymiser(use_face_detector=False, use_person_detector=False, follow_people=False)
    la = LiveAnonymiser(full, sink=written.append, detect_every=4, faces=faces, max_pending=2)
    tracker_head = BoundingBox(20, 150, 50, 180)
    for n in range(10):
        p = synthetic_pose(100 + 5 * n, 60)
        out = la.anonymize(img, n, [p], heads=[tracker_head] if n == 5 else [], leaves=n in (1, 5, 9))
        head = _clip(grow(pose_head_box(p), la.inline.margin), 480, 240)
        assert head in out.regions and "pose-head" in out.sources        # this frame's landmarks, every frame
        fr = _clip(grow(grow(face, la.hold_growth * (n % 4)), la.inline.margin), 480, 240)
        assert fr in out.regions, (n, fr, out.regions)                  # the last face pass's box, grown by age
        x0, y0, x1, y1 = fr
        assert not np.array_equal(out.image[y0:y1, x0:x1], img[y0:y1, x0:x1])
    assert faces.calls == 3                                              # frames 0, 4, 8: the bounded rate
    assert written == []                                                 # nothing leaves before the full pass
    summary = la.close()
    assert len(written) == 2 and summary["written"] == 2 and summary["leaving_skipped"] == 1
    assert [w.t_capture_ns for w in written] == [1, 5]
    tr = _clip(grow(tracker_head, full.margin), 480, 240)
    assert tr in written[1].regions                                      # the tracker's heads kept for the pass
    assert summary["face_passes"] == 3 and summary["inline_ms"]["count"] == 10
    with pytest.raises(ValueError, match="detect_every"):
        LiveAnonymiser(full, detect_every=0, faces=faces)
    with pytest.raises(ValueError, match="max_age"):
        LiveAnonymiser(full, detect_every=5, max_age=2, faces=faces)


def test_live_summary_figures():
    from runtime.vision.process import FRAME_STATS_DTYPE, live_summary

    rows = np.zeros(6, dtype=FRAME_STATS_DTYPE)
    period = int(1e9 / 30)
    rows["index"] = [0, 1, 2, 4, 5, 7]
    rows["capture_ns"] = rows["index"] * period
    rows["start_ns"] = rows["capture_ns"] + 1_000_000
    rows["done_ns"] = rows["capture_ns"] + np.array([2, 20, 22, 25, 60, 21]) * 1_000_000
    rows["end_ns"] = rows["done_ns"] + 2_000_000
    rows["posed"] = [0, 1, 1, 1, 1, 1]
    rows["tracked"] = [0, 1, 1, 1, 1, 0]
    rows["detector"] = [0, 1, 0, 0, 0, 1]
    rows["pose_s"] = [0.0, 0.050, 0.018, 0.020, 0.022, 0.060]
    s = live_summary(rows, produced=8, dropped=2, fps=30.0)
    assert s["processed"] == 6 and s["dropped_frac"] == pytest.approx(0.25)
    assert s["rate_hz"] == pytest.approx(6 / (7 / 30 + 1 / 30))
    assert s["pose_ms"]["count"] == 5 and s["pose_tracked_ms"]["count"] == 3
    assert s["pose_tracked_ms"]["p50"] == pytest.approx(20.0) and s["detector_frames"] == 2
    assert s["publish_ms"]["max"] == pytest.approx(60.0)


def test_bounded_settings_are_checked():
    from runtime.vision.process import VisionSpec
    from runtime.vision.tracking import TrackerSettings

    with pytest.raises(ValueError, match="lost_search_every"):
        TrackerSettings(lost_search_every=0)
    with pytest.raises(ValueError, match="anonymise = 'some'"):
        VisionSpec(source="x", shm_name="y", anonymise="some")


def test_live_vision_process_on_a_clip_section(sports2d_video, tmp_path):
    """The live process on the demo clip's first 60 frames (prompt at 40): every produced frame is processed
    or dropped with a reason, the tracker runs on the ONNX backend from the prompt, the figures are there,
    and the frames that left (report snapshots) are anonymised PNGs written after their full pass."""
    pytest.importorskip("onnxruntime")
    from runtime.vision.pose_build import DEFAULT_OUT

    if not (DEFAULT_OUT / "manifest.json").is_file():
        pytest.skip("ONNX pose models not built (make pose-models)")
    from runtime.vision.process import VisionProcess

    vp = VisionProcess(dict(source=str(sports2d_video), prompt={"bbox": [1400, 500, 1700, 990], "frame": 40},
                            subject_height_m=1.7, preview_path=str(tmp_path / "frames"), anonymise="bounded",
                            max_frames=60))
    vp.start()
    assert "bounded" in vp.description and "onnx" in vp.description
    vp.go()
    deadline = time.monotonic() + 120.0
    while vp.proc.is_alive() and not vp._conn.poll(0.2) and time.monotonic() < deadline:
        pass
    r = vp.stop()
    assert r.get("errors") == [], r.get("traceback")
    g, live = r["grabber"], r["live"]
    assert g["delivered"] == r["frames"] == live["processed"] == 60
    assert g["delivered"] + g["dropped"] == g["produced"]
    assert sum(g["dropped_by_reason"].values()) == g["dropped"]
    fe = r["front_end"]
    assert fe["tracked"] > 0 and live["pose_ms"]["count"] == fe["tracked"] + fe["lost"]
    assert live["publish_ms"]["p50"] > 0                      # capture slot -> landmarks published, pose included
    an = fe["anonymisation"]
    pngs = sorted((tmp_path / "frames").glob("*.png"))
    assert an["written"] == len(pngs) >= 1 and an["inline_ms"]["count"] == 60
    assert len(r["frame_log"]) == 60


def test_demo_vision_modes_on_the_command_line(capsys):
    """``--live-vision`` and ``--replay-landmarks`` exclude each other; ``--offline`` needs landmarks computed ahead."""
    from runtime.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["demo", "--live-vision", "--replay-landmarks"])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert main(["demo", "--offline", "--live-vision"]) == 2
    assert "--offline: needs a recorded input" in capsys.readouterr().err


def test_warm_up_with_dropped_frames_is_still_grounded():
    """Frames dropped live thin the 30 warm-up frames to ~10 Hz: the warm-up fit still runs (its smoothing cutoff
    kept below Nyquist, noted) instead of failing. Poses from the demo clip's tracker, every third frame kept."""
    pytest.importorskip("onnxruntime")
    from runtime.vision.pose_build import DEFAULT_OUT

    if not (DEFAULT_OUT / "manifest.json").is_file():
        pytest.skip("ONNX pose models not built (make pose-models)")
    from runtime.vision.calibration import guess_intrinsics
    from runtime.vision.footage import sports2d_demo_video
    from runtime.vision.front_end import OnlineGrounding
    from runtime.vision.tracking import make_tracker

    src = fs.open_source(str(sports2d_demo_video()))
    tr = make_tracker("onnx")
    g = OnlineGrounding(guess_intrinsics(1768, 994), 1.7)
    world = None
    try:
        for f in src:
            if f.index < 40 or (f.index - 40) % 3:
                continue
            tf = (tr.start(f.image, f.index, f.t_capture_ns, BoundingBox(1400, 500, 1700, 990)) if f.index == 40
                  else tr.update(f.image, f.index, f.t_capture_ns))
            world = g.step(tf.pose, f.t_capture_ns * 1e-9)
            if g.ready:
                break
    finally:
        src.close()
    assert g.ready and world is not None and np.isfinite(world).all()
    assert any("smoothed at" in n for n in g.notes), g.notes

"""Anonymisation on real footage: every head found independently is blurred, MediaPipe's face
detectors find faces in those head regions before and none after; the hold; the privacy gate."""
from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
mp = pytest.importorskip("mediapipe")

from runtime.core.privacy import AnonymizedFrame, PrivacyViolation  # noqa: E402
from runtime.vision.anonymise import (Anonymiser, AnonymizedVideoWriter, annotate, blur_region, grow,  # noqa: E402
                                      pose_head_box)
from runtime.vision.pose_types import BoundingBox  # noqa: E402
from tests._support import synthetic_pose  # noqa: E402


@pytest.fixture(scope="module")
def real_frames(sports2d_video, pose2sim_demo):
    """Every 23rd frame of the sports2d demo (10 frames) and frame 50 of each pose2sim camera."""
    from runtime.vision.frame_sources import VideoFileSource

    frames = [("sports2d", f) for f in VideoFileSource(sports2d_video, step=23)]
    for v in pose2sim_demo["videos"]:
        frames += [(v.stem, f) for f in VideoFileSource(v, start=50, stop=51)]
    return frames


@pytest.fixture(scope="module")
def face_detectors():
    fd = mp.solutions.face_detection
    dets = [fd.FaceDetection(model_selection=m, min_detection_confidence=0.3) for m in (0, 1)]
    yield dets
    for d in dets:
        d.close()


def _faces(dets, image: np.ndarray, box: BoundingBox | None = None) -> int:
    """Faces found by both bundled face detectors, on the whole image or on ``box`` upscaled to 256 px."""
    return len(_face_boxes(dets, image, box))


def _face_boxes(dets, image: np.ndarray, box: BoundingBox | None = None) -> list[BoundingBox]:
    h, w = image.shape[:2]
    if box is not None:
        x0, y0 = max(0, int(box.x0)), max(0, int(box.y0))
        x1, y1 = min(w, int(box.x1)), min(h, int(box.y1))
        image = cv2.resize(np.ascontiguousarray(image[y0:y1, x0:x1]), (256, 256), interpolation=cv2.INTER_CUBIC)
    out = []
    for d in dets:
        for det in d.process(np.ascontiguousarray(image)).detections or []:
            rb = det.location_data.relative_bounding_box
            ih, iw = image.shape[:2]
            out.append(BoundingBox(rb.xmin * iw, rb.ymin * ih, rb.xmin * iw + max(rb.width * iw, 1e-3),
                                   rb.ymin * ih + max(rb.height * ih, 1e-3)))
    return out


def _on_head(face: BoundingBox, head: BoundingBox) -> bool:
    """A detected face that is this head's face: its centre inside the head box, or IoU > 0.2."""
    cx, cy = face.center
    return face.iou(head) > 0.2 or (head.x0 <= cx <= head.x1 and head.y0 <= cy <= head.y1)


def _sharpness(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def test_real_footage_heads_blurred_and_faces_gone(real_frames, face_detectors):
    from runtime.vision.pose_mediapipe import MediaPipePose, PoseDetector

    pose, detector = MediaPipePose(), PoseDetector()
    heads_checked = faces_before = 0
    per_video: dict[str, int] = {}
    for video, frame in real_frames:
        anon = Anonymiser()  # fresh per frame: no help from the hold, each frame stands alone
        out = anon.anonymize(frame.image, frame.t_capture_ns)
        assert isinstance(out, AnonymizedFrame) and out.t_capture_ns == frame.t_capture_ns
        assert out.image.shape == frame.image.shape and not out.image.flags.writeable
        assert len(out.regions) == len(out.sources) > 0
        # reference heads: landmarks of every person (pose on each detected person's ROI)
        heads = []
        for det in detector.detect(frame.image):
            p = pose.infer(frame.image, frame.t_capture_ns, det.body)
            if p is None or p.visibility[0] < 0.5:
                continue
            head = grow(pose_head_box(p), 0.25)
            heads.append(head)
            heads_checked += 1
            per_video[video] = per_video.get(video, 0) + 1
            faces_before += _faces(face_detectors, frame.image, head) > 0
            assert _faces(face_detectors, out.image, head) == 0, (video, frame.index, head)
            x0, y0 = max(0, int(head.x0)), max(0, int(head.y0))
            x1, y1 = int(head.x1), int(head.y1)
            before, after = frame.image[y0:y1, x0:x1], out.image[y0:y1, x0:x1]
            assert np.abs(before.astype(int) - after.astype(int)).mean() > 4.0, (video, frame.index)
            assert _sharpness(after) < 0.2 * _sharpness(before), (video, frame.index)
        # a face the detectors still report on the whole output frame may only be a false positive
        # away from every head (a blurred blob or a torso), never on a head
        for face in _face_boxes(face_detectors, out.image):
            assert not any(_on_head(face, h) for h in heads), (video, frame.index, face)
        anon.close()
    # the check can fail: in the input the face detectors do find a face in most head regions
    assert per_video.get("sports2d", 0) >= 12 and sum(per_video.values()) - per_video["sports2d"] >= 3, per_video
    assert faces_before >= 0.5 * heads_checked, (faces_before, heads_checked)  # 16 of 22 here
    print(f"heads checked {heads_checked} ({per_video}); face found in {faces_before} before, 0 after")
    pose.close()


def test_hold_blurs_last_seen_head_when_pose_is_missing():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    a = Anonymiser(use_face_detector=False, use_person_detector=False, hold_frames=2, hold_growth=0.2)
    p = synthetic_pose(160, 60)
    first = a.anonymize(img, 0, [p])
    assert first.sources == ("pose-head",)
    second = a.anonymize(img, 1, [])  # pose lost for this frame
    assert second.sources == ("held",)
    r1, r2 = first.regions[0], second.regions[0]
    assert r2[0] <= r1[0] and r2[1] <= r1[1] and r2[2] >= r1[2] and r2[3] >= r1[3] and r2 != r1  # grown
    x0, y0, x1, y1 = r1
    assert not np.array_equal(second.image[y0:y1, x0:x1], img[y0:y1, x0:x1])
    assert a.anonymize(img, 2, []).sources == ("held",)
    third = a.anonymize(img, 3, [])  # older than hold_frames: forgotten
    assert third.regions == () and np.array_equal(third.image, img)


def test_methods_and_errors():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
    for method in ("pixelate", "gaussian"):
        out = img.copy()
        blur_region(out, (20, 20, 80, 80), method)
        assert _sharpness(out[20:80, 20:80]) < 0.05 * _sharpness(img[20:80, 20:80])
        assert np.array_equal(out[:20], img[:20])
    with pytest.raises(ValueError, match="method: 'pixelate' or 'gaussian', got 'box'"):
        Anonymiser(method="box")
    with pytest.raises(ValueError, match="margin: .* got 0.0"):
        Anonymiser(margin=0.0)
    with pytest.raises(ValueError, match="frame_rgb: expected an .* float64"):
        Anonymiser(use_face_detector=False, use_person_detector=False).anonymize(img.astype(float), 0)


def test_privacy_gate_for_writers(tmp_path):
    img = np.zeros((64, 80, 3), np.uint8)
    with pytest.raises(PrivacyViolation):
        AnonymizedFrame(img, 0, (), (), object())
    a = Anonymiser(use_face_detector=False, use_person_detector=False)
    af = a.anonymize(img, 5)
    with AnonymizedVideoWriter(tmp_path / "x.mp4", 30.0, (80, 64)) as w:
        with pytest.raises(PrivacyViolation, match="refused a frame of type ndarray"):
            w.write(img)
        w.write(annotate(af, synthetic_pose(40, 10, 5), BoundingBox(5, 5, 50, 50), "t"))
        w.write(af)
    assert w.frames == 2
    cap = cv2.VideoCapture(str(tmp_path / "x.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 2


@pytest.fixture(scope="module")
def bystander_heads(sports2d_video) -> dict[int, BoundingBox]:
    """The backlit man's head box on sports2d frames 100-160 (every 2nd), from MediaPipe's video-mode tracker."""
    from runtime.vision.frame_sources import VideoFileSource
    from runtime.vision.pose_mediapipe import MediaPipePose

    ref: dict[int, BoundingBox] = {}
    with MediaPipePose() as mp_video, VideoFileSource(sports2d_video, start=40, stop=161, step=2) as src:
        for f in src:
            r = mp_video.infer(f.image, f.t_capture_ns)
            if r is not None and f.index >= 100 and 0.5 * (r.image_xy[23, 1] + r.image_xy[24, 1]) < 450:
                ref[f.index] = pose_head_box(r)
    assert len(ref) >= 20, sorted(ref)
    return ref


@pytest.mark.parametrize("bounded", [False, True], ids=["every-frame", "bounded"])
def test_bystander_head_blurred_on_every_frame_while_the_detector_misses_him(sports2d_video, bystander_heads,
                                                                              bounded):
    """The backlit man on the box (sports2d frames 100-160): the person detector misses him on most of
    these frames, yet his head is blurred on every one — also with the detectors at a bounded rate (every
    5th processed frame: held boxes cover the frames between). Reference for his head: MediaPipe's own
    video-mode tracker, which holds him on these frames (hips on the box, y < 450 px)."""
    from runtime.vision.frame_sources import VideoFileSource

    ref = bystander_heads
    anon = Anonymiser.bounded() if bounded else Anonymiser()
    by_detector_only = frames = 0
    with VideoFileSource(sports2d_video, start=100, stop=161, step=2) as src:
        for f in src:
            frames += 1
            out = anon.anonymize(f.image, f.t_capture_ns)
            head = ref.get(f.index)
            if head is None:
                continue
            covered = np.zeros(f.image.shape[:2], bool)
            for x0, y0, x1, y1 in out.regions:
                covered[y0:y1, x0:x1] = True
            x0, y0, x1, y1 = (max(0, int(v)) for v in (head.x0, head.y0, head.x1, head.y1))
            assert covered[y0:y1, x0:x1].all(), (f.index, head, out.regions, out.sources)
            det_cov = np.zeros(f.image.shape[:2], bool)
            for (rx0, ry0, rx1, ry1), src_label in zip(out.regions, out.sources):
                if src_label == "person-head":
                    det_cov[ry0:ry1, rx0:rx1] = True
            by_detector_only += bool(det_cov[y0:y1, x0:x1].all())
    anon.close()
    if bounded:
        # no pose given: only the frame count bounds the rate (every 5th frame, the first included)
        assert anon.detection_frames == -(-frames // 5), (anon.detection_frames, frames)
    else:
        assert anon.detection_frames == frames
        # the detector alone would have left his head (partly) visible on many of these frames
        assert by_detector_only <= len(ref) - 8, (by_detector_only, len(ref))


def test_bounded_rate_schedule_and_head_from_current_landmarks():
    """Detectors every N frames or on a head move > X px; the current landmarks' head blurred on every frame."""
    rng = np.random.default_rng(4)
    img = rng.integers(0, 255, (240, 480, 3), dtype=np.uint8)
    a = Anonymiser(use_face_detector=False, use_person_detector=False, follow_people=False, detect_every=4,
                   detect_move_px=30.0)
    assert a.hold_frames == 4   # held at least until the next detection frame
    due = []
    xs = [100, 105, 110, 115, 120, 125, 200, 205, 210]   # a 75 px jump at the 7th frame
    for k, x in enumerate(xs):
        before = a.detection_frames
        p = synthetic_pose(x, 60)
        out = a.anonymize(img, k, [p])
        due.append(a.detection_frames > before)
        assert "pose-head" in out.sources
        head = _clip_box(grow(pose_head_box(p), a.margin), img.shape)
        assert head in out.regions   # the head box of THIS frame's landmarks, every frame
    assert due == [True, False, False, False, True, False, True, False, False], due
    with pytest.raises(ValueError, match="detect_every"):
        Anonymiser(detect_every=0)
    with pytest.raises(ValueError, match="detect_move_px"):
        Anonymiser(detect_move_px=-1.0)


def _clip_box(box: BoundingBox, shape) -> tuple[int, int, int, int]:
    from runtime.vision.anonymise import _clip

    return _clip(box, shape[1], shape[0])

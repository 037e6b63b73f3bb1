"""BlazePose detector decoding and ROI geometry, against hand-computed cases and OpenCV's own transforms.

No model files needed: these run on synthetic tensors.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.vision.pose_anchors import (ANCHORS, N_ANCHORS, Detection, Roi, decode_detections, detection_to_roi,
                                         letterbox_roi, roi_from_keypoints, ssd_anchors, weighted_nms)
from runtime.vision.pose_onnx import crop_tensor, decode_landmarks, provider_candidates, refine_from_heatmap


# ------------------------------------------------------------------ anchors
def test_anchor_layout_hand_checked():
    # 28x28 cells x 2 (stride 8) + 14x14 x 2 (stride 16) + 7x7 x 6 (three stride-32 layers share one map)
    assert ANCHORS.shape == (N_ANCHORS, 2) == (28 * 28 * 2 + 14 * 14 * 2 + 7 * 7 * 6, 2)
    np.testing.assert_allclose(ANCHORS[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(ANCHORS[1], [0.5 / 28, 0.5 / 28])        # 2 anchors per cell
    np.testing.assert_allclose(ANCHORS[2], [1.5 / 28, 0.5 / 28])        # x runs fastest
    np.testing.assert_allclose(ANCHORS[56], [0.5 / 28, 1.5 / 28])       # then the next row
    np.testing.assert_allclose(ANCHORS[1568], [0.5 / 14, 0.5 / 14])     # first stride-16 anchor
    np.testing.assert_allclose(ANCHORS[1960:1966], [[0.5 / 7, 0.5 / 7]] * 6)  # 6 per stride-32 cell
    np.testing.assert_allclose(ANCHORS[1966], [1.5 / 7, 0.5 / 7])
    np.testing.assert_allclose(ANCHORS[-1], [6.5 / 7, 6.5 / 7])


def test_anchor_bad_input():
    with pytest.raises(ValueError, match="strides"):
        ssd_anchors(strides=(8, 0))
    with pytest.raises(ValueError, match="input_size"):
        ssd_anchors(input_size=0)


def test_decode_hand_checked():
    boxes = np.zeros((1, N_ANCHORS, 12), np.float32)
    logits = np.full((1, N_ANCHORS, 1), -10.0, np.float32)
    k = 1966  # anchor (1.5/7, 0.5/7)
    ax, ay = 1.5 / 7, 0.5 / 7
    # centre offset (+22.4, -11.2) px of 224 = (+0.1, -0.05); w 44.8 px = 0.2, h 22.4 px = 0.1
    boxes[0, k, :4] = [22.4, -11.2, 44.8, 22.4]
    boxes[0, k, 4:6] = [0.0, 56.0]      # keypoint 0: anchor + (0, 0.25)
    boxes[0, k, 6:8] = [-112.0, 0.0]    # keypoint 1: anchor + (-0.5, 0)
    logits[0, k, 0] = 0.0               # sigmoid 0.5: kept at the 0.5 threshold
    logits[0, 5, 0] = 250.0             # clipped to 100: score 1.0
    dets = decode_detections(boxes, logits)
    assert [round(d.score, 6) for d in dets] == [1.0, 0.5]
    d = dets[1]
    np.testing.assert_allclose(d.box, [ax + 0.1 - 0.1, ay - 0.05 - 0.05, ax + 0.1 + 0.1, ay - 0.05 + 0.05], atol=1e-6)
    np.testing.assert_allclose(d.keypoints[0], [ax, ay + 0.25], atol=1e-6)
    np.testing.assert_allclose(d.keypoints[1], [ax - 0.5, ay], atol=1e-6)
    np.testing.assert_allclose(d.keypoints[2:], [[ax, ay], [ax, ay]], atol=1e-6)
    assert decode_detections(boxes, logits, min_score=0.51)[0].score == 1.0
    assert len(decode_detections(boxes, logits, min_score=0.51)) == 1


def test_decode_rejects_wrong_anchor_count():
    with pytest.raises(ValueError, match="2254 anchors"):
        decode_detections(np.zeros((1, 100, 12)), np.zeros((1, 100, 1)))


def test_weighted_nms_hand_checked():
    a = Detection(np.array([0.0, 0.0, 1.0, 1.0]), np.zeros((4, 2)), 0.9)
    b = Detection(np.array([0.1, 0.0, 1.1, 1.0]), np.ones((4, 2)), 0.6)   # IoU 0.9/1.1 = 0.818 with a
    c = Detection(np.array([5.0, 5.0, 6.0, 6.0]), np.full((4, 2), 7.0), 0.7)  # separate
    out = weighted_nms([b, c, a])
    assert [d.score for d in out] == [0.9, 0.7]
    np.testing.assert_allclose(out[0].box, [0.6 * 0.1 / 1.5, 0.0, (0.9 + 0.6 * 1.1) / 1.5, 1.0])
    np.testing.assert_allclose(out[0].keypoints, np.full((4, 2), 0.6 / 1.5))
    np.testing.assert_allclose(out[1].box, c.box)
    # below the IoU threshold (0.3) nothing merges: [0,1] and [0.6,1.6] have IoU 0.4/1.6 = 0.25
    d = Detection(np.array([0.6, 0.0, 1.6, 1.0]), np.ones((4, 2)), 0.5)
    assert len(weighted_nms([a, d])) == 2


# ------------------------------------------------------------------ ROI geometry
def test_roi_upright_and_lying_hand_checked():
    r = roi_from_keypoints(np.array([100.0, 200.0]), np.array([100.0, 100.0]))   # body circle point straight up
    assert (r.cx, r.cy, r.size) == (100.0, 200.0, 250.0)   # 2 * 100 px * 1.25
    assert r.rotation == pytest.approx(0.0)
    r = roi_from_keypoints(np.array([100.0, 200.0]), np.array([180.0, 200.0]))   # head to the right
    assert r.rotation == pytest.approx(math.pi / 2) and r.size == pytest.approx(200.0)
    # the tensor's top-centre (0.5, 0) lies towards the head
    top = r.tensor_to_image() @ np.array([0.5, 0.0, 1.0])
    np.testing.assert_allclose(top, [100.0 + 100.0, 200.0])
    with pytest.raises(ValueError, match="coincide"):
        roi_from_keypoints(np.array([1.0, 1.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="roi.size"):
        Roi(0.0, 0.0, -1.0, 0.0)


@settings(max_examples=60, deadline=None)
@given(st.floats(-500, 500), st.floats(-500, 500), st.floats(5, 400), st.floats(-math.pi, math.pi))
def test_roi_top_points_to_body_circle_point(x, y, r, angle):
    p0 = np.array([x, y])
    p1 = p0 + r * np.array([math.sin(angle), -math.cos(angle)])   # angle 0 = straight up on screen
    roi = roi_from_keypoints(p0, p1)
    top = roi.tensor_to_image() @ np.array([0.5, 0.0, 1.0])
    expect = p0 + (p1 - p0) * (0.5 * roi.size) / r
    np.testing.assert_allclose(top, expect, atol=1e-6 * max(1.0, r))
    assert roi.size == pytest.approx(2.5 * r)


@pytest.mark.parametrize("rotation", [0.0, 0.3, -1.2, math.pi / 2, 3.0])
def test_roi_transform_matches_opencv_rotatedrect(rotation):
    """MediaPipe's ImageToTensor: cv2.boxPoints of the RotatedRect → dst corners (0,H),(0,0),(W,0),(W,H)."""
    roi = Roi(321.0, 187.0, 150.0, rotation)
    rect = ((roi.cx, roi.cy), (roi.size, roi.size), math.degrees(rotation))
    src = cv2.boxPoints(rect).astype(np.float32)
    dst = np.array([[0, 256], [0, 0], [256, 0], [256, 256]], np.float32)
    persp = cv2.getPerspectiveTransform(src, dst)        # frame px -> tensor px
    inv = np.linalg.inv(persp)
    ours = roi.tensor_to_image()
    for u, v in [(0.0, 0.0), (1.0, 0.0), (0.25, 0.8), (0.5, 0.5)]:
        q = inv @ np.array([u * 256, v * 256, 1.0])
        np.testing.assert_allclose(ours @ np.array([u, v, 1.0]), q[:2] / q[2], atol=1e-3)


def test_letterbox_and_detection_to_roi():
    view = letterbox_roi(1768, 994)
    assert (view.cx, view.cy, view.size, view.rotation) == (884.0, 497.0, 1768.0, 0.0)
    # detector keypoints at tensor (0.5, 0.5) and (0.5, 0.25): frame centre and 442 px above it
    det = Detection(np.array([0.4, 0.4, 0.6, 0.6]), np.array([[0.5, 0.5], [0.5, 0.25], [0, 0], [0, 0]]), 0.9)
    roi = detection_to_roi(det, view)
    assert roi.cx == pytest.approx(884.0) and roi.cy == pytest.approx(497.0)
    assert roi.size == pytest.approx(2 * 442.0 * 1.25) and roi.rotation == pytest.approx(0.0)
    with pytest.raises(ValueError, match="frame size"):
        letterbox_roi(0, 10)


def test_crop_tensor_rotated_marker_and_round_trip():
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[48:53, 198:203] = 255                      # white marker centred at (200, 50)
    roi = Roi(150.0, 100.0, 128.0, math.pi / 2)      # ROI "up" points to +x
    x = crop_tensor(frame, roi, 128, 0.0, 1.0, replicate=True)
    assert x.shape == (1, 128, 128, 3) and x.dtype == np.float32
    w = x[0, :, :, 0]
    vs, us = np.mgrid[0:128, 0:128]
    u, v = (us * w).sum() / w.sum(), (vs * w).sum() / w.sum()   # marker centroid in the tensor
    # marker is 50 px right of and 50 px above the centre: in the rotated ROI it is above (up = +x) and left
    back = roi.tensor_to_image() @ np.array([u / 128, v / 128, 1.0])
    np.testing.assert_allclose(back, [200.0, 50.0], atol=0.5)
    assert u < 64 and v < 64
    det = crop_tensor(frame, letterbox_roi(300, 200), 224, -1.0, 1.0, replicate=False)
    assert det.min() == -1.0 and det.max() == pytest.approx(1.0)
    assert np.all(det[0, :10] == -1.0)             # letterbox band: zero pixels = -1


# ------------------------------------------------------------------ landmark decoding
def test_heatmap_refinement_hand_checked():
    hm = np.full((64, 64, 2), -20.0, np.float32)
    hm[10, 20, 0] = 20.0                              # single confident cell: refined onto it
    hm[30, 30, 1] = -1.0                              # landmark 1: peak 0.27 < 0.5, not refined
    xy = np.array([[21.5 / 64, 11.5 / 64], [30.2 / 64, 30.9 / 64]])
    out = refine_from_heatmap(xy, hm)
    np.testing.assert_allclose(out[0], [20 / 64, 10 / 64], atol=1e-6)
    np.testing.assert_allclose(out[1], xy[1])
    hm[10, 22, 0] = 20.0                              # two equal cells: their mean
    np.testing.assert_allclose(refine_from_heatmap(xy, hm)[0], [21 / 64, 10 / 64], atol=1e-6)
    far = np.array([[40 / 64, 40 / 64], [-0.1, 0.5]])  # peak outside the 7x7 window, and outside the map
    np.testing.assert_allclose(refine_from_heatmap(far, hm), far)


def test_decode_landmarks_projection_hand_checked():
    raw = np.zeros((39, 5), np.float32)
    raw[:, 0], raw[:, 1] = 128.0, 64.0                # tensor (0.5, 0.25): above the centre
    raw[:, 2] = 25.6                                  # z: 0.1 of the tensor width
    raw[:, 3], raw[:, 4] = 0.0, 2.0
    world = np.tile([0.1, 0.2, 0.3], 39).astype(np.float32)
    hm = np.full((1, 64, 64, 39), -20.0, np.float32)  # no refinement
    roi = Roi(500.0, 400.0, 200.0, math.pi / 2)
    out = decode_landmarks([raw.reshape(1, -1), np.array([[0.8]]), None, hm, world.reshape(1, -1)], roi)
    np.testing.assert_allclose(out["xy"][0], [500.0 + 50.0, 400.0])   # "up" of the ROI is +x
    np.testing.assert_allclose(out["z"][0], 20.0)                     # 0.1 * 200 px
    np.testing.assert_allclose(out["visibility"][0], 0.5)
    np.testing.assert_allclose(out["presence"][0], 1 / (1 + math.exp(-2.0)))
    np.testing.assert_allclose(out["world"][0], [-0.2, 0.1, 0.3], atol=1e-7)   # rotated by +90 deg about z
    assert out["score"] == pytest.approx(0.8)


# ------------------------------------------------------------------ providers
def test_provider_chain(tmp_path):
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    chain = provider_candidates(avail, tmp_path)
    assert [p for p, _ in chain] == avail
    trt = chain[0][1]
    assert trt["trt_engine_cache_enable"] is True and trt["trt_engine_cache_path"] == str(tmp_path)
    assert trt["trt_fp16_enable"] is False
    assert [p for p, _ in provider_candidates(avail, tmp_path, prefer="cuda")] == avail[1:]
    assert [p for p, _ in provider_candidates(["CPUExecutionProvider"], tmp_path)] == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="provider: must be one of"):
        provider_candidates(avail, tmp_path, prefer="gpu")
    # asking for TensorRT where only the CPU provider exists falls back to it
    assert [p for p, _ in provider_candidates(["CPUExecutionProvider"], tmp_path, prefer="tensorrt")] == \
        ["CPUExecutionProvider"]
    with pytest.raises(RuntimeError, match="none of"):
        provider_candidates(["AzureExecutionProvider"], tmp_path)


def _refine_loop(xy_norm, heatmap, kernel=7, min_confidence=0.5):
    """The per-landmark loop the vectorised refinement replaced (MediaPipe's calculator, literally)."""
    hm_h, hm_w, n = heatmap.shape
    out = np.array(xy_norm, dtype=np.float64, copy=True)
    off = (kernel - 1) // 2
    for k in range(min(n, out.shape[0])):
        col, row = int(out[k, 0] * hm_w), int(out[k, 1] * hm_h)
        if out[k, 0] < 0 or out[k, 1] < 0 or col >= hm_w or row >= hm_h:
            continue
        r0, r1 = max(0, row - off), min(hm_h, row + off + 1)
        c0, c1 = max(0, col - off), min(hm_w, col + off + 1)
        win = 1.0 / (1.0 + np.exp(-heatmap[r0:r1, c0:c1, k].astype(np.float64)))
        total = win.sum()
        if win.size == 0 or win.max() < min_confidence or total <= 0:
            continue
        rows, cols = np.mgrid[r0:r1, c0:c1]
        out[k, 0] = float((cols * win).sum() / total / hm_w)
        out[k, 1] = float((rows * win).sum() / total / hm_h)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_heatmap_refinement_vectorised_equals_the_loop(seed):
    rng = np.random.default_rng(seed)
    hm = rng.normal(-1.0, 3.0, (64, 64, 39)).astype(np.float32)
    xy = rng.uniform(-0.1, 1.1, (39, 2))          # inside, on the borders and outside the heatmap
    xy[:4] = [[0.0, 0.0], [0.999, 0.999], [1.0, 0.5], [0.5, -0.001]]
    got = refine_from_heatmap(xy, hm)
    ref = _refine_loop(xy, hm)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    assert np.any(got != xy)                        # some landmarks were refined

"""BlazePose ONNX backend against the original .tflite (ai-edge-litert) on real footage (sports2d demo).

Needs the built models: ``python -m runtime.vision.pose_build --out build/pose_onnx`` (CI builds them before
the tests). A missing build FAILS these tests, on purpose.

Tolerances (measured on all 230 frames of the demo, ``python -m runtime.vision.pose_litert``, with
margin): identical input tensors give landmark x/y within 0.031 px of the 256-px tensor, world
landmarks within 0.8 mm, detector logits within 0.002; whole pipelines give final landmarks with a
median difference of 0.26 px in the 1768×994 frame (p95 of the per-frame max 1.2 px).
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from runtime.vision.pose_build import BUILD_COMMAND, DEFAULT_OUT, load_manifest

FRAMES_CHECKED = (60, 80, 100, 120, 140, 160, 180, 200)   # both people in view at various poses
TRACK_FRAMES = tuple(range(100, 106))


@pytest.fixture(scope="module")
def model_dir() -> Path:
    try:
        load_manifest(DEFAULT_OUT)
    except FileNotFoundError as exc:
        pytest.fail(f"{exc}\n(the ONNX models are a build artefact: run `{BUILD_COMMAND}` before the tests)")
    return DEFAULT_OUT


@pytest.fixture(scope="module")
def frames(sports2d_video) -> dict[int, np.ndarray]:

    from runtime.vision.frame_sources import read_video_frames

    wanted = set(FRAMES_CHECKED) | set(TRACK_FRAMES) | {0}
    out = read_video_frames(sports2d_video, wanted)
    assert set(out) == wanted, f"could not read frames {sorted(wanted - set(out))} of the sports2d demo"
    return out


@pytest.fixture(scope="module")
def onnx(model_dir):
    from runtime.vision.pose_onnx import OnnxPose

    return OnnxPose(model_dir, provider="cpu", intra_op_threads=1)


@pytest.fixture(scope="module")
def ref():
    from runtime.vision.pose_litert import LiteRtPose

    return LiteRtPose(threads=1)


def test_manifest_records_sources_and_hashes(model_dir):
    from runtime.vision.pose_build import bundled_tflite, sha256

    m = load_manifest(model_dir)
    assert m["opset"] == 17
    for name, entry in m["models"].items():
        assert entry["source_sha256"] == sha256(bundled_tflite(name)), f"{name}: built from another .tflite; rebuild"
        assert entry["onnx_sha256"] == sha256(model_dir / entry["onnx"])
        assert entry["densified_vs_source_max_abs_diff"] == 0.0
    assert m["models"]["pose_detection"]["densified_ops"] == 38   # the detector's sparse conv weights
    assert {"tensorflow", "tf2onnx", "onnx"} <= set(m["build_tools"])


def test_same_tensors_agree(onnx, ref, frames):
    from runtime.vision.pose_litert import tensor_agreement

    worst: dict[str, float] = {}
    for i in FRAMES_CHECKED:
        t = tensor_agreement(onnx, ref, frames[i])
        assert t is not None, f"frame {i}: the reference detector found nobody"
        for k, v in t.items():
            worst[k] = max(worst.get(k, 0.0), v)
    assert worst["landmarks_px"] < 0.1, worst        # of 256 tensor px
    assert worst["world_m"] < 0.003, worst           # metres
    assert worst["visibility_logit"] < 0.1, worst
    assert worst["score"] < 1e-3, worst
    assert worst["det_scores"] < 0.01, worst         # logits
    assert worst["det_boxes"] < 0.02, worst          # detector tensor px of 224
    assert worst["heatmap_logit"] < 0.01, worst


def test_final_landmarks_agree_on_real_frames(onnx, ref, frames):
    from runtime.vision.pose_litert import pose_agreement

    medians, maxima = [], []
    for i in FRAMES_CHECKED:
        p = pose_agreement(onnx, ref, frames[i])
        assert p is not None, f"frame {i}: a backend found nobody"
        medians.append(p["xy_px_median"])
        maxima.append(p["xy_px_max"])
        assert p["world_m_max"] < 0.01 and p["visibility_max"] < 0.02 and p["score"] < 0.01, (i, p)
    assert max(medians) < 0.5, medians               # full-frame px (1768×994)
    assert max(maxima) < 5.0, maxima


def test_nobody_in_empty_frame_and_first_frames(onnx, frames):
    onnx.reset()
    assert onnx.infer(np.zeros((480, 640, 3), np.uint8), 1) is None
    # frame 0 of the demo: the detector's best score is below 0.5 (MediaPipe's legacy graph finds nobody too)
    assert onnx.infer(frames[0], 2) is None


def test_result_fields_and_tracking(onnx, frames):
    from runtime.vision.pose_types import N_LANDMARKS

    onnx.reset()
    results = [onnx.infer(frames[i], 1000 * i) for i in TRACK_FRAMES]
    assert all(r is not None for r in results)
    sources = [r.extras["roi_source"] for r in results]
    assert sources == ["detector"] + ["tracking"] * (len(TRACK_FRAMES) - 1), sources
    assert all("detector_ms" not in r.extras["timings_ms"] for r in results[1:])
    r = results[0]
    assert r.backend == "onnx-cpu" and r.t_capture_ns == 100_000
    assert r.image_xy.shape == (N_LANDMARKS, 2) and r.world_xyz.shape == (N_LANDMARKS, 3)
    assert np.all((r.visibility >= 0) & (r.visibility <= 1)) and 0.5 <= r.score <= 1.0
    assert r.bbox.x0 <= r.image_xy[:, 0].min() and r.bbox.y1 >= r.image_xy[:, 1].max()
    # world landmarks: metres, hips at the origin (BlazePose frame), a standing adult's extent
    hips = r.world_xyz[[23, 24]].mean(axis=0)
    assert np.linalg.norm(hips) < 0.05
    assert 1.0 < np.ptp(r.world_xyz[:, 1]) < 2.2
    # consecutive frames at 30 fps: the tracked person moves a few pixels, not across the frame
    steps = [np.median(np.linalg.norm(b.image_xy - a.image_xy, axis=1)) for a, b in zip(results, results[1:])]
    assert max(steps) < 40.0, steps
    onnx.reset()
    assert onnx.infer(frames[TRACK_FRAMES[-1]], 0).extras["roi_source"] == "detector"


def test_prompt_box_selects_person(onnx, frames):
    onnx.reset()
    free = onnx.infer(frames[100], 0)
    assert free is not None
    from runtime.vision.pose_types import BoundingBox

    b = free.bbox
    onnx.reset()
    prompted = onnx.infer(frames[100], 0, roi=BoundingBox(b.x0 - 20, b.y0 - 20, b.x1 + 20, b.y1 + 20))
    assert prompted is not None and prompted.extras["roi_source"] == "detector"
    assert np.median(np.linalg.norm(prompted.image_xy - free.image_xy, axis=1)) < 10.0
    onnx.reset()
    assert onnx.infer(frames[100], 0, roi=BoundingBox(0, 0, 60, 60)) is None   # an empty corner


def test_bad_frame_rejected(onnx):
    with pytest.raises(ValueError, match="frame_rgb"):
        onnx.infer(np.zeros((10, 10), np.uint8), 0)
    with pytest.raises(ValueError, match="frame_rgb"):
        onnx.infer(np.zeros((10, 10, 3), np.float32), 0)


def test_provider_and_hashes_logged(model_dir, caplog):
    from runtime.vision.pose_onnx import OnnxPose

    with caplog.at_level(logging.INFO, logger="runtime.vision.pose_onnx"):
        p = OnnxPose(model_dir, provider="cpu")
    assert p.provider == "CPUExecutionProvider" and p.name == "onnx-cpu"
    text = caplog.text
    assert "provider CPUExecutionProvider" in text
    for h in p.model_sha256.values():
        assert h in text


def test_tampered_model_rejected(model_dir, tmp_path):
    from runtime.vision.pose_onnx import OnnxPose

    for f in model_dir.iterdir():
        if f.suffix in (".onnx", ".json"):
            shutil.copy(f, tmp_path / f.name)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["models"]["pose_landmark_full"]["onnx_sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="onnx_sha256"):
        OnnxPose(tmp_path, provider="cpu")
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="runtime.vision.pose_build"):
        OnnxPose(tmp_path, provider="cpu")


@pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")
def test_gpu_providers_absent_fall_back_to_cpu(model_dir, tmp_path, monkeypatch, caplog):
    """onnxruntime advertising TensorRT/CUDA that cannot start: one warning, CPU in use, TRT cache set up."""
    import onnxruntime as ort

    from runtime.vision.pose_onnx import OnnxPose

    for f in model_dir.iterdir():
        if f.suffix in (".onnx", ".json"):
            shutil.copy(f, tmp_path / f.name)
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    with caplog.at_level(logging.INFO, logger="runtime.vision.pose_onnx"):
        p = OnnxPose(tmp_path)
    assert p.provider == "CPUExecutionProvider" and p.name == "onnx-cpu"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "TensorrtExecutionProvider" in warnings[0].getMessage()
    assert (tmp_path / "trt_cache").is_dir()


def test_pipeline_matches_mediapipe_graph(ref, frames):
    """Our pre/post-processing against MediaPipe's own pose_landmark_cpu graph (same .tflite models).

    MediaPipe runs the models in its own TFLite build, so raw outputs differ slightly; the detection ROI
    agrees within 3.5 px / 0.9 % / 0.016 rad on these frames, and landmarks within ~1 px in the median
    frame (ambiguous frames, e.g. 160 where the two people overlap, amplify the ROI difference).
    """
    mp_sb = pytest.importorskip("mediapipe.python.solution_base")
    graph = mp_sb.SolutionBase(
        binary_graph_path="mediapipe/modules/pose_landmark/pose_landmark_cpu.binarypb",
        side_inputs={"model_complexity": 1, "smooth_landmarks": False, "enable_segmentation": False,
                     "smooth_segmentation": False, "use_prev_landmarks": False},
        outputs=["pose_landmarks", "pose_rect_from_detection"])
    medians = []
    try:
        for i in FRAMES_CHECKED:
            f = frames[i]
            h, w = f.shape[:2]
            out = graph.process(f)
            ref.reset()
            ours = ref.infer(f, 0)
            assert ours is not None and out.pose_landmarks is not None, f"frame {i}"
            rr, roi = out.pose_rect_from_detection, ours.extras["roi"]
            assert np.hypot(roi.cx - rr.x_center * w, roi.cy - rr.y_center * h) < 5.0, (i, roi, rr)
            assert abs(roi.size / (rr.width * w) - 1.0) < 0.02, (i, roi, rr)
            assert abs(roi.rotation - rr.rotation) < 0.03, (i, roi, rr)
            theirs = np.array([(lm.x * w, lm.y * h) for lm in out.pose_landmarks.landmark])
            medians.append(float(np.median(np.linalg.norm(ours.image_xy - theirs, axis=1))))
    finally:
        graph.close()
    assert np.median(medians) < 2.5, medians


def test_session_options_stated(onnx):
    from runtime.vision.pose_onnx import default_intra_op_threads, session_options, session_settings

    assert onnx.session_settings == {"graph_optimization_level": "ORT_ENABLE_ALL", "execution_mode": "ORT_SEQUENTIAL",
                                     "intra_op_threads": 1, "inter_op_threads": 1, "cpu_mem_arena": True,
                                     "mem_pattern": True, "allow_spinning": False}
    assert [default_intra_op_threads(n) for n in (1, 2, 3, 4, 8, 16)] == [1, 1, 1, 2, 4, 8]
    assert session_settings(session_options(3, allow_spinning=True))["intra_op_threads"] == 3
    assert session_settings(session_options(0))["intra_op_threads"] == default_intra_op_threads()
    with pytest.raises(ValueError, match="intra_op_threads"):
        session_options(-1)
    with pytest.raises(ValueError, match="cpus"):
        default_intra_op_threads(0)


def test_detector_runs_counted_with_reason(onnx, frames):
    from runtime.vision.pose_types import BoundingBox

    onnx.reset()
    runs0, reasons0 = onnx.detector_runs, dict(onnx.detector_reasons)
    results = [onnx.infer(frames[i], 0) for i in TRACK_FRAMES]
    assert all(r is not None for r in results)
    assert onnx.detector_runs - runs0 == 1                       # the first frame only: then tracked
    assert onnx.detector_reasons["no_track"] - reasons0["no_track"] == 1
    far = BoundingBox(0, 0, 300, 300)                            # a prompt away from the tracked person
    onnx.infer(frames[TRACK_FRAMES[-1]], 0, roi=far)
    assert onnx.detector_reasons["prompt_moved"] - reasons0["prompt_moved"] == 1
    assert onnx.detector_runs - runs0 == 2


def test_person_detector_matches_the_litert_one(onnx, frames):
    """The ONNX multi-person detector (same tiles, same NMS) finds the people the .tflite one finds."""
    from runtime.vision.pose_mediapipe import PoseDetector
    from runtime.vision.pose_onnx import OnnxPersonDetector

    det = OnnxPersonDetector(onnx)
    ref = PoseDetector()
    assert len(det.views(1768, 994)) == 4 and len(det.views(300, 240)) == 1
    runs0 = onnx.detector_runs
    for i in (100, 140, 180):
        ours, theirs = det.detect(frames[i]), ref.detect(frames[i])
        assert len(theirs) >= 1, i
        # a borderline candidate (score near the 0.5 threshold) may be on one side only: interpolation differs
        for b in ours:
            assert any(b.head.iou(a.head) > 0.8 for a in theirs) or b.score < 0.6, (i, b, theirs)
        for a in theirs:
            best = max(ours, key=lambda b: b.head.iou(a.head))
            assert best.head.iou(a.head) > 0.8, (i, a, best)
            # keypoints: within a tenth of the head box (the .tflite path resizes with INTER_AREA, ours bilinear)
            if min(a.score, best.score) >= 0.7:   # weighted NMS of borderline candidates may merge differently
                assert np.hypot(*np.subtract(best.hip_center, a.hip_center)) < 0.1 * (a.head.x1 - a.head.x0), \
                    (i, a, best)
    assert onnx.detector_runs - runs0 == 3 * 4    # one run per tile

"""The landmark-model variants built by ``make pose-models``: the int8 model (its hash, its agreement with fp32,
when it is used) and the segmentation-free fp32 model (same numbers on the outputs it keeps).

The acceptance rule (issue 20): int8 landmarks within 1 px median and 3 px p95 of the fp32 model's on the
demo footage (same ROIs, 33 landmarks, full-frame pixels). The test measures the agreement itself, on the
evaluation frames and on a second set the build never looked at, and checks that the manifest's verdict,
and the runtime's ``landmark_model="auto"`` choice, follow the figures.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from runtime.vision.pose_build import (BUILD_COMMAND, DEFAULT_OUT, PRUNED_NAME, QUANTIZED_NAME, load_manifest,
                                       pruned_entry, quantized_entry, sha256)

OTHER_FRAMES = tuple(range(41, 200, 6))   # odd frames: neither calibration (40+4k) nor evaluation (42+4k)


@pytest.fixture(scope="module")
def manifest() -> dict:
    try:
        m = load_manifest(DEFAULT_OUT)
    except FileNotFoundError as exc:
        pytest.fail(f"{exc}\n(run `{BUILD_COMMAND}` before the tests)")
    if "quantized" not in m:
        pytest.fail(f"{DEFAULT_OUT}/manifest.json has no 'quantized' section: built by an older step; "
                    f"run `{BUILD_COMMAND}`")
    if quantized_entry(m) is None:
        pytest.skip(f"the build made no int8 model: {m['quantized'].get('skipped')}")
    return m


def _measure(frames_idx):
    from runtime.vision.pose_build import quantize as q
    from runtime.vision.pose_build import quantized_path

    frames = q.demo_frames(frames_idx)
    return q.agreement(DEFAULT_OUT, quantized_path(DEFAULT_OUT), frames)


def test_int8_recorded_with_hash_and_recipe(manifest):
    e = quantized_entry(manifest)
    assert e["onnx_sha256"] == sha256(DEFAULT_OUT / e["onnx"])
    full = manifest["models"]["pose_landmark_full"]["onnx"]
    assert e["from"] == (manifest[PRUNED_NAME]["onnx"] if manifest[PRUNED_NAME]["accepted"] else full)
    assert e["quantization"]["weight_type"] == "QInt8" and e["quantization"]["quant_format"] == "QDQ"
    assert 40 <= e["quantization"]["calibration_crops"] <= len(e["calibration_frames"]) == 50
    assert not set(e["calibration_frames"]) & set(e["eval_frames"])
    assert e["limits_px"] == {"median": 1.0, "p95": 3.0}
    assert "fp16" in manifest["quantized"]   # the reason fp16 is not built here


def test_agreement_measured_and_verdict_follows_it(manifest):
    from runtime.vision.pose_build import quantize as q

    e = quantized_entry(manifest)
    got = _measure(tuple(e["eval_frames"]))
    for k in ("median_px", "p95_px", "max_px"):   # the build's figures are reproducible
        assert got[k] == pytest.approx(e["agreement_vs_fp32"][k], rel=1e-3, abs=1e-3), (k, got, e)
    ok, reason = q.accepted(got)
    assert e["accepted"] is ok and e["reason"] == reason
    other = _measure(OTHER_FRAMES)
    print(f"int8 vs fp32: eval frames {got}; other frames {other}")
    if ok:   # accepted on the build's frames: must hold on frames it never saw too
        assert other["median_px"] <= q.MAX_MEDIAN_PX and other["p95_px"] <= q.MAX_P95_PX, other
    assert got["frames"] >= 25 and other["frames"] >= 20


def test_auto_uses_int8_only_when_accepted(manifest):
    from runtime.vision.pose_onnx import OnnxPose

    auto = OnnxPose(provider="cpu", landmark_model="auto")
    fallback = "nosegm" if pruned_entry(manifest)["accepted"] else "fp32"
    assert auto.landmark_model == ("int8" if quantized_entry(manifest)["accepted"] else fallback)
    int8 = OnnxPose(provider="cpu", landmark_model="int8")
    assert int8.landmark_model == "int8"
    assert int8.model_sha256["pose_landmark_full"] == quantized_entry(manifest)["onnx_sha256"]
    assert int8.provider == "CPUExecutionProvider"
    x = np.random.default_rng(0).uniform(0, 1, (1, 256, 256, 3)).astype(np.float32)
    out = int8.landmark_runner(x)
    assert len(out) == 5 and np.asarray(out[0]).shape == (1, 195) and np.all(np.isfinite(out[0]))
    with pytest.raises(ValueError, match="landmark_model"):
        OnnxPose(provider="cpu", landmark_model="int4")


def test_tampered_or_missing_int8_rejected(manifest, tmp_path):
    from runtime.vision.pose_onnx import OnnxPose

    for f in DEFAULT_OUT.iterdir():
        if f.suffix in (".onnx", ".json"):
            shutil.copy(f, tmp_path / f.name)
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["quantized"][QUANTIZED_NAME]["onnx_sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="onnx_sha256"):
        OnnxPose(tmp_path, provider="cpu", landmark_model="int8")
    m["quantized"] = {"skipped": "no demo footage to calibrate on: test"}
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(FileNotFoundError, match="no demo footage"):
        OnnxPose(tmp_path, provider="cpu", landmark_model="int8")
    auto = OnnxPose(tmp_path, provider="cpu", landmark_model="auto").landmark_model
    assert auto == ("nosegm" if pruned_entry(m)["accepted"] else "fp32")
    del m[PRUNED_NAME]   # a manifest from before the pruned model: fp32, and "nosegm" names the build command
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    assert OnnxPose(tmp_path, provider="cpu", landmark_model="auto").landmark_model == "fp32"
    with pytest.raises(FileNotFoundError, match="pose_build"):
        OnnxPose(tmp_path, provider="cpu", landmark_model="nosegm")


def test_nosegm_recorded_and_same_landmarks(manifest):
    """The segmentation-free model: recorded with its hash, smaller, and the same landmarks as the full model on
    demo frames the build never compared (the tracker's own ROIs)."""
    from runtime.vision.pose_build import pruned_path
    from runtime.vision.pose_build import quantize as q
    from runtime.vision.pose_onnx import OnnxPose

    e = pruned_entry(manifest)
    assert e is not None, f"no {PRUNED_NAME} entry: rebuild with `{BUILD_COMMAND}`"
    assert e["onnx_sha256"] == sha256(DEFAULT_OUT / e["onnx"]) and e["from"] == "pose_landmark_full.onnx"
    assert e["dropped_outputs"] == ["Identity_2"] and e["kept_outputs"] == ["Identity", "Identity_1", "Identity_3",
                                                                             "Identity_4"]
    assert e["nodes_after"] < e["nodes_before"] and e["removed_ops"].get("Resize", 0) >= 1
    assert e["accepted"] is (max(e["random_input_max_abs_diff_vs_full"].values()) <= e["max_abs_diff_limit"])
    got = q.agreement(DEFAULT_OUT, pruned_path(DEFAULT_OUT), q.demo_frames(OTHER_FRAMES))
    print(f"nosegm vs fp32 on other frames: {got}")
    assert got["frames"] >= 20
    if e["accepted"]:
        assert got["max_px"] <= 1e-6 and got["score_max_abs"] <= 1e-6, got
    pose = OnnxPose(provider="cpu", landmark_model="nosegm")
    assert [o.name for o in pose.sessions["pose_landmark_full"].get_outputs()] == e["kept_outputs"]
    out = pose.landmark_runner(np.random.default_rng(1).uniform(0, 1, (1, 256, 256, 3)).astype(np.float32))
    assert len(out) == 5 and out[2] is None and np.asarray(out[3]).shape == (1, 64, 64, 39)


def test_fp16_only_on_a_gpu():
    import onnxruntime as ort

    gpu = {"TensorrtExecutionProvider", "CUDAExecutionProvider"} & set(ort.get_available_providers())
    if not gpu:
        pytest.skip("fp16 runs only where a GPU runs it (TensorRT's trt_fp16 / CUDA); this onnxruntime offers "
                    f"{ort.get_available_providers()}")
    from runtime.vision.pose_onnx import OnnxPose

    p = OnnxPose(trt_fp16=True)
    assert p.provider in gpu, p.provider

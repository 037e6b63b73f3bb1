"""The build step's pieces that run without tensorflow: sparse-weight decoding, arguments, missing artefacts."""
from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from runtime.vision.pose_build import REPO, load_manifest, onnx_path
from runtime.vision.pose_build.convert_tflite import _decode_sparse


def _dim(fmt, dense_size=0, segments=None, indices=None):
    return SimpleNamespace(format=fmt, denseSize=dense_size,
                           arraySegments=None if segments is None else SimpleNamespace(values=segments),
                           arrayIndices=None if indices is None else SimpleNamespace(values=indices))


def test_decode_sparse_csr_hand_checked():
    # dense (2, 4): row 0 = [0, 1.5, 0, -2], row 1 = [3, 0, 0, 0]; dim 0 dense, dim 1 CSR
    values = np.array([1.5, -2.0, 3.0], np.float16)
    tensor = SimpleNamespace(name="w", shape=[2, 4], sparsity=SimpleNamespace(
        traversalOrder=[0, 1], blockMap=None,
        dimMetadata=[_dim(0, dense_size=2), _dim(1, segments=[0, 2, 3], indices=[1, 3, 0])]))
    dense = _decode_sparse(tensor, values.tobytes(), np.float16)
    np.testing.assert_array_equal(dense, np.array([[0, 1.5, 0, -2], [3, 0, 0, 0]], np.float16))


def test_decode_sparse_like_detector_layout():
    # the detector's layout: (O, 1, 1, I) with three dense dims and the last one CSR
    rng = np.random.default_rng(3)
    full = rng.normal(size=(3, 1, 1, 5)).astype(np.float16)
    full[np.abs(full) < 0.6] = 0
    flat = full.reshape(3, 5)
    seg, idx, vals = [0], [], []
    for row in flat:
        nz = np.flatnonzero(row)
        idx += nz.tolist()
        vals += row[nz].tolist()
        seg.append(len(idx))
    tensor = SimpleNamespace(name="w", shape=[3, 1, 1, 5], sparsity=SimpleNamespace(
        traversalOrder=[0, 1, 2, 3], blockMap=None,
        dimMetadata=[_dim(0, 3), _dim(0, 1), _dim(0, 1), _dim(1, segments=seg, indices=idx)]))
    out = _decode_sparse(tensor, np.array(vals, np.float16).tobytes(), np.float16)
    np.testing.assert_array_equal(out, full)


def test_decode_sparse_rejects_block_sparse():
    tensor = SimpleNamespace(name="w", shape=[2, 2], sparsity=SimpleNamespace(
        traversalOrder=[0, 1], blockMap=[0], dimMetadata=[]))
    with pytest.raises(ValueError, match="block-sparse"):
        _decode_sparse(tensor, b"", np.float16)


def test_missing_build_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m runtime.vision.pose_build"):
        load_manifest(tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m runtime.vision.pose_build"):
        onnx_path("pose_detection", tmp_path)


def test_bad_opset_exit_2():
    proc = subprocess.run([sys.executable, "-m", "runtime.vision.pose_build", "--opset", "3", "--out", "/nonexistent"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "--opset: 3" in proc.stderr

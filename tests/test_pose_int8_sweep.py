"""The int8 recipe sweep (``python -m runtime.vision.pose_build.int8_sweep``): its worker's input check, its
quantise-and-compare core on a few crops, and the table it prints."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from runtime.vision.pose_build import DEFAULT_BUILD_VENV, DEFAULT_OUT, REPO
from runtime.vision.pose_build.int8_sweep import WORKER, table

PY = DEFAULT_BUILD_VENV / "bin" / "python"


def _build_venv_or_skip():
    if not PY.exists():
        pytest.skip(f"no build venv at {DEFAULT_BUILD_VENV} (made by `make pose-models`)")


def test_table_gives_each_recipe_its_verdict():
    res = {"fp32": {"cpu_ms_p50": 8.9},
           "a": {"px_vs_fp32": {"demo_eval": {"median_px": 0.5, "p95_px": 2.0}}, "cpu_ms_p50": 9.1, "passes_gate": True},
           "b": {"px_vs_fp32": {"demo_eval": {"median_px": 2.6, "p95_px": 26.0}}, "cpu_ms_p50": 4.7, "passes_gate": False},
           "block_sensitivity": {"block 0": {"sensitivity": {"median_px": 3.1, "p95_px": 54.0}}}}
    rows = table(res)
    assert rows[0].startswith("fp32") and "8.9 ms" in rows[0]
    assert rows[1].startswith("a") and rows[1].endswith("PASS") and "demo_eval 0.50/2.00" in rows[1]
    assert rows[2].startswith("b") and rows[2].endswith("fail") and "cpu 4.7 ms" in rows[2]
    assert rows[3] == "block 0: sensitivity 3.10/54.00 px"


def test_worker_rejects_incomplete_data(tmp_path):
    _build_venv_or_skip()
    data = tmp_path / "crops.npz"
    np.savez(data, calibration=np.zeros((2, 1, 256, 256, 3), np.float32))
    proc = subprocess.run([str(PY), str(WORKER), "--model", "x.onnx", "--data", str(data), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 2 and "--data" in proc.stderr and "demo_eval_x" in proc.stderr


def test_sweep_core_zero_for_fp32_nonzero_for_int8(tmp_path):
    """On 4 random crops: the fp32 model against itself is 0 px, all-int8 is not, and CPU time is measured."""
    _build_venv_or_skip()
    from runtime.vision.pose_build import pruned_path

    try:
        model = pruned_path(DEFAULT_OUT)
    except (FileNotFoundError, ValueError) as exc:
        pytest.skip(str(exc))
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (4, 1, 256, 256, 3)).astype(np.float32)
    roi = np.tile([[500.0, 400.0, 600.0, 0.1]], (4, 1))
    np.savez(tmp_path / "crops.npz", calibration=x, sensitivity_x=x[:2], sensitivity_roi=roi[:2], demo_eval_x=x[2:],
             demo_eval_roi=roi[2:])
    code = (
        "import sys, json, numpy as np; from pathlib import Path\n"
        "from runtime.vision.pose_build.int8_sweep_worker import Sweep\n"
        f"s = Sweep(Path({str(model)!r}), dict(np.load({str(tmp_path / 'crops.npz')!r})), Path({str(tmp_path)!r}))\n"
        "q = Path(s.tmp) / 'q.onnx'; s.quantize(q)\n"
        "print(json.dumps({'self': s.px(s.model, ['demo_eval']), 'int8': s.px(q, ['demo_eval']), 'cpu': s.cpu_ms(q, 3)}))\n")
    proc = subprocess.run([str(PY), "-c", code], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES=""))
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["self"]["demo_eval"] == {"median_px": 0.0, "p95_px": 0.0}
    assert got["int8"]["demo_eval"]["p95_px"] > 0.0 and got["cpu"] > 0.0
    print(got, file=sys.stderr)

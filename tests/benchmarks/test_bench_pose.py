"""Per-frame BlazePose latency on this CPU, next to the 16.6 ms budget of a 60 Hz frame.

Backends: ONNX Runtime (the built models, ``python -m runtime.vision.pose_build``; the provider it picks here),
the original ``.tflite`` through ai-edge-litert (reference; same pre/post-processing), and MediaPipe's
legacy solution (``mp.solutions.pose``, model_complexity 1) when importable.

Cases per backend, on real frames of the ``sports2d`` demo (1768×994) with a person in view:

* ``detector``: letterbox + 224×224 detector + anchor decoding + NMS + ROI;
* ``landmarks``: 256×256 ROI crop + landmark model + heatmap refinement + projection;
* ``detect+landmarks``: a whole frame with the detector (tracking reset each frame: the worst case);
* ``tracking``: a whole frame while the ROI is tracked (the detector skipped: the steady state).

Median and minimum per call (the machine is shared: the minimum is the figure with the CPU free); the table
at the end gives each as a ratio of the 16.6 ms budget, with the load average.
Written to ``.benchmarks/pose_latency.json``.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import pytest

BUDGET_S = 1.0 / 60.0
SPREAD = tuple(range(60, 201, 20))   # frames far apart: detector cases
RUN = tuple(range(100, 130))         # one second of consecutive frames: tracking cases
BENCH = dict(min_rounds=15, max_time=3.0, warmup=True, warmup_iterations=3)
_RESULTS: dict[tuple[str, str], tuple[float, float]] = {}   # (backend, case) -> (median s, min s)


@pytest.fixture(scope="module")
def video() -> dict[int, np.ndarray]:
    import cv2

    from _support import footage_or_skip

    wanted = set(SPREAD) | set(RUN)
    cap = cv2.VideoCapture(str(footage_or_skip("sports2d_demo_video")))
    out, i = {}, 0
    while i <= max(wanted):
        ok, bgr = cap.read()
        if not ok:
            break
        if i in wanted:
            out[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        i += 1
    cap.release()
    assert set(out) == wanted, "could not read the sports2d demo frames"
    return out


@pytest.fixture(scope="module", autouse=True)
def latency_table(request):
    yield
    if not _RESULTS:
        return
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = [f"{'backend':<20}{'case':<18}{'median ms':>10}{'x 16.6 ms':>10}{'min ms':>9}{'x 16.6 ms':>10}",
            *(f"{b:<20}{c:<18}{med * 1e3:>10.2f}{med / BUDGET_S:>10.2f}{lo * 1e3:>9.2f}{lo / BUDGET_S:>10.2f}"
              for (b, c), (med, lo) in _RESULTS.items()),
            f"load average at the end: {load:.2f} on {os.cpu_count()} CPUs (min ≈ the CPU free, median = as shared)"]
    tr = request.config.pluginmanager.getplugin("terminalreporter")
    if tr is not None:
        tr.section("BlazePose per-frame latency ('x 16.6 ms' = fraction of a 60 Hz frame's budget)")
        for line in rows:
            tr.write_line(line)
    out = Path(".benchmarks")
    out.mkdir(exist_ok=True)
    (out / "pose_latency.json").write_text(json.dumps(
        {"budget_ms": BUDGET_S * 1e3, "machine": platform.platform(), "cpus": os.cpu_count(), "load_average": load,
         "cases": [{"backend": b, "case": c, "median_ms": m * 1e3, "x_budget": m / BUDGET_S, "min_ms": lo * 1e3,
                    "min_x_budget": lo / BUDGET_S} for (b, c), (m, lo) in _RESULTS.items()]}, indent=2))


def _backend(kind: str):
    if kind == "onnx":
        from runtime.vision.pose_build import DEFAULT_OUT, load_manifest
        from runtime.vision.pose_onnx import OnnxPose

        try:
            load_manifest(DEFAULT_OUT)
        except FileNotFoundError as exc:
            pytest.fail(str(exc))
        return OnnxPose()
    from runtime.vision.pose_litert import LiteRtPose

    return LiteRtPose()


def _ping_pong(n: int):
    """0, 1, .., n-1, n-2, .., 1, 0, 1, ..: consecutive frames forth and back (no jump for the tracker)."""
    while True:
        yield from range(n)
        yield from range(n - 2, 0, -1)


def _record(benchmark, backend: str, case: str) -> None:
    med, lo = benchmark.stats.stats.median, benchmark.stats.stats.min
    _RESULTS[(backend, case)] = (med, lo)
    benchmark.extra_info["median_ms"] = med * 1e3
    benchmark.extra_info["x_budget_16.6ms"] = med / BUDGET_S


@pytest.mark.benchmark(group="pose per frame", **BENCH)
@pytest.mark.parametrize("case", ["detector", "landmarks", "detect+landmarks", "tracking"])
@pytest.mark.parametrize("kind", ["onnx", "litert"])
def test_pose_latency(benchmark, video, kind, case):
    pose = _backend(kind)
    frames = [video[i] for i in (RUN if case == "tracking" else SPREAD)]
    rois = [] if case == "tracking" else [found[0][1] if (found := pose.detect(f)) else None for f in frames]
    assert all(r is not None for r in rois), "the detector found nobody in a benchmark frame"
    it = _ping_pong(len(frames))

    if case == "detector":
        def fn():
            return pose.detect(frames[next(it)])
    elif case == "landmarks":
        def fn():
            k = next(it)
            return pose.landmarks(frames[k], rois[k])
    elif case == "detect+landmarks":
        def fn():
            pose.reset()
            return pose.infer(frames[next(it)], 0)
    else:
        pose.reset()

        def fn():
            return pose.infer(frames[next(it)], 0)
    result = benchmark(fn)
    assert result is not None
    if case == "tracking":
        assert result.extras["roi_source"] == "tracking"
    _record(benchmark, getattr(pose, "name", kind), case)


@pytest.mark.benchmark(group="pose per frame", **BENCH)
@pytest.mark.parametrize("case", ["detect+landmarks", "tracking"])
def test_mediapipe_legacy_latency(benchmark, video, case):
    mp = pytest.importorskip("mediapipe")
    frames = [video[i] for i in (RUN if case == "tracking" else SPREAD)]
    pose = mp.solutions.pose.Pose(static_image_mode=(case == "detect+landmarks"), model_complexity=1,
                                  smooth_landmarks=False)
    it = _ping_pong(len(frames))
    try:
        result = benchmark(lambda: pose.process(frames[next(it)]))
    finally:
        pose.close()
    assert result.pose_landmarks is not None
    _record(benchmark, "mediapipe-legacy", case)

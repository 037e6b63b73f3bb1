"""Per-frame cost of the reference vision front end on this CPU, next to a 60 Hz frame's budget.

Frames: the sports2d demo (1768×994), cycled. Each case stores ``median_ms`` and
``x_budget`` (median / 16.67 ms) in ``extra_info``. Cases:

* ``mediapipe-video``: MediaPipe's legacy graph, full frame, its own ROI tracking (detector only
  when it has lost the person) — the cheapest path, but it follows whoever its ROI slides onto;
* ``mediapipe-roi``: the static graph on one person's ROI crop (detector + landmarks on the crop);
* ``detector-tiled`` / ``detector-whole``: the BlazePose detector over all people (ai-edge-litert),
  with the overlapping tiles the tracker and anonymiser use, or on the whole frame only;
* ``anonymise``: face detectors (short + full range) + tiled person detector + blur;
* ``track``: one prompted-tracker update (detector + pose on the candidate ROIs + association).
"""
from __future__ import annotations

import itertools

import pytest

pytest.importorskip("mediapipe")

BUDGET_S = 1.0 / 60.0
BENCH = dict(min_rounds=15, max_time=3.0, warmup=False)


@pytest.fixture(scope="module")
def frames():
    from _support import footage_or_skip
    from runtime.vision.frame_sources import VideoFileSource

    with VideoFileSource(footage_or_skip("sports2d_demo_video"), start=60, stop=180, step=4) as src:
        return [f for f in src]


def _note(benchmark) -> None:
    med = benchmark.stats.stats.median
    benchmark.extra_info["median_ms"] = med * 1e3
    benchmark.extra_info["budget_ms"] = BUDGET_S * 1e3
    benchmark.extra_info["x_budget"] = med / BUDGET_S


@pytest.mark.benchmark(group="pose reference (per frame)", **BENCH)
def test_mediapipe_video_mode(benchmark, frames):
    from runtime.vision.pose_mediapipe import MediaPipePose

    pose = MediaPipePose()
    it = itertools.cycle(frames)
    pose.infer(frames[0].image, 0)  # graph start-up outside the timing
    benchmark(lambda: pose.infer(next(it).image, 0))
    pose.close()
    _note(benchmark)


@pytest.mark.benchmark(group="pose reference (per frame)", **BENCH)
def test_mediapipe_roi(benchmark, frames):
    from runtime.vision.pose_mediapipe import MediaPipePose
    from runtime.vision.pose_types import BoundingBox

    pose = MediaPipePose()
    man = BoundingBox(540, 20, 760, 480)  # the man on the box (frames 60-180)
    it = itertools.cycle(frames)
    pose.infer(frames[0].image, 0, man)
    benchmark(lambda: pose.infer(next(it).image, 0, man))
    pose.close()
    _note(benchmark)


@pytest.mark.benchmark(group="pose reference (per frame)", **BENCH)
@pytest.mark.parametrize("tiles", [True, False], ids=["detector-tiled", "detector-whole"])
def test_person_detector(benchmark, frames, tiles):
    from runtime.vision.pose_mediapipe import PoseDetector

    det = PoseDetector(tiles=tiles)
    it = itertools.cycle(frames)
    benchmark(lambda: det.detect(next(it).image))
    _note(benchmark)


@pytest.mark.benchmark(group="pose reference (per frame)", **BENCH)
def test_anonymise(benchmark, frames):
    from runtime.vision.anonymise import Anonymiser

    anon = Anonymiser()
    it = itertools.cycle(frames)
    anon.anonymize(frames[0].image, 0)
    benchmark(lambda: anon.anonymize(next(it).image, 0))
    anon.close()
    _note(benchmark)


@pytest.mark.benchmark(group="pose reference (per frame)", **BENCH)
def test_track_update(benchmark, frames):
    from runtime.vision.pose_mediapipe import MediaPipePose, PoseDetector
    from runtime.vision.pose_types import BoundingBox
    from runtime.vision.tracking import PromptedTracker

    tracker = PromptedTracker(MediaPipePose(), PoseDetector())
    woman = BoundingBox(1150, 500, 1500, 990)  # the woman at frame 60
    tracker.start(frames[0].image, frames[0].index, 0, woman)
    rest = iter(frames[1:])
    state = {"f": None}

    def setup():
        f = next(rest)
        state["f"] = f
        return (), {}

    def step():
        f = state["f"]
        return tracker.update(f.image, f.index, 0)

    benchmark.pedantic(step, setup=setup, rounds=min(15, len(frames) - 1), iterations=1)
    _note(benchmark)
    benchmark.extra_info["tracked"] = sum(1 for h in tracker.history if h.status == "tracked")

"""``exo footage``, ``exo anonymise`` and ``exo track`` end to end on a few frames of the real demo."""
from __future__ import annotations

import csv
import json
import subprocess

import pytest

pytest.importorskip("mediapipe")
cv2 = pytest.importorskip("cv2")

from _support import exo_cmd, footage_or_skip  # noqa: E402


@pytest.fixture(scope="module")
def demo(sports2d_video) -> str:
    return str(sports2d_video)


def _exo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*exo_cmd(), *args], capture_output=True, text=True, timeout=timeout)


def test_footage_lists_cached_videos():
    footage_or_skip("fetch_all")      # in the cache (or fetched once) before the command lists it
    r = _exo("footage", "--json")
    assert r.returncode == 0, r.stderr
    listing = json.loads(r.stdout)["footage"]
    demo = listing["sports2d"][0]
    assert (demo["width"], demo["height"], demo["fps"], demo["frames"]) == (1768, 994, 30.0, 230)
    assert len(listing["pose2sim_single_person"]) == 6


def test_anonymise_writes_only_blurred_frames(demo, tmp_path):
    out = tmp_path / "anon.mp4"
    r = _exo("anonymise", demo, "--out", str(out), "--start", "100", "--stop", "109", "--step", "4")
    assert r.returncode == 0, r.stderr
    assert "anonymised 3 frame(s)" in r.stdout and "person-head" in r.stdout
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    ok, first = cap.read()
    cap.release()
    src = cv2.VideoCapture(demo)
    src.set(cv2.CAP_PROP_POS_FRAMES, 100)
    _, raw = src.read()
    src.release()
    # the woman's head (read off frame 100) is blurred: little texture left compared with the input
    y0, y1, x0, x1 = 520, 610, 975, 1045
    lap = lambda img: cv2.Laplacian(cv2.cvtColor(img[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()  # noqa: E731
    assert lap(first) < 0.2 * lap(raw)
    r = _exo("anonymise", demo, "--out", str(tmp_path / "x.avi"))
    assert r.returncode == 2 and "--out: must be an .mp4 file" in r.stderr


def test_track_outputs(demo, tmp_path):
    out = tmp_path / "track"
    r = _exo("track", demo, "--bbox", "1400,500,1700,990", "--start-frame", "40", "--stop", "61", "--step", "5",
             "--describe", "woman 60kg 165cm, occlusion", "--out", str(out))
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "track.json").read_text())
    assert summary["frames"] == 5 and summary["tracked"] == 5 and summary["lost_frames"] == []
    assert summary["subject"] == {"height_m": 1.65, "mass_kg": 60.0, "sex": "female", "words": []}
    assert summary["interaction"] == ["occlusion"]
    with open(out / "landmarks.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in rows] == [40, 45, 50, 55, 60]
    assert float(rows[1]["time_s"]) == pytest.approx(45 / 30.0, abs=1e-3)
    assert all(r["status"] == "tracked" for r in rows)
    assert 1350 < float(rows[0]["left_hip_x_px"]) < 1600 and float(rows[0]["left_hip_y_px"]) > 600
    assert len(rows[0]) == 7 + 33 * 6
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    ok, first = cap.read()
    cap.release()
    src = cv2.VideoCapture(demo)
    src.set(cv2.CAP_PROP_POS_FRAMES, 40)
    _, raw = src.read()
    src.release()
    # the bystander (the man on the box, not the tracked person) has his head blurred from the first frame on:
    # his head landmarks span x 620-647, y 109-123 at frame 40
    y0, y1, x0, x1 = 95, 140, 610, 660
    lap = lambda img: cv2.Laplacian(cv2.cvtColor(img[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()  # noqa: E731
    assert ok and lap(first) < 0.2 * lap(raw)


@pytest.mark.parametrize("args,message", [
    (["--bbox", "1400,500,1300,990"], "bbox.x1: must be greater than x0=1400, got 1300"),
    (["--bbox", "1400,500,1700,1000"], "bbox.y: 500..1000 is outside the frame height 0..994"),
    (["--bbox", "1,2,3,4", "--describe", "woman 900 kg"], "description.mass: '900 kg' = 900 kg is outside"),
    (["--bbox", "1,2,3,4", "--step", "0"], "--step: must be ≥ 1, got 0"),
])
def test_track_bad_input_exit_2(demo, tmp_path, args, message):
    r = _exo("track", demo, *args, "--out", str(tmp_path / "t"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr

"""2-D keypoint input (issue 17): the CSV reader/writer, OpenPose-style JSON folders, and bad input refused
with a message naming the file, line and column. Fixtures are written into ``tmp_path``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.body.blazepose import BLAZEPOSE_33
from models.io.keypoints2d import (
    BODY_25_TO_BLAZEPOSE,
    COCO_17_TO_BLAZEPOSE,
    HALPE_26_TO_BLAZEPOSE,
    Keypoints2D,
    KeypointsError,
    read_keypoints2d,
    read_keypoints_csv,
    read_openpose_folder,
    write_keypoints_csv,
)

IDX = {n: i for i, n in enumerate(BLAZEPOSE_33)}


def _random_keypoints(n: int = 7, seed: int = 3) -> Keypoints2D:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0.0, 1900.0, (n, 33, 2))
    score = rng.uniform(0.05, 1.0, (n, 33))
    score[:, :11] = 0.0  # face not detected
    score[2, IDX["left_knee"]] = 0.0
    xy[4, IDX["right_heel"]] = np.nan
    return Keypoints2D(time_s=12.5 + np.arange(n) / 60.0, xy_px=xy, score=score, image_size=(1920, 1080), source="test")


def test_csv_round_trip_is_bit_exact(tmp_path: Path) -> None:
    kp = _random_keypoints()
    path = write_keypoints_csv(tmp_path / "kp.csv", kp)
    back = read_keypoints_csv(path)
    np.testing.assert_array_equal(back.time_s, kp.time_s)
    np.testing.assert_array_equal(back.xy_px, kp.xy_px)
    np.testing.assert_array_equal(back.score, kp.score)
    assert back.image_size == (1920, 1080)
    assert back.time_s[0] == 12.5  # not re-zeroed
    # not detected: NaN pixels and score 0, whichever of the two the input said
    assert back.score[4, IDX["right_heel"]] == 0.0
    assert np.all(np.isnan(back.xy_px[2, IDX["left_knee"]]))
    assert np.all(np.isnan(back.xy_px[:, :11]))
    assert read_keypoints2d(path).n_frames == 7


def test_csv_missing_columns_empty_cells_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    path.write_text(
        "# from some detector\n"
        "time_s,left_knee_x_px,left_knee_y_px,left_knee_score,left_hip_score,left_hip_x_px,left_hip_y_px\n"
        "0.5,100,200,0.9,0.8,110,150\n"
        "# a comment between rows\n"
        "0.6,,,,0.7,111,151\n"
    )
    kp = read_keypoints_csv(path)
    np.testing.assert_array_equal(kp.time_s, [0.5, 0.6])
    np.testing.assert_array_equal(kp.xy_px[0, IDX["left_knee"]], [100.0, 200.0])
    np.testing.assert_array_equal(kp.xy_px[1, IDX["left_hip"]], [111.0, 151.0])
    assert kp.score[0, IDX["left_hip"]] == 0.8
    assert kp.score[1, IDX["left_knee"]] == 0.0 and np.all(np.isnan(kp.xy_px[1, IDX["left_knee"]]))
    # columns absent altogether = not detected in every frame
    assert np.all(kp.score[:, IDX["right_ankle"]] == 0.0)
    assert kp.image_size is None


def _expect(path: Path, text: str, *fragments: str) -> KeypointsError:
    path.write_text(text)
    with pytest.raises(KeypointsError) as info:
        read_keypoints_csv(path)
    msg = str(info.value)
    assert str(path) in msg
    for frag in fragments:
        assert frag in msg, msg
    return info.value


def test_csv_unknown_landmarks_are_listed(tmp_path: Path) -> None:
    err = _expect(
        tmp_path / "bad.csv",
        "# header follows\ntime_s,left_knee_x_px,left_knee_y_px,left_knee_score,lft_hip_x_px,neck_score\n0,1,2,0.5,3,0.1\n",
        "line 2", "column 5", "'lft_hip_x_px'", "'neck_score'", "did you mean 'left_hip'",
    )
    assert err.line == 2 and err.column == 5


def test_csv_non_monotonic_time_refused(tmp_path: Path) -> None:
    err = _expect(
        tmp_path / "time.csv",
        "time_s,nose_x_px,nose_y_px,nose_score\n0.0,1,1,1\n0.1,1,1,1\n0.1,1,1,1\n",
        "line 4", "column 1", "not strictly increasing", "line 3",
    )
    assert err.line == 4 and err.column == 1


def test_csv_non_numeric_cell_refused(tmp_path: Path) -> None:
    err = _expect(
        tmp_path / "nan.csv",
        "time_s,nose_x_px,nose_y_px,nose_score\n0.0,1,1,1\n0.1,1,abc,1\n",
        "line 3", "column 3", "nose_y_px", "'abc'",
    )
    assert err.column == 3


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("nose_x_px,nose_y_px,nose_score\n1,1,1\n", ("line 1", "no 'time_s' column")),
        ("time_s,nose_x_px,nose_y_px\n0,1,1\n", ("line 1", "'nose'", "nose_score")),
        ("time_s,nose_x_px,nose_y_px,nose_score,nose_score\n0,1,1,1,1\n", ("line 1", "column 5", "duplicate")),
        ("time_s,nose_x_px,nose_y_px,nose_score\n0,1,1\n", ("line 2", "3 cells, the header has 4")),
        ("time_s,nose_x_px,nose_y_px,nose_score\n0,1,1,1.5\n", ("line 2", "column 4", "outside [0, 1]")),
        ("time_s,nose_x_px,nose_y_px,nose_score\n0,1,,1\n", ("line 2", "column 3", "x/y")),
        ("time_s,nose_x_px,nose_y_px,nose_score\n,1,1,1\n", ("line 2", "column 1", "empty")),
        ("time_s,nose_x_px,nose_y_px,nose_score\ninf,1,1,1\n", ("line 2", "column 1", "not finite")),
        ("# only a comment\n", ("no header",)),
        ("time_s,nose_x_px,nose_y_px,nose_score\n", ("no data rows",)),
        ("# image_size_px: 1920 x\ntime_s\n0\n", ("line 1", "image_size_px")),
    ],
)
def test_csv_other_bad_input(tmp_path: Path, text: str, fragments: tuple[str, ...]) -> None:
    _expect(tmp_path / "x.csv", text, *fragments)


def test_missing_path_and_single_json_refused(tmp_path: Path) -> None:
    with pytest.raises(KeypointsError, match="no such file"):
        read_keypoints2d(tmp_path / "absent.csv")
    one = tmp_path / "f_0_keypoints.json"
    one.write_text('{"people": []}')
    with pytest.raises(KeypointsError, match="pass the folder"):
        read_keypoints2d(one, fps=30)


def test_landmark_lookup() -> None:
    kp = _random_keypoints()
    xy, sc = kp.landmark("right_heel")
    np.testing.assert_array_equal(xy, kp.xy_px[:, IDX["right_heel"]])
    np.testing.assert_array_equal(sc, kp.score[:, IDX["right_heel"]])
    with pytest.raises(KeyError, match="right_heel"):
        kp.landmark("rigth_heel")


# ---------------------------------------------------------------- OpenPose JSON


def _person(n_points: int, rng: np.random.Generator, conf: float) -> tuple[list[float], np.ndarray]:
    pts = np.column_stack([rng.uniform(10, 1900, n_points), rng.uniform(10, 1070, n_points), np.full(n_points, conf)])
    return pts.ravel().tolist(), pts


def _write_frames(folder: Path, n_points: int, n_frames: int, first: int = 0) -> list[np.ndarray]:
    """One JSON per frame; frame 1 has two people (the second is the more confident), frame 2 none."""
    folder.mkdir()
    rng = np.random.default_rng(n_points)
    chosen = []
    for i in range(n_frames):
        flat, pts = _person(n_points, rng, 0.6)
        people = [{"person_id": [-1], "pose_keypoints_2d": flat}]
        if i == 1:
            flat2, pts2 = _person(n_points, rng, 0.9)
            people.append({"person_id": [-1], "pose_keypoints_2d": flat2})
            pts = pts2
        if i == 2:
            people = []
        chosen.append(pts)
        # numbers not zero-padded, so a plain name sort would misorder frame 10 before 2
        (folder / f"clip_{first + i}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))
    return chosen


@pytest.mark.parametrize(
    "n_points, mapping, name",
    [(25, BODY_25_TO_BLAZEPOSE, "BODY_25"), (17, COCO_17_TO_BLAZEPOSE, "COCO-17"), (26, HALPE_26_TO_BLAZEPOSE, "HALPE-26")],
)
def test_openpose_folder(tmp_path: Path, n_points: int, mapping: dict[int, str], name: str) -> None:
    folder = tmp_path / "json"
    chosen = _write_frames(folder, n_points, 12, first=5)
    kp = read_openpose_folder(folder, fps=30.0)
    np.testing.assert_allclose(kp.time_s, (5 + np.arange(12)) / 30.0, rtol=0, atol=1e-12)
    assert name in kp.source and "several people in 1 of 12 frames" in kp.source
    for i in (0, 1, 10, 11):
        for src, dst in mapping.items():
            np.testing.assert_array_equal(kp.xy_px[i, IDX[dst]], chosen[i][src, :2])
            assert kp.score[i, IDX[dst]] == chosen[i][src, 2]
    mapped = {IDX[d] for d in mapping.values()}
    unmapped = [k for k in range(33) if k not in mapped]
    assert np.all(kp.score[:, unmapped] == 0.0)
    assert np.all(kp.score[2] == 0.0)  # no person in that frame
    assert np.all(kp.score[1, sorted(mapped)] == 0.9)  # the more confident person
    if name == "BODY_25":
        np.testing.assert_array_equal(kp.xy_px[0, IDX["right_heel"]], chosen[0][24, :2])
        np.testing.assert_array_equal(kp.xy_px[0, IDX["left_foot_index"]], chosen[0][19, :2])
        np.testing.assert_array_equal(kp.xy_px[0, IDX["right_hip"]], chosen[0][9, :2])
    if name == "COCO-17":
        np.testing.assert_array_equal(kp.xy_px[0, IDX["left_hip"]], chosen[0][11, :2])
        assert np.all(kp.score[:, IDX["left_heel"]] == 0.0)
    assert read_keypoints2d(folder, fps=30.0).n_frames == 12


def test_openpose_missing_points_nan_and_clipped(tmp_path: Path) -> None:
    folder = tmp_path / "json"
    folder.mkdir()
    pts = np.column_stack([np.full(17, 500.0), np.full(17, 400.0), np.full(17, 0.8)])
    pts[13] = (0.0, 0.0, 0.0)  # OpenPose's "missing"
    pts[14] = (np.nan, np.nan, np.nan)  # Pose2Sim's
    pts[15, 2] = 1.07  # RTMPose SimCC can exceed 1
    (folder / "f_000_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": pts.ravel().tolist()}]}))
    kp = read_openpose_folder(folder, fps=50)
    assert kp.score[0, IDX["left_knee"]] == 0.0 and np.all(np.isnan(kp.xy_px[0, IDX["left_knee"]]))
    assert kp.score[0, IDX["right_knee"]] == 0.0
    assert kp.score[0, IDX["left_ankle"]] == 1.0 and "clipped to 1 in 1" in kp.source
    assert kp.score[0, IDX["right_ankle"]] == 0.8


@pytest.mark.parametrize(
    "content, fragments",
    [
        ('{"people": [{"pose_keypoints_2d": [1, 2, 0.5, 3]}]}', ("4 numbers", "75 (BODY_25)")),
        ('{"people": [{"pose_keypoints_2d": [1, 2, ', ("invalid JSON", "line 1", "column")),
        ('{"persons": []}', ("no 'people' list",)),
        ('{"people": [{"pose_keypoints_2d": ["a", 2, 0.5]}]}', ("non-numeric",)),
    ],
)
def test_openpose_bad_input(tmp_path: Path, content: str, fragments: tuple[str, ...]) -> None:
    folder = tmp_path / "json"
    folder.mkdir()
    bad = folder / "f_000000000003_keypoints.json"
    bad.write_text(content)
    with pytest.raises(KeypointsError) as info:
        read_openpose_folder(folder, fps=30)
    msg = str(info.value)
    assert str(bad) in msg
    for frag in fragments:
        assert frag in msg, msg


def test_openpose_folder_needs_fps_and_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(KeypointsError, match="needs the frame rate"):
        read_keypoints2d(tmp_path / "empty")
    with pytest.raises(KeypointsError, match="no OpenPose JSON files"):
        read_keypoints2d(tmp_path / "empty", fps=30)
    with pytest.raises(KeypointsError, match="fps must be a positive"):
        read_openpose_folder(tmp_path / "empty", fps=0.0)


def test_keypoints2d_refuses_bad_arrays() -> None:
    xy = np.zeros((2, 33, 2))
    with pytest.raises(ValueError, match="xy_px"):
        Keypoints2D(np.array([0.0, 1.0]), np.zeros((2, 32, 2)), np.ones((2, 33)), None, "t")
    with pytest.raises(ValueError, match="not strictly increasing"):
        Keypoints2D(np.array([1.0, 1.0]), xy, np.ones((2, 33)), None, "t")
    with pytest.raises(ValueError, match="score"):
        Keypoints2D(np.array([0.0, 1.0]), xy, np.full((2, 33), 1.2), None, "t")

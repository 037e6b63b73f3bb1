"""``exo analyze --keypoints2d`` (issue 17, part 1): the CSV form and the OpenPose JSON form through the model fit
and the kinematics-only chain, and every refusal (exit 2, the file/line/column named, never a traceback).

Input: a model-generated walk (``models.kinematics.monocular_synthetic``: known coordinates, a level side camera
7 m away, f = 1400 px, 1920x1080, 2 px noise, time stamps starting at 10 s) written as the keypoint CSV and as
BODY_25 JSON files, its camera as a Pose2Sim TOML; no shared data needed.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.body.blazepose import BLAZEPOSE_33
from models.io.keypoints2d import BODY_25_TO_BLAZEPOSE, Keypoints2D, write_keypoints_csv
from models.io.synthetic_keypoints import SyntheticCamera, write_calibration_toml
from runtime.cli.main import main

MASS_KG, HEIGHT_M, FPS = 75.0, 1.8, 60.0
SUBJECT = ["--mass-kg", str(MASS_KG), "--height-m", str(HEIGHT_M), "--side", "left"]


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from models.body.registry import load_model
    from models.body.scaling import SubjectScale, scale_model
    from models.kinematics.monocular_model import LandmarkModel
    from models.kinematics.monocular_synthetic import side_camera, synthetic_walk

    lm = LandmarkModel(scale_model(load_model("myoleg"), SubjectScale(MASS_KG, HEIGHT_M)).model)
    cam = side_camera()
    w = synthetic_walk(lm, cam, duration_s=1.5, fps=FPS)
    d = tmp_path_factory.mktemp("kp2d")
    kp = Keypoints2D(w.time_s, w.xy_px, w.score, (1920, 1080), "synthetic walk")
    csv_path = write_keypoints_csv(d / "walk.csv", kp)
    cal = write_calibration_toml(d / "Calib.toml", SyntheticCamera(cam.K, cam.R_cw, cam.t_cw, (1920, 1080), "cam01"))
    js = d / "json"
    js.mkdir()
    to_body25 = {v: k for k, v in BODY_25_TO_BLAZEPOSE.items()}
    first = round(w.time_s[0] * FPS)
    for k in range(w.time_s.size):
        flat = np.zeros((25, 3))
        for name, j in to_body25.items():
            i = BLAZEPOSE_33.index(name)
            if w.score[k, i] > 0:
                flat[j] = (*w.xy_px[k, i], w.score[k, i])
        doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": flat.reshape(-1).tolist()}]}
        (js / f"walk_{first + k:012d}_keypoints.json").write_text(json.dumps(doc))
    return {"walk": w, "lm": lm, "csv": csv_path, "cal": cal, "json": js, "dir": d}


def _read(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open() as fh:
        rows = list(csv.reader(fh))
    data = np.array([[float(c) if c else np.nan for c in r] for r in rows[1:]])
    return rows[0], data


def _check_outputs(out: Path, w: Any, lm: Any, time_s: np.ndarray) -> None:
    """``time_s``: the times as the reader gave them (the CSV's values; frame / fps for a JSON folder)."""
    from models.trial_analysis import _angle_columns

    header, ang = _read(out / "joint_angles.csv")
    assert header == ["time_s", *_angle_columns(lm.coordinate_names)]   # the marker chain's columns and units
    np.testing.assert_array_equal(ang[:, 0], [float(f"{t:.6g}") for t in time_s])   # input time, not re-zeroed
    assert ang[0, 0] == 10.0
    for j in ("hip_flexion_r", "knee_angle_r", "ankle_angle_r", "knee_angle_l"):
        col = header.index(_angle_columns((j,))[0])
        truth = np.degrees(w.coordinates[:, lm.coordinate_names.index(j)])
        rmse = float(np.sqrt(np.mean((ang[:, col] - truth) ** 2)))
        assert rmse < 5.0, f"{j}: RMSE {rmse:.2f} deg against the generating coordinates"
    qh, q = _read(out / "fit_quality.csv")
    assert qh[:9] == ["time_s", "reprojection_error_mean_px", "reprojection_error_max_px", "landmarks_used_frac",
                      "left_foot_contact", "right_foot_contact", "left_contact_point", "right_contact_point", "converged"]
    assert q.shape[0] == w.time_s.size
    np.testing.assert_array_equal(q[:, 0], time_s)   # written with repr: exact
    assert np.all((q[:, 3] > 0) & (q[:, 3] <= 1))
    assert set(np.unique(q[:, 4:6])) <= {0.0, 1.0} and set(np.unique(q[:, 8])) <= {0.0, 1.0}
    assert np.all(q[:, 2] >= q[:, 1])
    # the 2 px noise: the mean reprojection error per frame is a few px, not tens
    assert 1.0 < float(np.median(q[:, 1])) < 6.0
    # stance found from the 2-D data agrees with the generating walk's stance on most frames
    agree = np.mean((q[:, 4:6] > 0) == w.stance)
    assert agree > 0.7, f"contact agrees with the true stance on {agree:.0%} of foot-frames"
    assert (out / "knee_moments.csv").exists() and (out / "ground_reaction_force.csv").exists()
    doc = json.loads((out / "keypoint_analysis.json").read_text())
    assert doc["fit_quality"]["frames"] == w.time_s.size


def test_csv_with_calibration(walk: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["analyze", "--keypoints2d", str(walk["csv"]), "--calibration", str(walk["cal"]), *SUBJECT,
               "--output", str(tmp_path)])
    assert rc == 0, capsys.readouterr().err
    _check_outputs(tmp_path, walk["walk"], walk["lm"], walk["walk"].time_s)


def test_openpose_json_folder_without_calibration(walk: dict[str, Any], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """BODY_25 files, --fps; no calibration: guessed intrinsics (the true hfov given) and the floor estimated."""
    import math

    hfov = math.degrees(2 * math.atan(960 / 1400))
    rc = main(["analyze", "--keypoints2d", str(walk["json"]), "--fps", str(FPS), "--image-size", "1920x1080",
               "--hfov-deg", repr(hfov), *SUBJECT, "--output", str(tmp_path)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads((tmp_path / "keypoint_analysis.json").read_text())
    assert "camera assumed level" in doc["camera"]["assumption"]
    height = float(doc["camera"]["assumption"].split("level, ")[1].split(" m")[0])
    assert abs(height - 1.0) < 0.1, doc["camera"]["assumption"]   # the generating camera is 1.0 m up
    frames = 600 + np.arange(walk["walk"].time_s.size)
    _check_outputs(tmp_path, walk["walk"], walk["lm"], frames / FPS)


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"
    return err


def test_refuses_unknown_landmark_with_line_and_column(walk: dict[str, Any], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("# a comment\ntime_s,left_knee_x_px,left_knee_y_px,left_knee_score,left_kneee_x_px\n0,1,2,0.9,3\n")
    _refused(["analyze", "--keypoints2d", str(bad), *SUBJECT, "--calibration", str(walk["cal"]),
              "--output", str(tmp_path)], capsys, str(bad), "line 2", "column 5", "left_kneee_x_px", "left_knee")


def test_refuses_non_monotonic_time(walk: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = walk["csv"].read_text().splitlines()
    data = [i for i, ln in enumerate(lines) if ln and ln[0].isdigit()]
    a, b = data[3], data[4]
    lines[a], lines[b] = lines[b], lines[a]
    bad = tmp_path / "swapped.csv"
    bad.write_text("\n".join(lines) + "\n")
    _refused(["analyze", "--keypoints2d", str(bad), *SUBJECT, "--output", str(tmp_path)], capsys,
             str(bad), f"line {b + 1}", "column 1", "not strictly increasing")


def test_refuses_a_dropped_frame(walk: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = walk["csv"].read_text().splitlines()
    data = [i for i, ln in enumerate(lines) if ln and ln[0].isdigit()]
    del lines[data[20]]
    bad = tmp_path / "gap.csv"
    bad.write_text("\n".join(lines) + "\n")
    _refused(["analyze", "--keypoints2d", str(bad), *SUBJECT, "--calibration", str(walk["cal"]),
              "--output", str(tmp_path)], capsys, str(bad), "frame 19", "dropped frame")


def test_refuses_calibration_with_several_cameras(walk: dict[str, Any], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    text = walk["cal"].read_text()
    table = text.split("[metadata]")[0]
    two = tmp_path / "two.toml"
    two.write_text(table + table.replace("[cam01]", "[cam02]").replace('"cam01"', '"cam02"') + "[metadata]\nadjusted = false\n")
    _refused(["analyze", "--keypoints2d", str(walk["csv"]), "--calibration", str(two), *SUBJECT,
              "--output", str(tmp_path)], capsys, str(two), "2 cameras", "cam01, cam02", "--camera")
    _refused(["analyze", "--keypoints2d", str(walk["csv"]), "--calibration", str(two), "--camera", "cam09", *SUBJECT,
              "--output", str(tmp_path)], capsys, str(two), "no camera 'cam09'")


def test_refuses_calibration_without_a_camera(walk: dict[str, Any], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    none = tmp_path / "none.toml"
    none.write_text("[metadata]\nadjusted = false\n")
    _refused(["analyze", "--keypoints2d", str(walk["csv"]), "--calibration", str(none), *SUBJECT,
              "--output", str(tmp_path)], capsys, str(none), "no camera")
    _refused(["analyze", "--keypoints2d", str(walk["csv"]), "--calibration", str(tmp_path / "absent.toml"), *SUBJECT,
              "--output", str(tmp_path)], capsys, "absent.toml", "no such file")


def test_refuses_calibration_of_another_image_size(walk: dict[str, Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "small.toml"
    other.write_text(walk["cal"].read_text().replace("size = [ 1920.0, 1080.0]", "size = [ 1280.0, 720.0]"))
    assert other.read_text() != walk["cal"].read_text()
    _refused(["analyze", "--keypoints2d", str(walk["csv"]), "--calibration", str(other), *SUBJECT,
              "--output", str(tmp_path)], capsys, str(other), "1280x720", "1920x1080")


def test_refuses_json_without_fps_or_image_size(walk: dict[str, Any], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["analyze", "--keypoints2d", str(walk["json"]), *SUBJECT, "--output", str(tmp_path)], capsys,
             str(walk["json"]), "frame rate")
    _refused(["analyze", "--keypoints2d", str(walk["json"]), "--fps", "60", *SUBJECT, "--output", str(tmp_path)],
             capsys, "no image size", "--image-size")
    _refused(["analyze", "--keypoints2d", str(walk["json"]), "--fps", "-5", *SUBJECT, "--output", str(tmp_path)],
             capsys, "--fps")


def test_refuses_bad_json_file(walk: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    for f in sorted(walk["json"].glob("*.json"))[:15]:
        (folder / f.name).write_text(f.read_text())
    victim = sorted(folder.glob("*.json"))[7]
    victim.write_text('{"people": [{"pose_keypoints_2d": [1, 2,\n 0.5, oops]}]}')
    _refused(["analyze", "--keypoints2d", str(folder), "--fps", "60", *SUBJECT, "--calibration", str(walk["cal"]),
              "--output", str(tmp_path)], capsys, str(victim), "line 2", "invalid JSON")


def test_refuses_missing_subject_and_mixed_inputs(walk: dict[str, Any], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["analyze", "--keypoints2d", str(walk["csv"]), "--side", "left", "--output", str(tmp_path)], capsys,
             "--mass-kg", "--height-m")
    _refused(["analyze", "--keypoints2d", str(walk["csv"]), "--video", "x.mp4", *SUBJECT], capsys, "--video")
    _refused(["analyze", "--keypoints2d", str(walk["csv"]), "--image-size", "1920by1080", *SUBJECT,
              "--output", str(tmp_path)], capsys, "--image-size", "1920by1080")

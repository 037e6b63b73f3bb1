"""``exo monocular-check --synthetic TRC`` (issue 17): PS ss1 rendered through the virtual side-on camera, the
model fitted to its 2-D keypoints, compared with the project's marker IK of the same trial; a named regression
guard on today's figures, the definition floor, DM og3's segment-length corrections, and the command's
refusals."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runtime.cli.main import main
from tests._support import needs_shared_data, shared_data_path

PS = shared_data_path("GC5_PS")
TRC = PS / "trc" / "PS_ngait_og_ss1.trc"
OSIM = PS / "model" / "GC5.osim"
STATIC = PS / "model" / "Static_for_scaling.trc"

# What the check gives today (measured 2026-12-07 07:45 UTC on PS ss1, camera on the left, 7 m, f 1400 px, 2 px
# noise, seed 0; offline smoother with the per-trial segment-length corrections of monocular_shape.py, stance
# keypoint 5 cm above the floor): RMSE against the marker IK, mean of both sides, hip flexion 11.72 deg, knee 2.53
# deg, ankle 3.09 deg, mean 5.78 deg; root translation 7.39 cm; median reprojection 2.87 px (before the length
# corrections: 11.97, 2.23, 2.71, mean 5.64 deg, root 6.88 cm, 3.70 px). Issue 17's goal (3 deg / 3 cm) is not met:
# hip flexion carries an 11 deg pelvis-tilt offset, and the "definition floor" (landmark IK of the noise-free 3-D
# truth on the same model) already has it: mean 5.21 deg, hip flexion +11.8 / +10.6 deg mean error, i.e. the
# keypoints (Harrington hips, acromion shoulders on MyoLeg's rigid trunk) cannot show this pelvis' tilt.
# Each figure may grow by <= 15 %.
SYNTHETIC_ACHIEVED_DEG = {"hip_flexion_rmse_deg": 11.72, "knee_angle_rmse_deg": 2.53, "ankle_angle_rmse_deg": 3.09}
SYNTHETIC_MEAN_DEG, SYNTHETIC_ROOT_CM, SYNTHETIC_REPROJECTION_PX = 5.78, 7.39, 2.87
FLOOR_MEAN_DEG = 5.21
MARGIN = 0.15


@pytest.fixture(scope="module")
def synthetic_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("mono_syn") / "syn.json"
    rc = main(["monocular-check", "--synthetic", str(TRC), "--markerset", str(OSIM), "--static", str(STATIC),
               "--mass-kg", "75", "--height-m", "1.8", "--json", str(out)])
    assert rc == 0
    return json.loads(out.read_text())


@needs_shared_data("GC5_PS", "trc", "PS_ngait_og_ss1.trc")
def test_regression_guard_synthetic_check_on_ps_ss1(synthetic_doc: dict[str, Any]) -> None:
    doc = synthetic_doc
    assert doc["frames"] == doc["frames_compared"] == 132
    assert doc["camera"] == {"side": "left", "distance_m": 7.0, "focal_px": 1400.0, "image_size_px": [1920, 1080],
                             "noise_px": 2.0, "seed": 0}
    got = doc["sagittal_rmse_deg"]
    assert set(got) == set(SYNTHETIC_ACHIEVED_DEG)
    for name, achieved in SYNTHETIC_ACHIEVED_DEG.items():
        assert got[name] <= achieved * (1 + MARGIN), (name, got[name], achieved)
    assert doc["mean_sagittal_rmse_deg"] == pytest.approx(sum(got.values()) / 3)
    assert doc["mean_sagittal_rmse_deg"] <= SYNTHETIC_MEAN_DEG * (1 + MARGIN)
    assert doc["root_translation_rmse_cm"] <= SYNTHETIC_ROOT_CM * (1 + MARGIN)
    # 2 px noise per coordinate: a fit cannot reproject better than the noise, and should not be far above it
    assert 2.0 <= doc["fit"]["reprojection_px_median"] <= SYNTHETIC_REPROJECTION_PX * (1 + MARGIN)
    assert doc["fit"]["landmarks_used_fraction_mean"] > 0.9
    # both feet stand on the floor for part of the trial, found from the 2-D data
    assert all(0.2 < v < 0.9 for v in doc["stance_fraction"].values()), doc["stance_fraction"]
    assert doc["goal"] == {"mean_sagittal_rmse_deg": 3.0, "root_translation_rmse_cm": 3.0}
    # the fit stays within 1 deg of what the keypoint definitions allow, and that floor is the pelvis tilt
    floor = doc["definition_floor"]
    assert abs(floor["mean_sagittal_rmse_deg"] - FLOOR_MEAN_DEG) <= FLOOR_MEAN_DEG * MARGIN
    assert doc["mean_sagittal_rmse_deg"] - floor["mean_sagittal_rmse_deg"] < 1.0
    assert min(floor["mean_error_deg"]["hip_flexion_r_deg"], floor["mean_error_deg"]["hip_flexion_l_deg"]) > 8.0
    # PS's model is scaled from its static trial: the thigh and shank need (almost) no correction; the shoes make
    # the heel-to-toe keypoints 17-22 % longer than the model's heel and toe-tip sites (measured: 0.316 / 0.259 m)
    sh = doc["fit"]["segment_length_corrections"]
    assert abs(sh["thigh"]) < 0.03 and abs(sh["shank"]) < 0.03 and 0.10 < sh["foot"] < 0.25, sh


DM = shared_data_path("GC6_DM")


@needs_shared_data("GC6_DM", "motion_analysis", "DM_ngait_og3_new.trc")
def test_segment_lengths_fix_the_depth_of_a_height_scaled_model(tmp_path: Path) -> None:
    """DM's model is scaled by height only (DM_markers.xml has no bodies): its thighs are 6-9 % longer and its
    hip-to-shoulder height 13-14 % longer than the rendered joint centres (0.389-0.397 against 0.425 m; 0.515-0.522
    against 0.599 m).  Measured 07:45 UTC on og3: corrections thigh -7.8 %, trunk -12.8 %; root error 6.19 cm
    (26.39 cm with the model's lengths), mean sagittal RMSE 3.49 deg (4.32)."""
    out = tmp_path / "dm.json"
    rc = main(["monocular-check", "--synthetic", str(DM / "motion_analysis" / "DM_ngait_og3_new.trc"), "--markerset",
               str(DM / "model" / "DM_markers.xml"), "--mass-kg", "70", "--height-m", "1.72", "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    sh = doc["fit"]["segment_length_corrections"]
    assert -0.11 < sh["thigh"] < -0.05 and -0.17 < sh["trunk"] < -0.09 and abs(sh["shank"]) < 0.04, sh
    assert doc["root_translation_rmse_cm"] <= 6.19 * (1 + MARGIN)
    assert doc["mean_sagittal_rmse_deg"] <= 3.49 * (1 + MARGIN)


def test_synthetic_check_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monocular-check", "--synthetic", str(TRC), "--height-m", "1.8"]) == 2
    assert "--markerset" in capsys.readouterr().err
    assert main(["monocular-check", "--synthetic", str(TRC), "--markerset", str(OSIM)]) == 2
    assert "--height-m" in capsys.readouterr().err
    missing = tmp_path / "absent.trc"
    assert main(["monocular-check", "--synthetic", str(missing), "--markerset", str(OSIM), "--height-m", "1.8"]) == 2
    assert "absent.trc" in capsys.readouterr().err
    assert main(["monocular-check", "--synthetic", str(TRC), "--markerset", str(OSIM), "--height-m", "1.8",
                 "--frames", "0:20"]) == 2
    assert "--frames" in capsys.readouterr().err
    assert main(["monocular-check", "--synthetic", str(TRC), "--markerset", str(OSIM), "--height-m", "1.8",
                 "--noise-px", "-1"]) == 2
    assert "--noise-px" in capsys.readouterr().err

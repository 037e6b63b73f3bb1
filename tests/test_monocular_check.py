"""``exo monocular-check --synthetic TRC`` (issue 17): PS ss1 rendered through the virtual side-on camera, the
model fitted to its 2-D keypoints, compared with the project's marker IK of the same trial; a named regression
guard on today's figures, and the command's refusals."""
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

# What the check gives today (measured 2026-12-07 03:11 UTC on PS ss1, camera on the left, 7 m, f 1400 px, 2 px
# noise, seed 0; offline smoother of models/kinematics/monocular_fit.py after 16db142, stance keypoint 5 cm above
# the floor): RMSE against the marker IK, mean of both sides, hip flexion 11.97 deg, knee 2.23 deg, ankle 2.71 deg,
# mean 5.64 deg; root translation 6.88 cm; median reprojection 3.70 px (before 16db142: 11.18, 2.81, 6.19, mean
# 6.73 deg, root 4.36 cm). Issue 17's goal (3 deg / 3 cm) is not met yet: hip flexion carries an 11 deg
# pelvis-tilt offset (tilt -11 deg against the marker IK, hip flexion +11 deg). Each figure may grow by <= 15 %.
SYNTHETIC_ACHIEVED_DEG = {"hip_flexion_rmse_deg": 11.97, "knee_angle_rmse_deg": 2.23, "ankle_angle_rmse_deg": 2.71}
SYNTHETIC_MEAN_DEG, SYNTHETIC_ROOT_CM, SYNTHETIC_REPROJECTION_PX = 5.64, 6.88, 3.70
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

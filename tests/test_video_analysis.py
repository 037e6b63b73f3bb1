"""The offline video path on real footage: prompted person -> grounded landmarks -> IK -> GRF -> ID -> CSVs."""
import csv
import math

import numpy as np
import pytest

from runtime.vision.video_analysis import analyze_video


def _demo_video():
    from _support import footage_or_skip

    return footage_or_skip("sports2d_demo_video")


WOMAN_BOX = "1077,492,1547,962"     # the walking woman of the sports2d demo at frame 70 (pixels)


def _header(path):
    with open(path) as f:
        return next(csv.reader(f))


def test_prompted_video_to_moments(tmp_path):
    video = _demo_video()
    res = analyze_video(video, bbox=WOMAN_BOX, describe="woman, 1.65 m, 60 kg", out_dir=tmp_path,
                        frames=(70, 84), side="right")
    names = {p.name for p in res.files}
    assert {"landmarks.csv", "joint_angles.csv", "ground_reaction_force.csv", "joint_moments.csv",
            "knee_moments.csv", "video_analysis.json"} <= names
    # the prompted woman on every frame: her hips stay inside the prompt's horizontal span, moving right to left
    assert res.tracked.all()
    lm = np.loadtxt(tmp_path / "landmarks.csv", delimiter=",", skiprows=1)
    cols = _header(tmp_path / "landmarks.csv")
    u = lm[:, cols.index("left_hip_u_px")]
    assert np.all((u > 900) & (u < 1700)) and u[-1] < u[0]
    assert cols[0] == "time_s" and "right_foot_index_z_m" in cols and "nose_visibility" in cols
    np.testing.assert_allclose(lm[:, 0], np.arange(70, 84) / res.fps, atol=1e-5)
    # grounded: feet near the floor (z up, m), hips around 0.8-1.0 m for a 1.65 m subject
    z_heel = lm[:, [cols.index("left_heel_z_m"), cols.index("right_heel_z_m")]]
    assert np.nanmin(z_heel) > -0.15 and np.nanmedian(np.min(z_heel, axis=1)) < 0.12
    z_hip = lm[:, cols.index("left_hip_z_m")]
    assert 0.6 < np.nanmedian(z_hip) < 1.1
    ang = np.loadtxt(tmp_path / "joint_angles.csv", delimiter=",", skiprows=1)
    acols = _header(tmp_path / "joint_angles.csv")
    knee = ang[:, acols.index("knee_angle_r_deg")]
    assert np.isfinite(knee).all() and -5 < knee.min() and knee.max() < 120
    km = _header(tmp_path / "knee_moments.csv")
    assert km == ["time_s", "knee_adduction_moment_right_pct_bw_ht", "knee_extension_moment_right_pct_bw_ht"]
    s = res.summary()
    assert s["frames_with_pose"] == 14 and math.isfinite(s["ik_residual_rms_mm_median"])
    assert any("assumed 60 deg" in n for n in s["notes"])            # the guessed intrinsics are stated
    kam_out = s["analysis"]["envelopes"]["kam"]["fraction_outside"]          # models.confidence.KAM_ENVELOPE
    assert (kam_out > 0.0) == any(n.startswith("IMPLAUSIBLE: external knee adduction moment") for n in s["notes"])


def test_bad_inputs_are_named(tmp_path):
    video = _demo_video()
    with pytest.raises(ValueError, match="height_m"):
        analyze_video(video, describe="90 kg", out_dir=tmp_path)
    with pytest.raises(ValueError, match="backend"):
        analyze_video(video, height_m=1.7, mass_kg=70, out_dir=tmp_path, backend="openpose")
    with pytest.raises(ValueError, match="mask"):
        analyze_video(video, height_m=1.7, mass_kg=70, out_dir=tmp_path, mask=np.ones((10, 10), bool))
    with pytest.raises(ValueError, match="frames"):
        analyze_video(video, height_m=1.7, mass_kg=70, out_dir=tmp_path, frames=(0, 5))
    with pytest.raises(FileNotFoundError, match="no such file"):
        analyze_video(tmp_path / "missing.mp4", height_m=1.7, mass_kg=70, out_dir=tmp_path)

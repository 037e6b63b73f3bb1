"""``exo kcf-compare`` and models.muscles.kcf_comparison on PS ss1: the part-by-part table and what the calibration
to GC5.osim does to the knee contact force against the implant (regression guards with the 2026-12-07 figures)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models.io.lab_files import shared_data_dir
from models.io.opensim_reference import opensim_available
from runtime.cli.main import main

DATA = shared_data_dir()
needs = pytest.mark.skipif(not opensim_available() or not (DATA / "GC5_PS" / "model" / "GC5.osim").exists(),
                           reason="opensim (pip install opensim==4.6) or the shared data absent")

# PS ss1 measured 2026-12-07 (total / medial / lateral RMSE BW, total peak BW; implant peak 2.19): before = MyoLeg as
# scaled to GC5.osim (F0 from it), after = calibrated (paths, operating lengths, force-length curves, no passive);
# contact points about the epicondyle midpoint of GC5.osim's knee markers (models.muscles.condyle_geometry; about
# the tibia origin the medial / lateral were 0.421 / 0.223 before and 0.357 / 0.305 after)
MEASURED = {"before": (0.494, 0.208, 0.396, 3.24), "after": (0.301, 0.186, 0.248, 2.48)}
MARGIN = 0.15


def test_bad_trial_is_named(capsys, tmp_path):
    assert main(["kcf-compare", "--trials", "PS_ss2", "--out", str(tmp_path)]) == 2
    assert "PS_ss2" in capsys.readouterr().err


@needs
def test_kcf_compare_ps_ss1(tmp_path, capsys):
    assert main(["kcf-compare", "--trials", "PS_ss1", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "kcf_compare.json").read_text())["PS_ss1"]
    md = (tmp_path / "kcf_compare.md").read_text()
    assert "| PS_ss1 | after | opensim_joint_reaction |" in md and "vaslat_l" in md
    for label, (total, med, lat, peak) in MEASURED.items():
        c = res[label]["contact"]["ours"]
        assert c["total"]["rmse_bw"] <= total * (1 + MARGIN), (label, c["total"])
        assert c["medial"]["rmse_bw"] <= med * (1 + MARGIN), (label, c["medial"])
        assert c["lateral"]["rmse_bw"] <= lat * (1 + MARGIN), (label, c["lateral"])
        assert abs(c["total"]["peak_bw"] - c["total"]["peak_ref_bw"]) <= abs(peak - 2.19) * (1 + MARGIN) + 0.02
    before, after = res["before"], res["after"]
    # the calibration brings our muscle forces to OpenSim's SO (no implant data in it) and the contact with them
    assert after["knee_muscle_force_rmse_vs_osim_n"] < 0.6 * before["knee_muscle_force_rmse_vs_osim_n"]
    assert after["contact"]["ours"]["total"]["rmse_bw"] < before["contact"]["ours"]["total"]["rmse_bw"] - 0.1
    rows = {r["muscle"]: r for r in after["muscles"]}
    for n in ("semimem_l", "bflh_l", "vaslat_l", "recfem_l"):
        assert rows[n]["arm_rms_diff_m"] < 0.002, rows[n]
        assert {r["muscle"]: r for r in before["muscles"]}[n]["arm_rms_diff_m"] > 0.003
    for r in after["muscles"]:
        assert r["f0_n"] == pytest.approx(r["f0_osim_n"])
    # the contact step itself, fed OpenSim's SO forces, is at OpenSim's JointReaction (0.30 vs 0.31 BW)
    c = after["contact"]
    assert abs(c["opensim_so_in_our_contact"]["total"]["rmse_bw"] - c["opensim_joint_reaction"]["total"]["rmse_bw"]) < 0.03
    # |F_c| against its axial component: within 0.03 BW of each other
    assert abs(c["ours_axial_as_total"]["total"]["rmse_bw"] - c["ours"]["total"]["rmse_bw"]) < 0.03
    assert np.isfinite(after["knee_moment"]["rmse_nm"])
    # the subject's contact centre (6.8 mm medial of the knee centre) takes the medial excess off, total unchanged
    assert after["condyles"]["centre_m"] == pytest.approx(0.0068, abs=0.0005)
    sym = c["ours_condyles_about_tibia_origin"]
    assert sym["total"]["rmse_bw"] == pytest.approx(c["ours"]["total"]["rmse_bw"])
    assert c["ours"]["medial"]["rmse_bw"] < sym["medial"]["rmse_bw"] - 0.1
    # the lab's JointReaction through the same split about GC5.osim's own epicondyle midpoint (OpenSim 4.6: 6.9 mm
    # medial of its tibia origin): medial 0.197, lateral 0.269 BW on ss1 (2026-12-07)
    jr = c["opensim_joint_reaction"]
    assert jr["medial"]["rmse_bw"] == pytest.approx(0.197, abs=0.01)
    assert jr["lateral"]["rmse_bw"] == pytest.approx(0.269, abs=0.01)

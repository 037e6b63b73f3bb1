"""``exo validate``'s per-trial table of the kinematics-only chain (runtime/cli/commands/validate.py)."""

from __future__ import annotations

from runtime.cli.commands.validate import trial_table


def _trial(name: str, side: str, vgrf: float, kam: float) -> dict:
    return {"trial": name, "side": side,
            "grf_error_pct_bw": {f"{side}_vertical_grf_rmse_pct_bw": vgrf, "plates_vs_kinematics_scale": 1.104,
                                 "plates_vs_kinematics_lag_ms": 16.7,
                                 f"{side}_vertical_grf_rmse_pct_bw_plates_rescaled_shifted": 5.9},
            "knee_moment_rmse_pct_bw_ht": {f"knee_adduction_moment_{side}_rmse_pct_bw_ht": kam},
            "kinematics_only_rule_split": {f"{side}_vertical_grf_rmse_pct_bw": 12.0}}


def test_every_trial_gets_a_row_with_its_goal_verdict():
    doc = {"trials": [_trial("PS_ss1", "left", 15.37, 0.60), _trial("DM_og3", "right", 3.67, 0.99),
                      _trial("DM_og9", "right", 5.0, 1.2), {"trial": "DM_og7", "error": "ValueError: no markers"}]}
    lines = trial_table(doc).splitlines()
    rows = {ln.split()[0]: ln for ln in lines[2:] if ln.split() and ln.split()[0] in ("PS_ss1", "DM_og3", "DM_og9",
                                                                                     "DM_og7")}
    assert set(rows) == {"PS_ss1", "DM_og3", "DM_og9", "DM_og7"}
    assert "NOT" in rows["PS_ss1"] and "15.37" in rows["PS_ss1"] and "1.104" in rows["PS_ss1"]
    assert "met" in rows["DM_og3"] and "3.67" in rows["DM_og3"] and "0.99" in rows["DM_og3"]
    assert "NOT" in rows["DM_og9"]                      # vGRF met, KAM not: the trial is not met
    assert "error" in rows["DM_og7"]

"""``exo validate``: the analysis chain on every shared trial, each figure beside its anchor."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from runtime.cli.arguments import add_command
from runtime.cli.exit_codes import EXIT_FAILED, EXIT_OK

#: Goals of the kinematics-only chain per trial (issue 18): vertical GRF RMSE (%BW) and KAM RMSE (%BW*ht).
VGRF_GOAL_PCT_BW = 6.0
KAM_GOAL_PCT_BW_HT = 1.0


def _f(v: Any, fmt: str = "5.2f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) else "  -  "


def trial_table(doc: dict[str, Any]) -> str:
    """Per-trial table of the kinematics-only chain against the plates: vertical GRF RMSE (%BW, stance foot of the
    knee of interest), KAM RMSE (%BW*ht, its stance), the rule split's figures, and the plates' scale and lag
    against the kinematics with the vertical RMSE once they are taken out (a diagnostic of the reference)."""
    head = ("trial    side   vGRF %BW  KAM %BW*ht  goal   | rule vGRF  KAM  | plates/kin scale  lag ms  "
            "vGRF vs rescaled+shifted plates")
    rows = [head, "-" * len(head)]
    for t in doc.get("trials", []):
        if "error" in t:
            rows.append(f"{t.get('trial', '?'):8s} error: {t['error']}")
            continue
        s = t.get("side", "")
        g = t.get("grf_error_pct_bw") or {}
        k = t.get("knee_moment_rmse_pct_bw_ht") or {}
        r = t.get("kinematics_only_rule_split") or {}
        r = r if isinstance(r, dict) else {}
        v = g.get(f"{s}_vertical_grf_rmse_pct_bw")
        kam = k.get(f"knee_adduction_moment_{s}_rmse_pct_bw_ht")
        ok = isinstance(v, float) and isinstance(kam, float) and v <= VGRF_GOAL_PCT_BW and kam <= KAM_GOAL_PCT_BW_HT
        rows.append(f"{t['trial']:8s} {s:6s} {_f(v, '8.2f')}  {_f(kam, '10.2f')}  {'met ' if ok else 'NOT '}  | "
                    f"{_f(r.get(f'{s}_vertical_grf_rmse_pct_bw'), '9.2f')} "
                    f"{_f(r.get(f'knee_adduction_moment_{s}_rmse_pct_bw_ht'), '4.2f')} | "
                    f"{_f(g.get('plates_vs_kinematics_scale'), '16.3f')} "
                    f"{_f(g.get('plates_vs_kinematics_lag_ms'), '+7.1f')}  "
                    f"{_f(g.get(f'{s}_vertical_grf_rmse_pct_bw_plates_rescaled_shifted'), '.2f')}")
    rows.append(f"goal: vGRF <= {VGRF_GOAL_PCT_BW:g} %BW and KAM <= {KAM_GOAL_PCT_BW_HT:g} %BW*ht on every trial; "
                "scale/lag: the plates' total vertical force against m (a_com - g)_z where every foot in contact is "
                "on a plate (1 and 0 for a consistent reference)")
    return "\n".join(rows)


def cmd_validate(args: argparse.Namespace) -> int:
    from runtime.cli.doctor import shared_data_dir
    from runtime.estimation.validate import run_validation

    doc = run_validation(Path(args.data) if args.data else shared_data_dir(), Path(args.json),
                         Path(args.output) if args.output else None)
    print(json.dumps(doc["mean"], indent=2))
    print(trial_table(doc))
    print(f"wrote {args.json}")
    return EXIT_FAILED if any("error" in t for t in doc["trials"]) else EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``validate``."""
    p = add_command(
        subparsers, "validate", help="the analysis chain on every shared trial, figures beside their anchors",
        description="Run analyze on every trial in ../shared/data and write one JSON file of validation figures "
                    "(joint angles vs lab IK, GRF vs plates, knee moments vs ID with plates). This is a long run "
                    "(every trial, minutes: 'make validate'); --data points it at a folder with fewer trials.",
        examples=["exo validate --data ../shared/data --json validation.json"])
    p.add_argument("--json", default=os.environ.get("VALIDATION_JSON", "validation.json"),
                   help="output JSON (default: $VALIDATION_JSON or validation.json)")
    p.add_argument("--data", help="shared data folder (default: ../shared/data or $EXO_SHARED_DATA)")
    p.add_argument("--output", help="also write each trial's CSVs under this folder")
    p.set_defaults(fn=cmd_validate)

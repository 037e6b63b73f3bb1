"""``exo validate``: the analysis chain on every shared trial, each figure beside its anchor."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from runtime.cli.arguments import add_command
from runtime.cli.exit_codes import EXIT_FAILED, EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from runtime.cli.doctor import shared_data_dir
    from runtime.estimation.validate import run_validation

    doc = run_validation(Path(args.data) if args.data else shared_data_dir(), Path(args.json),
                         Path(args.output) if args.output else None)
    print(json.dumps(doc["mean"], indent=2))
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

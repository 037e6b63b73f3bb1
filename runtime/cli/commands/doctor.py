"""``exo doctor``: check this machine for what the runtime needs (the checks are in ``runtime/cli/doctor.py``)."""
from __future__ import annotations

import argparse
import json
from typing import Any

from runtime.cli.arguments import add_command
from runtime.cli.exit_codes import EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from runtime.cli.doctor import as_json, format_checks, run_checks

    checks = run_checks()
    print(json.dumps(as_json(checks), indent=2) if args.json else format_checks(checks))
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``doctor``."""
    p = add_command(
        subparsers, "doctor", help="check this machine for what the runtime needs",
        description="Check real-time priority, locked memory, CAN interfaces and bitrate, ONNX Runtime providers, "
                    "GPU, installed models and data; say what is missing and how to fix it.",
        examples=["exo doctor"])
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(fn=cmd_doctor)

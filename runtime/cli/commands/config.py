"""``exo config``: validate the device, subject and calibration files and print them with defaults filled in."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from runtime.cli.arguments import add_command
from runtime.cli.configs import add_config_args, load_configs
from runtime.cli.exit_codes import EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    device, subject, calibration = load_configs(args)
    print(json.dumps({"device": device.model_dump(), "subject": subject.model_dump(),
                      "calibration": calibration.model_dump()}, indent=2))
    print("configuration valid", file=sys.stderr)
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``config``."""
    p = add_command(
        subparsers, "config", help="validate configuration files",
        description="Validate the device, subject and calibration files; print them with defaults. A rejected file "
                    "is named with its field and value (exit 2).",
        examples=["exo config --config launch/config/device.yaml"])
    add_config_args(p)
    p.set_defaults(fn=cmd_config)

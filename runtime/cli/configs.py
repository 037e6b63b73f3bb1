"""The device, subject and calibration files of ``exo run``, ``exo demo`` and ``exo config``: flags, defaults, loading."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

#: The packaged example configurations (``launch/config``).
PKG_CONFIG = Path(__file__).resolve().parents[2] / "launch" / "config"


def default_config(name: str) -> str:
    """Path of the packaged configuration file ``name`` (e.g. ``device.yaml``)."""
    return str(PKG_CONFIG / name)


def add_config_args(p: argparse.ArgumentParser) -> None:
    """``--config``, ``--subject`` and ``--calibration`` with the packaged files as defaults."""
    p.add_argument("--config", default=default_config("device.yaml"), help="device configuration YAML (default: %(default)s)")
    p.add_argument("--subject", default=default_config("subject.yaml"), help="subject profile YAML (default: %(default)s)")
    p.add_argument("--calibration", default=default_config("calibration.yaml"),
                   help="actuator calibration YAML (default: %(default)s)")


def load_configs(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(device, subject, calibration) from the flags of :func:`add_config_args`, checked against each other
    (``runtime.core.config.ConfigError`` names the file, field and value)."""
    from runtime.core.config import (
        check_consistency,
        load_calibration,
        load_device,
        load_subject,
    )

    device = load_device(args.config)
    subject = load_subject(args.subject)
    calibration = load_calibration(args.calibration)
    check_consistency(device, calibration)
    return device, subject, calibration

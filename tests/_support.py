"""Shared helpers for tests (imported by name; conftest.py is not importable reliably)."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def exo_cmd() -> list[str]:
    """The installed console script if present, else the module."""
    exe = Path(sys.executable).with_name("exo")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "runtime.cli"]

"""``import opensim`` safely, and whether it is installed (the optional ``bench`` extra).

Kept apart from :mod:`models.io.opensim_reference` so that modules which only need OpenSim's API (the subject
muscle geometry, :mod:`models.muscles.subject_muscles`) do not import the reference runner and its dependencies.
"""
from __future__ import annotations

from typing import Any


def import_opensim() -> Any:
    """``import opensim`` without letting it rewrite this process's environment.

    The opensim 4.6 wheel's ``__init__`` replaces ``LD_LIBRARY_PATH`` (and prepends to ``PATH``, sets
    ``SIMBODY_HOME``); every child process started afterwards then lost the ROS 2 wheels' library paths and
    failed to import rclpy. Its libraries are loaded by then, so the variables are restored at once.
    """
    import os

    keys = ("LD_LIBRARY_PATH", "PATH", "SIMBODY_HOME")
    saved = {k: os.environ.get(k) for k in keys}
    try:
        import opensim
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return opensim


def opensim_available() -> bool:
    """True when the ``opensim`` package imports."""
    try:
        import_opensim()
    except ImportError:
        return False
    return True

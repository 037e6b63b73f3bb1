"""The MuJoCo model the ground reaction estimate runs on: MyoLeg by default, any ``MjModel`` otherwise."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import mujoco

__all__ = ["as_mjmodel", "load_myoleg"]


def as_mjmodel(obj: Any) -> mujoco.MjModel:
    """``obj`` itself when it is a ``mujoco.MjModel``, else its ``.model`` / ``.mj_model`` (``TypeError`` if none)."""
    if isinstance(obj, mujoco.MjModel):
        return obj
    for name in ("model", "mj_model"):
        inner = getattr(obj, name, None)
        if isinstance(inner, mujoco.MjModel):
            return inner
    raise TypeError(f"expected a mujoco.MjModel or an object with a .model MjModel, got {type(obj).__name__}")


@functools.lru_cache(maxsize=1)
def load_myoleg() -> mujoco.MjModel:
    """MyoLeg, built once per process (about 2 s): ``models.body.registry.load_model("myoleg")`` when that module
    exists, else ``myo_sim.load_model("myolegs")``.  Shared: treat it as read-only."""
    try:
        from models.body.registry import load_model  # type: ignore[import-not-found]
    except ImportError:
        load_model = None
    if load_model is not None:
        return as_mjmodel(load_model("myoleg"))
    return _myo_sim_myoleg()


def _myo_sim_myoleg() -> mujoco.MjModel:
    import myo_sim

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Attaching a spec with an empty prefix")
        return myo_sim.load_model("myolegs")

"""Names in a MuJoCo model: of its objects and of each dof, with lookups that list close matches.

Pure computation: mujoco and the standard library.
"""

from __future__ import annotations

import difflib

import mujoco

__all__ = ["JOINT_FREE", "JOINT_BALL", "JOINT_SLIDE", "JOINT_HINGE", "object_name", "lookup", "as_mjmodel",
           "dof_names"]

JOINT_FREE = int(mujoco.mjtJoint.mjJNT_FREE)
JOINT_BALL = int(mujoco.mjtJoint.mjJNT_BALL)
JOINT_SLIDE = int(mujoco.mjtJoint.mjJNT_SLIDE)
JOINT_HINGE = int(mujoco.mjtJoint.mjJNT_HINGE)


def object_name(model: mujoco.MjModel, obj: mujoco.mjtObj, i: int) -> str:
    return mujoco.mj_id2name(model, obj, i) or f"{obj.name.removeprefix('mjOBJ_').lower()}{i}"


def lookup(names: dict[str, int], name: str, what: str) -> int:
    try:
        return names[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(names), n=5, cutoff=0.5)
        hint = f"close matches: {close}" if close else f"available: {sorted(names)[:15]}..."
        raise KeyError(f"no {what} {name!r} in the model; {hint}") from None


def as_mjmodel(model) -> mujoco.MjModel:
    """An ``MjModel``, or an object holding one in ``.model`` (``models.body.registry.MusculoskeletalModel``)."""
    if isinstance(model, mujoco.MjModel):
        return model
    inner = getattr(model, "model", None)
    if isinstance(inner, mujoco.MjModel):
        return inner
    raise TypeError(f"expected a mujoco.MjModel or an object with an MjModel in .model, got {type(model).__name__}")


def dof_names(model: mujoco.MjModel) -> tuple[str, ...]:
    """One name per dof: the joint name for hinge/slide; ``_tx, _ty, _tz, _rx, _ry, _rz`` suffixes for a free joint
    (translations in the world frame, rotations in the body frame) and ``_rx, _ry, _rz`` for a ball joint."""
    out: list[str] = []
    for j in range(model.njnt):
        n = object_name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
        t = int(model.jnt_type[j])
        if t == JOINT_FREE:
            out += [f"{n}_{s}" for s in ("tx", "ty", "tz", "rx", "ry", "rz")]
        elif t == JOINT_BALL:
            out += [f"{n}_{s}" for s in ("rx", "ry", "rz")]
        else:
            out.append(n)
    return tuple(out)

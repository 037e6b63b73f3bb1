"""Shared helpers for tests (imported by name; conftest.py is not importable reliably)."""
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

#: footage function -> the wheel it comes from (a failed wheel is not fetched again in the same session)
_FOOTAGE_DIST = {"sports2d_demo_video": "sports2d", "sports2d_calibration": "sports2d",
                 "pose2sim_single_person": "pose2sim", "fetch_all": "all"}
_FOOTAGE_FAILED: dict[str, str] = {}
_FOOTAGE_FOUND: dict[str, Any] = {}


def footage_or_skip(name: str = "sports2d_demo_video") -> Any:
    """``runtime.vision.footage.<name>()`` (``sports2d_demo_video``, ``sports2d_calibration``,
    ``pose2sim_single_person``, ``fetch_all``): from the cache, else fetched once per test session (with the
    module's retries; never with ``EXO_FOOTAGE_OFFLINE=1``). When it cannot be obtained the calling test is
    skipped with the reason, and later requests for the same wheel skip at once."""
    from runtime.vision import footage

    if name not in _FOOTAGE_DIST:
        raise ValueError(f"footage name = {name!r}: expected one of {sorted(_FOOTAGE_DIST)}")
    if name in _FOOTAGE_FOUND:
        return _FOOTAGE_FOUND[name]
    dist = _FOOTAGE_DIST[name]
    failed = _FOOTAGE_FAILED.get(dist) or (_FOOTAGE_FAILED.get("all") if dist != "all" else None)
    if failed is None:
        try:
            _FOOTAGE_FOUND[name] = getattr(footage, name)()
            return _FOOTAGE_FOUND[name]
        except footage.FootageUnavailable as exc:
            failed = _FOOTAGE_FAILED[dist] = str(exc)
    pytest.skip(f"footage unavailable: {failed}")


def shared_data(*parts: str) -> Path:
    """``shared_data_dir() / parts`` (the lab recordings: ``$EXO_SHARED_DATA`` or ``../shared/data``); the calling
    test is skipped with the reason when that path does not exist."""
    path = shared_data_path(*parts)
    if not path.exists():
        pytest.skip(_shared_reason(path))
    return path


def shared_data_path(*parts: str) -> Path:
    """``shared_data_dir() / parts`` without checking it exists (for module-level constants)."""
    from models.io.lab_files import shared_data_dir

    return shared_data_dir().joinpath(*parts)


def needs_shared_data(*parts: str) -> pytest.MarkDecorator:
    """A ``skipif`` mark: skip when ``shared_data_dir() / parts`` is absent (reason names the path)."""
    path = shared_data_path(*parts)
    return pytest.mark.skipif(not path.exists(), reason=_shared_reason(path))


def _shared_reason(path: Path) -> str:
    return f"shared lab data {path} is absent (set EXO_SHARED_DATA to the folder holding GC5_PS, GC6_DM, ...)"


def exo_cmd() -> list[str]:
    """The installed console script if present, else the module."""
    exe = Path(sys.executable).with_name("exo")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "runtime.cli.main"]


# A two-link leg with a muscle, a coupled slide and meshes: the registry and scaling tests share it.
TWO_LINK_XML = textwrap.dedent("""\
    <mujoco model="two-link">
      <asset><mesh name="bone" vertex="0 0 0  0.03 0 0  0 0.03 0  0 0 -0.3  0.03 0.03 -0.3"/></asset>
      <worldbody>
        <geom name="floor" type="plane" size="2 2 0.1"/>
        <body name="thigh" pos="0 0 1">
          <freejoint name="root"/>
          <geom type="mesh" mesh="bone"/>
          <geom name="thigh_cap" type="capsule" fromto="0 0 0 0 0 -0.4" size="0.04"/>
          <site name="origin" pos="0.03 0 -0.1" size="0.01"/>
          <body name="shank" pos="0 0 -0.4">
            <joint name="knee" type="hinge" axis="0 1 0" range="-2 0"/>
            <joint name="knee_slide" type="slide" axis="0 0 1" range="-0.01 0.01"/>
            <geom type="mesh" mesh="bone"/>
            <geom name="shank_cap" type="capsule" fromto="0 0 0 0 0 -0.4" size="0.035"/>
            <site name="insertion" pos="0.03 0 -0.1" size="0.01"/>
            <body name="foot" pos="0 0 -0.4"><geom type="box" size="0.1 0.04 0.02" pos="0.05 0 -0.02"/></body>
          </body>
        </body>
      </worldbody>
      <tendon><spatial name="mus_tendon"><site site="origin"/><site site="insertion"/></spatial></tendon>
      <equality><joint joint1="knee_slide" joint2="knee" polycoef="0.001 0.002 0.0005 0 0"/></equality>
      <actuator><muscle name="mus" tendon="mus_tendon" force="1000" lengthrange="0.15 0.35"/></actuator>
    </mujoco>
    """)


def synthetic_pose(cx: float, cy: float, scale: float = 40.0):
    """A BlazePose-33 result of a stick person whose head centre is at (cx, cy) px, ``scale`` px per head size:
    face points scattered around the centre (seeded), shoulders, arms on the shoulders, hips, legs on the hips."""
    import numpy as np

    from runtime.vision.pose_types import N_LANDMARKS, BoundingBox, PoseResult

    xy = np.zeros((N_LANDMARKS, 2))
    xy[:11] = [cx, cy] + np.random.default_rng(1).uniform(-0.3, 0.3, (11, 2)) * scale
    xy[11], xy[12] = [cx - scale, cy + 1.5 * scale], [cx + scale, cy + 1.5 * scale]
    xy[23], xy[24] = [cx - 0.7 * scale, cy + 4 * scale], [cx + 0.7 * scale, cy + 4 * scale]
    xy[13:23] = xy[11]
    xy[25:] = xy[23]
    box = BoundingBox(float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max()))
    return PoseResult(xy, np.zeros(N_LANDMARKS), np.ones(N_LANDMARKS), np.ones(N_LANDMARKS),
                      np.zeros((N_LANDMARKS, 3)), 1.0, box)


def hinge_sinusoid_poses(m: Any, n: int, rng: Any, amplitude: float, rate_hz: float = 100.0) -> Any:
    """(n, nq) poses of model ``m``: qpos0 with every limited hinge at mid-range plus ``amplitude`` x its range times
    a 1 Hz sine of random phase (one ``rng.uniform(0, 6)`` per limited hinge, in joint order), at ``rate_hz``."""
    import mujoco
    import numpy as np

    t = np.arange(n) / rate_hz
    q = np.tile(m.qpos0, (n, 1))
    for j in range(m.njnt):
        if int(m.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_HINGE) and m.jnt_limited[j]:
            lo, hi = m.jnt_range[j]
            q[:, m.jnt_qposadr[j]] = 0.5 * (lo + hi) + amplitude * (hi - lo) * np.sin(2 * np.pi * t + rng.uniform(0, 6))
    return q

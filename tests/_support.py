"""Shared helpers for tests (imported by name; conftest.py is not importable reliably)."""
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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

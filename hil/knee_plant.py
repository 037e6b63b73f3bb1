"""Simulated knee plant: a seated subject's shank and foot swinging about the knee, in MuJoCo.

The simplest plant that exercises the torque loop honestly: one hinge (knee
flexion, rad, 0 = straight, positive = flexion), the shank-foot segment as a
rigid body whose mass, length and centre of mass follow Winter's anthropometric
table (Winter, *Biomechanics and Motor Control of Human Movement*, 4th ed.,
Table 4.1: shank 0.0465 M, foot 0.0145 M, shank length 0.246 H, shank CoM at
0.433 of its length from the knee), gravity along -z, the thigh fixed
horizontally (seated). The person moves their own knee: a PD "voluntary"
torque tracks a swing between ``flexion_min_rad`` and ``flexion_max_rad`` at
``cadence_hz``. The exoskeleton torque adds to it through a motor actuator.

This is the stand-in plant until the HIL rig (emulated AK drives over CAN on a
MyoLeg model, ``hil/``) replaces it: the drive is ideal (torque out = command).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco


@dataclass(frozen=True, slots=True)
class KneePlantParams:
    body_mass_kg: float = 75.0
    height_m: float = 1.80
    timestep_s: float = 0.001
    joint_damping_nm_s_per_rad: float = 0.3
    cadence_hz: float = 0.5
    flexion_min_rad: float = 0.3
    flexion_max_rad: float = 1.5
    voluntary_kp_nm_per_rad: float = 40.0
    voluntary_kd_nm_s_per_rad: float = 3.0


def _mjcf(p: KneePlantParams) -> str:
    m_shank = 0.0465 * p.body_mass_kg
    m_foot = 0.0145 * p.body_mass_kg
    l_shank = 0.246 * p.height_m
    com_shank = 0.433 * l_shank
    # Shank hangs along -z at flexion pi/2 when the thigh is horizontal along +x: place the segment
    # along +x from the knee (straight knee) and rotate about y; flexion rotates it downward.
    return f"""
<mujoco model="seated_knee">
  <compiler angle="radian"/>
  <option timestep="{p.timestep_s}" gravity="0 0 -9.81" integrator="implicitfast"/>
  <worldbody>
    <body name="thigh" pos="0 0 0.5">
      <geom type="capsule" fromto="-0.45 0 0 0 0 0" size="0.06" mass="7" contype="0" conaffinity="0"/>
      <body name="shank" pos="0 0 0">
        <joint name="knee_flexion" type="hinge" axis="0 1 0" range="-0.2 2.6" limited="true"
               damping="{p.joint_damping_nm_s_per_rad}" armature="0.002"/>
        <geom name="shank" type="capsule" fromto="0 0 0 {l_shank:.4f} 0 0" size="0.045" contype="0" conaffinity="0"
              mass="{m_shank:.4f}"/>
        <inertial pos="{com_shank:.4f} 0 0" mass="{m_shank:.4f}"
                  diaginertia="{m_shank * 0.0051:.5f} {m_shank * (0.302 * l_shank) ** 2:.5f} {m_shank * (0.302 * l_shank) ** 2:.5f}"/>
        <body name="foot" pos="{l_shank:.4f} 0 0">
          <geom type="box" size="0.03 0.045 0.1" pos="0.03 0 0.05" mass="{m_foot:.4f}" contype="0" conaffinity="0"/>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor name="exo_knee" joint="knee_flexion" gear="1" ctrllimited="false"/>
    <motor name="voluntary" joint="knee_flexion" gear="1" ctrllimited="false"/>
  </actuator>
</mujoco>
"""


def voluntary_target_rad(params, t_s: float) -> float:
    """The person's own knee flexion target at ``t_s`` (rad): a sinusoid between ``flexion_min_rad`` and
    ``flexion_max_rad`` at ``cadence_hz``."""
    mid = 0.5 * (params.flexion_min_rad + params.flexion_max_rad)
    amp = 0.5 * (params.flexion_max_rad - params.flexion_min_rad)
    return mid + amp * math.sin(2.0 * math.pi * params.cadence_hz * t_s)


def voluntary_torque_nm(params, t_s: float, q_rad: float, qd_rad_s: float, bias_nm: float) -> float:
    """The person's own knee torque (N*m): PD tracking of :func:`voluntary_target_rad` plus gravity compensation
    (``bias_nm``, MuJoCo's ``qfrc_bias`` of the knee)."""
    return (params.voluntary_kp_nm_per_rad * (voluntary_target_rad(params, t_s) - q_rad)
            - params.voluntary_kd_nm_s_per_rad * qd_rad_s + bias_nm)


class SimulatedKneePlant:
    """The seated knee, stepped in real time by the torque loop.

    ``step(exo_torque_nm, dt_s)`` advances the simulation by ``dt_s`` (whole MuJoCo
    steps) with the exoskeleton torque held. Flexion angle: with the thigh along +x,
    a positive rotation about +y turns the shank downwards (-z), so gravity flexes the knee.
    """

    def __init__(self, params: KneePlantParams | None = None, initial_flexion_rad: float = 0.9) -> None:
        self.params = params or KneePlantParams()
        self.model = mujoco.MjModel.from_xml_string(_mjcf(self.params))
        self.data = mujoco.MjData(self.model)
        self._qadr = self.model.jnt_qposadr[0]
        self.data.qpos[self._qadr] = initial_flexion_rad
        mujoco.mj_forward(self.model, self.data)
        self.exo_torque_nm = 0.0
        self.voluntary_torque_nm = 0.0

    @property
    def time_s(self) -> float:
        """Plant (simulation) time, s."""
        return float(self.data.time)

    @property
    def flexion_rad(self) -> float:
        return float(self.data.qpos[self._qadr])

    @property
    def flexion_velocity_rad_s(self) -> float:
        return float(self.data.qvel[0])

    def voluntary_target_rad(self, t_s: float) -> float:
        return voluntary_target_rad(self.params, t_s)

    def step(self, exo_torque_nm: float, dt_s: float) -> None:
        p = self.params
        d = self.data
        n = max(1, int(round(dt_s / self.model.opt.timestep)))
        for _ in range(n):
            self.voluntary_torque_nm = voluntary_torque_nm(p, d.time, d.qpos[self._qadr], d.qvel[0], d.qfrc_bias[0])
            d.ctrl[0] = exo_torque_nm
            d.ctrl[1] = self.voluntary_torque_nm
            mujoco.mj_step(self.model, d)
        self.exo_torque_nm = exo_torque_nm

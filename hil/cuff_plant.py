"""The seated knee of :mod:`hil.knee_plant` with a soft-tissue cuff between the motor and the shank.

Same person (Winter's segment table, the PD "voluntary" swing) and the same interface as
:class:`hil.knee_plant.SimulatedKneePlant`, so :class:`hil.ak_emulator.HilRig` drives it unchanged; the
difference is where the motor torque goes. The motor turns the exoskeleton link (a body on its own hinge
about the knee axis, :func:`models.tissue.soft_tissue.exo_xml`); the link's cuff plates press on flexcomp tissue
blocks pinned to the shank (:func:`models.tissue.soft_tissue.tissue_xml`), and only their contact forces reach
the leg. Hence:

* ``flexion_rad`` / ``flexion_velocity_rad_s`` are the **motor side** (exo link) angle and rate, what the
  drive's encoder reports to :class:`~hil.ak_emulator.HilRig`;
* ``knee_flexion_rad`` / ``knee_velocity_rad_s`` are the leg's (a shank sensor);
* ``delivered_torque_nm`` is the torque the cuff applies to the leg (N*m, flexion positive).

MuJoCo settings required by the 3D flex: ``integrator="discrete"``, ``solver="CG"``. The full flex steps
in about 3 ms here, slower than the 1 kHz real-time plant, so this plant runs in simulated time
(:mod:`hil.cuff_validation`), not in :mod:`hil.plant_process`; the real-time plant process runs the reduced-order
cuff fitted to it (:mod:`hil.cuff_rom`).
"""
from __future__ import annotations

from array import array

import mujoco
import numpy as np

from models.tissue.soft_tissue import CuffGeometryIds, CuffTissueParams, delivered_torque_nm, exo_xml, tissue_xml

from .knee_plant import KneePlantParams, voluntary_target_rad, voluntary_torque_nm


def cuff_knee_mjcf(knee: KneePlantParams, tissue: CuffTissueParams) -> str:
    """The seated knee (as :func:`hil.knee_plant._mjcf`) plus tissue and exo link."""
    m_shank = 0.0465 * knee.body_mass_kg
    m_foot = 0.0145 * knee.body_mass_kg
    l_shank = 0.246 * knee.height_m
    com_shank = 0.433 * l_shank
    if tissue.lever_arm_m + 0.5 * tissue.cuff_length_m + tissue.margin_m > l_shank:
        raise ValueError(f"CuffTissueParams.lever_arm_m = {tissue.lever_arm_m}: the cuff must fit on the shank "
                         f"(length {l_shank:.3f} m)")
    return f"""
<mujoco model="seated_knee_cuff">
  <compiler angle="radian"/>
  <option timestep="{tissue.timestep_s}" gravity="0 0 -9.81" integrator="discrete" solver="CG"/>
  <default><default class="tissue_clean"/></default>
  <worldbody>
    <body name="thigh" pos="0 0 0.5">
      <geom type="capsule" fromto="-0.45 0 0 0 0 0" size="0.06" mass="7" contype="0" conaffinity="0"/>
      <body name="shank" pos="0 0 0">
        <joint name="knee_flexion" type="hinge" axis="0 1 0" range="-0.2 2.6" limited="true"
               damping="{knee.joint_damping_nm_s_per_rad}" armature="0.002"/>
        <inertial pos="{com_shank:.4f} 0 0" mass="{m_shank:.4f}"
                  diaginertia="{m_shank * 0.0051:.5f} {m_shank * (0.302 * l_shank) ** 2:.5f} {m_shank * (0.302 * l_shank) ** 2:.5f}"/>
        <geom name="bone" type="capsule" fromto="0 0 0 {l_shank:.4f} 0 0" size="{tissue.bone_radius_m}"
              contype="0" conaffinity="0" mass="0"/>
        {tissue_xml(tissue)}
        <body name="foot" pos="{l_shank:.4f} 0 0">
          <geom type="box" size="0.03 0.045 0.1" pos="0.03 0 0.05" mass="{m_foot:.4f}" contype="0" conaffinity="0"/>
        </body>
      </body>
      {exo_xml(tissue)}
    </body>
  </worldbody>
  <actuator>
    <motor name="exo_knee" joint="exo" gear="1" ctrllimited="false"/>
    <motor name="voluntary" joint="knee_flexion" gear="1" ctrllimited="false"/>
  </actuator>
</mujoco>
"""


class CuffKneePlant:
    """Seated knee + cuff tissue + exo link, stepped by ``step(motor_torque_nm, dt_s)``."""

    def __init__(self, params: KneePlantParams | None = None, tissue: CuffTissueParams | None = None,
                 initial_flexion_rad: float = 0.9, settle_s: float = 0.2, trace: bool = True) -> None:
        self.params = params or KneePlantParams()
        self.tissue = tissue or CuffTissueParams(timestep_s=self.params.timestep_s)
        self.model = mujoco.MjModel.from_xml_string(cuff_knee_mjcf(self.params, self.tissue))
        self.data = mujoco.MjData(self.model)
        self.ids = CuffGeometryIds.of(self.model)
        jid = lambda n: mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, n)  # noqa: E731
        self._kq = int(self.model.jnt_qposadr[jid("knee_flexion")])
        self._kv = int(self.model.jnt_dofadr[jid("knee_flexion")])
        self._eq = int(self.model.jnt_qposadr[jid("exo")])
        self._ev = int(self.model.jnt_dofadr[jid("exo")])
        self.data.qpos[self._kq] = initial_flexion_rad
        self.data.qpos[self._eq] = initial_flexion_rad
        self.exo_torque_nm = 0.0
        self.voluntary_torque_nm = 0.0
        self.delivered_torque_nm = 0.0
        self._trace_on = trace
        self._tr = {k: array("d") for k in ("t_s", "knee_rad", "knee_rad_s", "exo_rad", "exo_rad_s", "motor_nm",
                                            "delivered_nm", "voluntary_nm")}
        mujoco.mj_forward(self.model, self.data)
        # let the strap preload settle with the knee held, then restart the clock
        for _ in range(int(round(settle_s / self.model.opt.timestep))):
            self.data.qpos[self._kq] = initial_flexion_rad
            self.data.qvel[self._kv] = 0.0
            self.data.ctrl[:] = 0.0
            mujoco.mj_step(self.model, self.data)
        self.data.qpos[self._kq] = initial_flexion_rad
        self.data.qvel[self._kv] = 0.0
        self.data.time = 0.0
        mujoco.mj_forward(self.model, self.data)

    # --- what the drive sees (HilRig's plant interface) ---------------------------------
    @property
    def time_s(self) -> float:
        """Plant (simulation) time, s."""
        return float(self.data.time)

    @property
    def flexion_rad(self) -> float:
        """Motor-side (exo link) angle, rad: what the drive's encoder reports."""
        return float(self.data.qpos[self._eq])

    @property
    def flexion_velocity_rad_s(self) -> float:
        return float(self.data.qvel[self._ev])

    # --- the leg --------------------------------------------------------------------------
    @property
    def knee_flexion_rad(self) -> float:
        return float(self.data.qpos[self._kq])

    @property
    def knee_velocity_rad_s(self) -> float:
        return float(self.data.qvel[self._kv])

    def voluntary_target_rad(self, t_s: float) -> float:
        return voluntary_target_rad(self.params, t_s)

    def step(self, exo_torque_nm: float, dt_s: float) -> None:
        """Advance ``dt_s`` (whole MuJoCo steps) with the motor torque held on the exo link."""
        p = self.params
        d = self.data
        n = max(1, int(round(dt_s / self.model.opt.timestep)))
        for _ in range(n):
            self.voluntary_torque_nm = voluntary_torque_nm(p, d.time, d.qpos[self._kq], d.qvel[self._kv],
                                                           d.qfrc_bias[self._kv])
            d.ctrl[0] = exo_torque_nm
            d.ctrl[1] = self.voluntary_torque_nm
            mujoco.mj_step(self.model, d)
            self.delivered_torque_nm = delivered_torque_nm(self.model, d, self.ids)
            if self._trace_on:
                tr = self._tr
                tr["t_s"].append(float(d.time))
                tr["knee_rad"].append(float(d.qpos[self._kq]))
                tr["knee_rad_s"].append(float(d.qvel[self._kv]))
                tr["exo_rad"].append(float(d.qpos[self._eq]))
                tr["exo_rad_s"].append(float(d.qvel[self._ev]))
                tr["motor_nm"].append(float(exo_torque_nm))
                tr["delivered_nm"].append(self.delivered_torque_nm)
                tr["voluntary_nm"].append(float(self.voluntary_torque_nm))
        self.exo_torque_nm = exo_torque_nm

    def trace(self) -> dict[str, np.ndarray]:
        """Per MuJoCo step: time (end of step), angles and rates, motor, delivered and voluntary torques."""
        return {k: np.frombuffer(v, dtype=float).copy() for k, v in self._tr.items()}

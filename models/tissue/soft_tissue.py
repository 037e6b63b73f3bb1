"""Soft tissue under a shank cuff as MuJoCo ``flexcomp`` blocks: what the motor torque becomes at the bone.

Geometry (knee frame, SI, as :mod:`hil.knee_plant`): the knee axis is +y through the origin, the shank
lies along +x at zero flexion and flexion rotates it about +y (its tip towards -z). The cuff sits at
``lever_arm_m`` from the knee axis. Two tissue blocks lie on the shank bone (a capsule of radius
``bone_radius_m``):

* posterior (calf, the -z side at zero flexion): ``posterior_fat_m`` of subcutaneous fat over
  ``posterior_muscle_m`` of muscle (gastrocnemius/soleus) -- an *extension* assist pushes here;
* anterior (shin, +z side): a thin layer over the tibia -- a *flexion* torque pushes here.

Each block is a 3D ``flexcomp`` grid (``<elasticity young poisson damping>``) whose inner layer is pinned
to the shank; it extends ``margin_m`` beyond the cuff on every side (the surrounding tissue). The cuff is
two rigid plates on the exoskeleton link (a body on its own hinge about the knee axis, inertia
``exo_inertia_kg_m2``) squeezing both blocks by ``preload_m`` (strap tension). The motor torque acts on
the exo link; the torque *delivered* to the leg is the moment about the knee axis of the contact forces
the plates exert on the tissue (:meth:`CuffTissueSim.delivered_torque_nm`).

One flexcomp is one material, so each block gets the layered (series, Reuss) modulus
``E = t / sum(t_i / E_i)`` of its fat and muscle layers.

Material values (small-strain, quasi-static; soft tissue is nonlinear and rate dependent, so these are
orders of magnitude, not a subject's tissue):

* subcutaneous fat: E = 3.25 kPa -- Samani, Zubovits & Plewes 2007, Phys Med Biol 52:1565 (normal fat,
  ex vivo indentation, 3.25 +- 0.91 kPa);
* skeletal muscle, transverse: E = 3 mu with mu = 15.6 kPa (incompressible) -- Bosboom et al. 2001,
  J Biomech 34:1365 (rat tibialis anterior in vivo, transverse compression, Ogden fit: initial shear
  modulus 15.6 kPa);
* Poisson's ratio 0.45: tissue is nearly incompressible (0.49-0.5); MuJoCo's linear flex locks
  volumetrically as nu -> 0.5 on a coarse grid, 0.45 is the compromise (an assumption);
* damping 0.01 s (MuJoCo's stiffness-proportional damping time constant): a loss factor of about
  ``2 pi f * 0.01`` = 0.06 at 1 Hz, the low end of soft-tissue loss tangents 0.1-0.3 (an assumption).

MuJoCo facts used (STACK.md): 3D flex elasticity needs ``integrator="discrete"``; a flex pinned to an
articulated body needs ``solver="CG"``; the tissue is wrapped in a body with a clean default class so
its vertex joints inherit nothing from the host model. Every vertex not pinned has its own 3 dofs
(``dof="full"``); the default 150-vertex cuff steps in about 3 ms on an idle core here, up to 9 ms
when the two cores are shared
(``dof="trilinear"`` cannot pin a layer of a grid: MuJoCo rejects the pin range), so the real-time
1 kHz plant cannot run it and the HIL validation runs in simulated time (:mod:`hil.cuff_validation`).

Characterisation (:func:`characterise`): the bone follows a prescribed gait-like knee motion (its
hinge state is set every step, an ideal dynamometer), the motor applies a sinusoidal torque of a given
frequency, amplitude and offset, and the delivered torque, the cuff-bone deflection and the energy
absorbed by the tissue are recorded; the rigid assumption is ``delivered = motor``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import mujoco
import numpy as np

__all__ = [
    "TissueMaterial", "FAT", "MUSCLE", "layered_modulus", "CuffTissueParams", "tissue_xml", "bench_mjcf",
    "CuffTissueSim", "CuffGeometryIds", "delivered_torque_nm", "pressure_map", "characterise",
    "CharacterisationCase", "pressure_nodes", "pressure_cell_edges", "static_pressure_map",
]


@dataclass(frozen=True, slots=True)
class TissueMaterial:
    """Linear elastic constants of one tissue (Pa, dimensionless) and where they come from."""

    name: str
    young_pa: float
    source: str


FAT = TissueMaterial("subcutaneous fat", 3.25e3,
                     "Samani, Zubovits & Plewes 2007, Phys Med Biol 52:1565 (normal fat, 3.25 +- 0.91 kPa)")
MUSCLE = TissueMaterial("skeletal muscle, transverse", 3.0 * 15.6e3,
                        "Bosboom et al. 2001, J Biomech 34:1365 (initial shear modulus 15.6 kPa; E = 3 mu)")


def layered_modulus(layers: Sequence[tuple[float, float]]) -> float:
    """Series (Reuss) modulus of stacked layers ``[(thickness_m, young_pa), ...]`` loaded through their
    thickness: ``E = sum(t) / sum(t / E)`` (Pa)."""
    if not layers:
        raise ValueError("layers: need at least one (thickness_m, young_pa)")
    for i, (t, e) in enumerate(layers):
        if not (math.isfinite(t) and t > 0):
            raise ValueError(f"layers[{i}].thickness_m = {t!r}: must be > 0")
        if not (math.isfinite(e) and e > 0):
            raise ValueError(f"layers[{i}].young_pa = {e!r}: must be > 0")
    return sum(t for t, _ in layers) / sum(t / e for t, e in layers)


@dataclass(frozen=True)
class CuffTissueParams:
    """The cuff, the tissue under it and the exoskeleton link (SI units)."""

    lever_arm_m: float = 0.25             # cuff centre from the knee axis, along the shank
    cuff_length_m: float = 0.12           # along the shank
    cuff_width_m: float = 0.12            # across (a flat approximation of the wrap)
    margin_m: float = 0.02                # tissue beyond the cuff edge, each side
    bone_radius_m: float = 0.02
    posterior_fat_m: float = 0.008
    posterior_muscle_m: float = 0.025
    anterior_fat_m: float = 0.004
    anterior_muscle_m: float = 0.004
    fat: TissueMaterial = FAT
    muscle: TissueMaterial = MUSCLE
    poisson: float = 0.45
    damping_s: float = 0.01
    density_kg_m3: float = 1000.0
    preload_m: float = 0.001              # strap pre-compression of each block
    count_posterior: tuple[int, int, int] = (6, 5, 3)   # vertices along x (shank), y, z (thickness)
    count_anterior: tuple[int, int, int] = (6, 5, 2)
    exo_inertia_kg_m2: float = 0.015      # link + cuff shells + reflected rotor inertia (assumption)
    plate_thickness_m: float = 0.004
    contact_timeconst_s: float = 0.002    # MuJoCo solref time constant of the cuff-skin contact
    friction: float = 0.8                 # skin on padded cuff (assumption)
    timestep_s: float = 0.001

    def __post_init__(self) -> None:
        positive = ("lever_arm_m", "cuff_length_m", "cuff_width_m", "margin_m", "bone_radius_m",
                    "posterior_fat_m", "posterior_muscle_m", "anterior_fat_m", "anterior_muscle_m", "damping_s",
                    "density_kg_m3", "exo_inertia_kg_m2", "plate_thickness_m", "contact_timeconst_s", "friction",
                    "timestep_s")
        for name in positive:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"CuffTissueParams.{name} = {v!r}: must be finite and > 0")
        if not (0.0 <= self.poisson < 0.5):
            raise ValueError(f"CuffTissueParams.poisson = {self.poisson!r}: allowed 0 <= poisson < 0.5")
        if not (0.0 <= self.preload_m < 0.5 * min(self.thickness("posterior"), self.thickness("anterior"))):
            raise ValueError(f"CuffTissueParams.preload_m = {self.preload_m!r}: allowed 0 <= preload_m < half the "
                             f"thinner block")
        for name in ("count_posterior", "count_anterior"):
            c = getattr(self, name)
            if len(c) != 3 or any((not isinstance(n, int)) or n < 2 or n > 20 for n in c):
                raise ValueError(f"CuffTissueParams.{name} = {c!r}: three integers 2..20")
        if self.contact_timeconst_s < 2 * self.timestep_s:
            raise ValueError(f"CuffTissueParams.contact_timeconst_s = {self.contact_timeconst_s!r}: must be >= 2 "
                             f"timesteps ({2 * self.timestep_s})")

    def thickness(self, side: str) -> float:
        return getattr(self, f"{side}_fat_m") + getattr(self, f"{side}_muscle_m")

    def young_pa(self, side: str) -> float:
        """Layered modulus of one block (Pa)."""
        return layered_modulus([(getattr(self, f"{side}_fat_m"), self.fat.young_pa),
                                (getattr(self, f"{side}_muscle_m"), self.muscle.young_pa)])

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d["young_posterior_pa"] = self.young_pa("posterior")
        d["young_anterior_pa"] = self.young_pa("anterior")
        return d


# ----------------------------------------------------------------------------- MJCF

def _block_xml(p: CuffTissueParams, side: str) -> str:
    nx, ny, nz = p.count_posterior if side == "posterior" else p.count_anterior
    lx = p.cuff_length_m + 2 * p.margin_m
    ly = p.cuff_width_m + 2 * p.margin_m
    t = p.thickness(side)
    sgn = -1.0 if side == "posterior" else 1.0
    zc = sgn * (p.bone_radius_m + 0.5 * t)
    mass = p.density_kg_m3 * lx * ly * t
    inner = nz - 1 if side == "posterior" else 0          # the layer touching the bone
    return f"""
        <flexcomp name="{side}" type="grid" dim="3" count="{nx} {ny} {nz}"
                  spacing="{lx / (nx - 1):.6f} {ly / (ny - 1):.6f} {t / (nz - 1):.6f}"
                  pos="{p.lever_arm_m:.6f} 0 {zc:.6f}" mass="{mass:.5f}" radius="0.0005">
          <elasticity young="{p.young_pa(side):.3f}" poisson="{p.poisson}" damping="{p.damping_s}"/>
          <contact condim="3" solref="{p.contact_timeconst_s} 1" friction="{p.friction} 0.005 0.0001"
                   selfcollide="none" contype="2" conaffinity="1"/>
          <edge equality="false"/>
          <pin gridrange="0 0 {inner} {nx - 1} {ny - 1} {inner}"/>
        </flexcomp>"""


def tissue_xml(p: CuffTissueParams) -> str:
    """Children of the shank body: a host body with a clean default class holding both blocks."""
    return f"""
      <body name="tissue_host" childclass="tissue_clean">
        {_block_xml(p, "posterior")}
        {_block_xml(p, "anterior")}
      </body>"""


def exo_xml(p: CuffTissueParams) -> str:
    """The exo link: a hinge about the knee axis, two cuff plates squeezing the blocks by ``preload_m``."""
    half_t = 0.5 * p.plate_thickness_m
    z_post = -(p.bone_radius_m + p.thickness("posterior") - p.preload_m + half_t)
    z_ant = p.bone_radius_m + p.thickness("anterior") - p.preload_m + half_t
    # the link's inertia about the knee axis is exo_inertia_kg_m2; its centre of mass is put on the axis
    # (a gravity-balanced link: the drive need not carry the link's weight), the plates are massless
    return f"""
    <body name="exo_link" childclass="tissue_clean">
      <joint name="exo" type="hinge" axis="0 1 0" damping="0" armature="0"/>
      <inertial pos="0 0 0" mass="0.3" diaginertia="{p.exo_inertia_kg_m2:.6f} {p.exo_inertia_kg_m2:.6f} {p.exo_inertia_kg_m2:.6f}"/>
      <geom name="cuff_posterior" type="box" size="{p.cuff_length_m / 2:.5f} {p.cuff_width_m / 2:.5f} {half_t:.5f}"
            pos="{p.lever_arm_m:.5f} 0 {z_post:.6f}" contype="1" conaffinity="2" mass="0" condim="3"
            solref="{p.contact_timeconst_s} 1" friction="{p.friction} 0.005 0.0001"/>
      <geom name="cuff_anterior" type="box" size="{p.cuff_length_m / 2:.5f} {p.cuff_width_m / 2:.5f} {half_t:.5f}"
            pos="{p.lever_arm_m:.5f} 0 {z_ant:.6f}" contype="1" conaffinity="2" mass="0" condim="3"
            solref="{p.contact_timeconst_s} 1" friction="{p.friction} 0.005 0.0001"/>
    </body>"""


def bench_mjcf(p: CuffTissueParams) -> str:
    """Characterisation bench: shank on a hinge (its state prescribed), no gravity, exo link with a motor."""
    return f"""
<mujoco model="cuff_bench">
  <compiler angle="radian"/>
  <option timestep="{p.timestep_s}" integrator="discrete" solver="CG" gravity="0 0 0"/>
  <default><default class="tissue_clean"/></default>
  <worldbody>
    <body name="shank">
      <joint name="knee_flexion" type="hinge" axis="0 1 0"/>
      <inertial pos="0.2 0 0" mass="3.5" diaginertia="0.005 0.05 0.05"/>
      <geom name="bone" type="capsule" fromto="0 0 0 0.45 0 0" size="{p.bone_radius_m}" contype="0" conaffinity="0"/>
      {tissue_xml(p)}
    </body>
    {exo_xml(p)}
  </worldbody>
  <actuator>
    <motor name="exo_motor" joint="exo" gear="1" ctrllimited="false"/>
  </actuator>
</mujoco>"""


# ----------------------------------------------------------------------------- measurements

@dataclass(frozen=True)
class CuffGeometryIds:
    """Geom and flex ids of the cuff plates and tissue blocks in a compiled model."""

    plates: tuple[int, ...]
    flexes: tuple[int, ...]
    knee_joint: int

    @classmethod
    def of(cls, model: mujoco.MjModel) -> "CuffGeometryIds":
        plates = tuple(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in ("cuff_posterior", "cuff_anterior"))
        flexes = tuple(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_FLEX, n) for n in ("posterior", "anterior"))
        knee = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "knee_flexion")
        if min(plates) < 0 or min(flexes) < 0 or knee < 0:
            raise ValueError("model has no cuff plates / tissue flexes / knee joint (names cuff_posterior, "
                             "cuff_anterior, posterior, anterior, knee_flexion)")
        return cls(plates, flexes, int(knee))


_F6 = np.zeros(6)
_FIRST_CONTACT_TYPE = int(mujoco.mjtConstraint.mjCNSTR_CONTACT_FRICTIONLESS)   # efc types below are not contacts


def _cuff_contacts(model: mujoco.MjModel, data: mujoco.MjData, ids: CuffGeometryIds):
    """Yield (contact index, position (3,), world force of the plate on the tissue (3,), normal (3,))."""
    for i in range(data.ncon):
        c = data.contact[i]
        g1, g2 = int(c.geom[0]), int(c.geom[1])
        if g1 in ids.plates:
            sign = 1.0       # MuJoCo's force acts on geom2 (the tissue) along +normal from geom1
        elif g2 in ids.plates:
            sign = -1.0
        else:
            continue
        mujoco.mj_contactForce(model, data, i, _F6)
        frame = c.frame.reshape(3, 3)
        f_world = sign * (frame.T @ _F6[:3])
        normal = sign * frame[0]
        yield i, np.array(c.pos), f_world, normal


def delivered_torque_nm(model: mujoco.MjModel, data: mujoco.MjData, ids: CuffGeometryIds) -> float:
    """Moment about the knee joint's axis (its anchor and direction in the world, so flexion positive) of
    the cuff's contact forces on the tissue, N*m: the torque entering the leg.

    The tissue belongs to the shank, and the cuff plates touch nothing else, so this is the constraint
    force on the knee dof (``qfrc_constraint``) whenever no other constraint acts on the leg; with a
    joint limit or an equality active it is summed contact by contact instead (slower)."""
    if not np.any(data.efc_type[:data.nefc] < _FIRST_CONTACT_TYPE):
        return float(data.qfrc_constraint[model.jnt_dofadr[ids.knee_joint]])
    return delivered_torque_by_contacts(model, data, ids)


def delivered_torque_by_contacts(model: mujoco.MjModel, data: mujoco.MjData, ids: CuffGeometryIds) -> float:
    """:func:`delivered_torque_nm` summed over the cuff contacts (the reference for the fast path)."""
    anchor = data.xanchor[ids.knee_joint]
    axis = data.xaxis[ids.knee_joint]
    tau = 0.0
    for _, pos, f, _ in _cuff_contacts(model, data, ids):
        r = pos - anchor
        tau += axis[0] * (r[1] * f[2] - r[2] * f[1]) + axis[1] * (r[2] * f[0] - r[0] * f[2]) \
            + axis[2] * (r[0] * f[1] - r[1] * f[0])
    return tau


def pressure_nodes(p: CuffTissueParams, bins: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Node coordinates (x along the shank, y across; plate frame, m) of :func:`pressure_map`: a uniform grid
    spanning the plate, edges included, at about the posterior block's vertex spacing (the mesh's
    resolution) unless ``bins`` = (nodes along, nodes across) is given."""
    if bins is None:
        nx, ny, _ = p.count_posterior
        sx = (p.cuff_length_m + 2 * p.margin_m) / (nx - 1)
        sy = (p.cuff_width_m + 2 * p.margin_m) / (ny - 1)
        bins = (max(2, round(p.cuff_length_m / sx) + 1), max(2, round(p.cuff_width_m / sy) + 1))
    if len(bins) != 2 or min(bins) < 2:
        raise ValueError(f"pressure map bins = {bins!r}: need (nodes along, nodes across), each >= 2")
    return (np.linspace(-0.5 * p.cuff_length_m, 0.5 * p.cuff_length_m, bins[0]),
            np.linspace(-0.5 * p.cuff_width_m, 0.5 * p.cuff_width_m, bins[1]))


def _tributary(nodes: np.ndarray) -> np.ndarray:
    h = np.diff(nodes)
    return np.r_[0.5 * h[0], 0.5 * (h[:-1] + h[1:]), 0.5 * h[-1]]


def pressure_map(model: mujoco.MjModel, data: mujoco.MjData, ids: CuffGeometryIds, p: CuffTissueParams,
                 bins: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Contact pressure (Pa) on each cuff plate at the nodes of :func:`pressure_nodes`.

    Each contact's normal force is shared between the four nodes around it (bilinear weights, so the
    total is kept exactly and a force between nodes is not aliased into one cell) and divided by each
    node's tributary area. ``{"posterior": (nx, ny), "anterior": (nx, ny)}``: x along the shank (knee to
    ankle), y across."""
    xs, ys = pressure_nodes(p, bins)
    area = np.outer(_tributary(xs), _tributary(ys))
    force = {"posterior": np.zeros(area.shape), "anterior": np.zeros(area.shape)}
    for _, pos, f, n in _cuff_contacts(model, data, ids):
        # which plate, and the contact's coordinates in that plate's frame
        best = None
        for side, gid in zip(("posterior", "anterior"), ids.plates):
            local = data.geom_xmat[gid].reshape(3, 3).T @ (pos - data.geom_xpos[gid])
            d = abs(local[2])
            if best is None or d < best[0]:
                best = (d, side, local)
        _, side, local = best
        fn = abs(float(f @ n))
        x = min(xs[-1], max(xs[0], float(local[0])))
        y = min(ys[-1], max(ys[0], float(local[1])))
        i = min(int(np.searchsorted(xs, x, side="right")) - 1, len(xs) - 2)
        j = min(int(np.searchsorted(ys, y, side="right")) - 1, len(ys) - 2)
        u = (x - xs[i]) / (xs[i + 1] - xs[i])
        v = (y - ys[j]) / (ys[j + 1] - ys[j])
        g = force[side]
        g[i, j] += fn * (1 - u) * (1 - v)
        g[i + 1, j] += fn * u * (1 - v)
        g[i, j + 1] += fn * (1 - u) * v
        g[i + 1, j + 1] += fn * u * v
    return {side: g / area for side, g in force.items()}


def pressure_cell_edges(nodes: np.ndarray) -> np.ndarray:
    """Edges of the cells around ``nodes`` (midpoints; the end cells stop at the plate edge), for plotting."""
    return np.r_[nodes[0], 0.5 * (nodes[:-1] + nodes[1:]), nodes[-1]]


# ----------------------------------------------------------------------------- bench

class CuffTissueSim:
    """The bench: prescribed knee motion, motor torque on the exo link, delivered torque measured."""

    def __init__(self, params: CuffTissueParams | None = None) -> None:
        self.params = params or CuffTissueParams()
        self.model = mujoco.MjModel.from_xml_string(bench_mjcf(self.params))
        self.data = mujoco.MjData(self.model)
        self.ids = CuffGeometryIds.of(self.model)
        self._kq = int(self.model.jnt_qposadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, "knee_flexion")])
        self._kv = int(self.model.jnt_dofadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, "knee_flexion")])
        self._eq = int(self.model.jnt_qposadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, "exo")])
        self._ev = int(self.model.jnt_dofadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, "exo")])
        mujoco.mj_forward(self.model, self.data)

    @property
    def exo_rad(self) -> float:
        return float(self.data.qpos[self._eq])

    @property
    def exo_velocity_rad_s(self) -> float:
        return float(self.data.qvel[self._ev])

    def settle(self, knee_rad: float, seconds: float = 0.3) -> None:
        """Hold the knee at ``knee_rad`` with zero motor torque until the preload settles."""
        self.data.qpos[self._eq] = knee_rad
        for _ in range(int(round(seconds / self.params.timestep_s))):
            self.step(0.0, knee_rad, 0.0)

    def step(self, motor_torque_nm: float, knee_rad: float, knee_velocity_rad_s: float) -> float:
        """One timestep with the knee state prescribed; returns the delivered torque (N*m) after it."""
        d = self.data
        d.qpos[self._kq] = knee_rad
        d.qvel[self._kv] = knee_velocity_rad_s
        d.ctrl[0] = motor_torque_nm
        mujoco.mj_step(self.model, d)
        mujoco.mj_rnePostConstraint(self.model, d)
        return delivered_torque_nm(self.model, d, self.ids)


@dataclass(frozen=True)
class CharacterisationCase:
    """One bench run: motor torque ``offset + amplitude sin(2 pi f t)`` while the knee swings."""

    frequency_hz: float
    amplitude_nm: float
    offset_nm: float = 0.0
    knee_mean_rad: float = 0.6
    knee_amplitude_rad: float = 0.4
    knee_frequency_hz: float = 1.0
    cycles: float = 3.0


def characterise(params: CuffTissueParams, cases: Sequence[CharacterisationCase], *, settle_s: float = 0.3,
                 discard_cycles: float = 1.0) -> list[dict[str, Any]]:
    """Run each case on a fresh bench; per case the recorded signals (after ``discard_cycles`` of the
    torque sine) and the figures: delivered-vs-motor RMSE and correlation (rigid assumption = identity),
    and the energy absorbed by the tissue per torque cycle (J)."""
    results = []
    for case in cases:
        sim = CuffTissueSim(params)
        dt = params.timestep_s
        wk = 2 * math.pi * case.knee_frequency_hz
        sim.settle(case.knee_mean_rad, settle_s)
        n = int(round(case.cycles / case.frequency_hz / dt))
        rec = {k: np.empty(n) for k in ("t_s", "motor_nm", "delivered_nm", "knee_rad", "knee_rad_s", "exo_rad",
                                        "exo_rad_s")}
        for i in range(n):
            t = i * dt
            qk = case.knee_mean_rad + case.knee_amplitude_rad * math.sin(wk * t)
            vk = case.knee_amplitude_rad * wk * math.cos(wk * t)
            tau_m = case.offset_nm + case.amplitude_nm * math.sin(2 * math.pi * case.frequency_hz * t)
            tau_d = sim.step(tau_m, qk, vk)
            rec["t_s"][i] = t + dt
            rec["motor_nm"][i] = tau_m
            rec["delivered_nm"][i] = tau_d
            t1 = t + dt
            rec["knee_rad"][i] = case.knee_mean_rad + case.knee_amplitude_rad * math.sin(wk * t1)
            rec["knee_rad_s"][i] = case.knee_amplitude_rad * wk * math.cos(wk * t1)
            rec["exo_rad"][i] = sim.exo_rad
            rec["exo_rad_s"][i] = sim.exo_velocity_rad_s
        keep = rec["t_s"] > discard_cycles / case.frequency_hz
        r = {k: v[keep] for k, v in rec.items()}
        err = r["delivered_nm"] - r["motor_nm"]
        absorbed = float(np.sum(r["delivered_nm"] * (r["exo_rad_s"] - r["knee_rad_s"])) * dt)
        n_cycles = (r["t_s"][-1] - r["t_s"][0] + dt) * case.frequency_hz
        # first harmonic at the drive frequency: gain and phase of delivered over motor torque
        w = 2 * math.pi * case.frequency_hz
        basis = np.c_[np.sin(w * (r["t_s"] - dt)), np.cos(w * (r["t_s"] - dt)), np.ones_like(r["t_s"])]
        cm, *_ = np.linalg.lstsq(basis, r["motor_nm"], rcond=None)
        cd, *_ = np.linalg.lstsq(basis, r["delivered_nm"], rcond=None)
        hm, hd = complex(cm[0], cm[1]), complex(cd[0], cd[1])
        results.append({"case": asdict(case), "signals": r,
                        "gain": abs(hd) / abs(hm) if abs(hm) > 0 else math.nan,
                        "phase_deg": math.degrees(math.atan2((hd / hm).imag, (hd / hm).real)) if abs(hm) > 0 else math.nan,
                        "rmse_rigid_nm": float(np.sqrt(np.mean(err ** 2))),
                        "corr_rigid": float(np.corrcoef(r["motor_nm"], r["delivered_nm"])[0, 1]),
                        "energy_absorbed_j_per_cycle": absorbed / n_cycles,
                        "max_deflection_rad": float(np.max(np.abs(r["exo_rad"] - r["knee_rad"])))})
    return results


def static_pressure_map(p: CuffTissueParams, torque_nm: float, knee_rad: float, *, settle_s: float = 0.5,
                        average_s: float = 0.2, bins: tuple[int, int] | None = None) -> dict[str, Any]:
    """Contact pressure under the cuff with ``torque_nm`` held on the motor and the knee held at ``knee_rad``
    (bench statics), averaged over the last ``average_s`` (the contacts chatter). Returns the maps (Pa), the
    delivered torque and the hotspot of each plate (peak kPa and its cell centre in the plate frame, m)."""
    sim = CuffTissueSim(p)
    sim.settle(knee_rad, 0.1)
    dt = p.timestep_s
    for _ in range(int(round(settle_s / dt))):
        sim.step(torque_nm, knee_rad, 0.0)
    n = max(1, int(round(average_s / dt)))
    acc: dict[str, np.ndarray] | None = None
    delivered = 0.0
    for _ in range(n):
        delivered += sim.step(torque_nm, knee_rad, 0.0) / n
        m = pressure_map(sim.model, sim.data, sim.ids, p, bins)
        acc = m if acc is None else {k: acc[k] + m[k] for k in acc}
    maps = {k: v / n for k, v in acc.items()}  # type: ignore[union-attr]
    xs, ys = pressure_nodes(p, bins)
    hot = {}
    for side, mp in maps.items():
        ix, iy = np.unravel_index(int(np.argmax(mp)), mp.shape)
        hot[side] = {"peak_kpa": float(mp[ix, iy] / 1e3), "x_m": float(xs[ix]), "y_m": float(ys[iy]),
                     "mean_kpa": float(np.sum(mp * np.outer(_tributary(xs), _tributary(ys)))
                                       / (p.cuff_length_m * p.cuff_width_m) / 1e3)}
    return {"map_pa": maps, "delivered_nm": delivered, "torque_nm": torque_nm, "knee_rad": knee_rad,
            "hotspots": hot, "grid": list(p.count_posterior),
            "edges_m": {side: [pressure_cell_edges(xs).tolist(), pressure_cell_edges(ys).tolist()] for side in maps}}

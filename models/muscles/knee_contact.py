"""Tibiofemoral contact force (total, medial, lateral) from inverse dynamics and muscle forces.

Method
------
1. **Net intersegmental load** on the tibia subtree (tibia, talus, calcaneus, toes), from inverse dynamics with the
   measured foot loads (:class:`models.dynamics.inverse_dynamics.InverseDynamics` with ``reaction_bodies=("tibia_<s>",)``):
   ``F_int``, ``M_int`` = everything the femur side exerts on the tibia subtree, about the tibia body origin (MyoLeg's
   knee centre; it moves with the knee translations) in the tibia frame (x anterior, y up the shank, z right).
2. **Muscle forces crossing the knee** as Cartesian forces on the tibia subtree.  For every muscle (spatial tendon),
   the path after ``mj_fwdPosition`` (``ten_wrapadr``/``ten_wrapnum``, ``wrap_obj``, ``wrap_xpos``) is split into
   straight segments; each point belongs to a body (a site point to its site's body, a wrapping tangent point to its
   geom's body; a pulley breaks the path).  A segment with exactly one end in the tibia subtree carries
   ``T * unit(outside point - inside point)`` onto the subtree at the inside point (T: tension >= 0, SO's
   ``muscle_force_n``).  Segments inside one side cancel (internal forces), so summing the crossings gives the
   muscles' net force and moment on the subtree.  MyoLeg facts this relies on (checked in the tests):

   * the **patella** (``patella_<s>``) is a child of the femur whose three dofs are polynomials of the knee angle: it
     is treated as **femur side**.  The vasti and rectus femoris are single spatial tendons running femur/pelvis ->
     (cylinder on the femur) -> patella sites -> a site on the tibia (tibial tuberosity): there is no separate
     patellar-ligament element (no weld/equality, no extra tendon); the segment patella -> tibia *is* the patellar
     tendon and carries the quadriceps tension (patellar-tendon/quadriceps force ratio 1).
   * the gastrocnemius cylinder wrap belongs to the tibia, so gastrocnemius crosses at femur -> tibia tangent point.
   * crossing muscles on the left: bflh, bfsh, gaslat, gasmed, grac, recfem, sart, semimem, semiten, tfl, vasint,
     vaslat, vasmed (13).
3. **Contact** (everything above the knee that is not a muscle: articular contact, plus ligaments, which are not
   modelled): ``F_c = F_int - F_mus``, ``M_c = M_int - M_mus`` (tibia frame, about the knee centre).  Axial
   compression ``F_ax = -F_c . y`` (positive = femur pushing the tibia down along its long axis); ``total`` =
   ``|F_c|`` (compare with the implant's ``F_total_magnitude``).
4. **Medial/lateral split** (Winby et al. 2009 J Biomech 42:2294; Lerner et al. 2015 J Biomech 48:644): two
   compressive point loads on the plateau at ``d_m`` medial and ``d_l`` lateral of the centre, balancing ``F_ax``
   and the frontal-plane contact moment ``M_f``::

       F_med = (F_ax d_l + M_f) / (d_m + d_l),    F_lat = F_ax - F_med

   ``M_f`` is the frontal (about tibia x) component of ``M_c`` signed so that positive loads the medial
   compartment: ``M_f = +M_c.x`` for the left knee (medial = +z), ``-M_c.x`` for the right knee (medial = -z).
   (Derivation, left: a load ``-F_med y`` at ``+d_m z`` gives ``+d_m F_med x``; ``-F_lat y`` at ``-d_l z`` gives
   ``-d_l F_lat x``.)  An external adduction moment (GRF passing medial to the knee) gives ``M_f > 0`` (tested).
   ``d_m = d_l = 0.020 m`` on the unscaled MyoLeg tibia (Winby 2009 used the medial/lateral condyle contact points
   of the gait2392 knee, ~20 mm each side, i.e. ~40 mm intercondylar distance; Lerner 2015 used subject-specific
   points of similar size), scaled by the tibia segment scale (talus-origin distance of the subject model over the
   template's).  The sagittal and axial contact moments are not attributed to the compartments.
   With the subject's knee markers (:mod:`models.muscles.condyle_geometry`; ``knee_contact_from_analysis(...,
   markerset=)``) the two points sit symmetrically about the midpoint of the femoral epicondyles instead of the
   tibia origin: ``d_m = h + c``, ``d_l = h - c`` (``c``: that midpoint's medial offset, 6.8 mm on PS).

Cost: the crossing segments are walked by a numba kernel on MuJoCo's wrap arrays after ``mj_kinematics`` +
``mj_tendon`` (no collision): ~40 us per MyoLeg frame, against ~340 us for the same walk in Python after
``mj_fwdPosition`` (:meth:`KneeContact.muscle_wrench_reference`, equal to 1e-9 relative, tested).

Outputs: :class:`KneeContactTrial` (N, N m, and the same in body weights).  :func:`quadriceps_hamstrings_cocontraction`:
the co-contraction index of Rudolph et al. 2000 (Knee Surg Sports Traumatol Arthrosc 8:262; used on muscle
activations, as in Heiden et al. 2009 Clin Biomech 24:833): ``CCI = (lower / higher) * (lower + higher)`` of the mean
quadriceps and mean hamstrings activations, frame by frame.

Validation against the instrumented implant (GC5 subject PS, left eTibia): :func:`validate_against_in_vivo`.

This module is pure computation: numpy, mujoco and other ``models/`` modules.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import mujoco
import numpy as np

from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
from models.dynamics.wrenches import ExternalWrenchTrial
from models.muscles.condyle_geometry import CondyleGeometry, condyle_geometry
from models.muscles.contact_kernels import muscle_wrenches
from models.muscles.contact_kernels import wrench_kernel as _wrench_kernel

STANDARD_GRAVITY_M_S2 = 9.80665
CONDYLE_OFFSET_M = 0.020           # d_m = d_l on the unscaled MyoLeg tibia (Winby 2009 / Lerner 2015 size)
QUADRICEPS = ("vasmed", "vaslat", "vasint", "recfem")
HAMSTRINGS = ("semimem", "semiten", "bflh", "bfsh")

__all__ = ["KneeContactTrial", "KneeContact", "KinematicsToContact", "knee_contact_from_analysis",
           "quadriceps_hamstrings_cocontraction", "with_condyle_offsets", "subject_condyle_geometry",
           "medial_lateral_split", "opensim_so_tensions", "read_in_vivo", "validate_against_in_vivo", "tibia_scale",
           "clear_template_cache", "contact_supported"]


@dataclass
class KneeContactTrial:
    """Tibiofemoral contact of one knee, arrays (N,) on ``time_s``; forces in N (compression positive)."""

    time_s: np.ndarray
    medial_n: np.ndarray
    lateral_n: np.ndarray
    total_n: np.ndarray              # |F_contact| (3-D magnitude)
    axial_n: np.ndarray              # compression along the tibia's long axis (= medial + lateral)
    frontal_moment_nm: np.ndarray    # M_f, positive loads the medial compartment
    contact_force_n: np.ndarray      # (N, 3) force of the femur on the tibia, tibia frame, muscles removed
    muscle_force_n: np.ndarray       # (N, 3) muscles' net force on the tibia subtree, tibia frame
    intersegmental_force_n: np.ndarray   # (N, 3) ID's net load
    body_weight_n: float
    side: str
    condyle_offsets_m: tuple[float, float]

    @property
    def medial_bw(self) -> np.ndarray:
        return self.medial_n / self.body_weight_n

    @property
    def lateral_bw(self) -> np.ndarray:
        return self.lateral_n / self.body_weight_n

    @property
    def total_bw(self) -> np.ndarray:
        return self.total_n / self.body_weight_n

    @property
    def axial_bw(self) -> np.ndarray:
        return self.axial_n / self.body_weight_n


def medial_lateral_split(axial_n, frontal_moment_nm, d_medial_m: float, d_lateral_m: float):
    """Winby 2009 two-point split: ``F_med = (F_ax d_l + M_f) / (d_m + d_l)``, ``F_lat = F_ax - F_med``."""
    if not (d_medial_m > 0 and d_lateral_m > 0):
        raise ValueError(f"condyle offsets must be > 0 m; got d_m = {d_medial_m!r}, d_l = {d_lateral_m!r}")
    f_ax = np.asarray(axial_n, dtype=float)
    med = (f_ax * d_lateral_m + np.asarray(frontal_moment_nm, dtype=float)) / (d_medial_m + d_lateral_m)
    return med, f_ax - med


def with_condyle_offsets(kc: KneeContactTrial, condyle_offsets_m: tuple[float, float]) -> KneeContactTrial:
    """``kc`` split again with contact points ``(d_m, d_l)`` m from the tibia origin (the same axial force and
    frontal moment, so the same total): what :class:`KneeContact` with those offsets gives, without a second pass."""
    d_m, d_l = (float(x) for x in condyle_offsets_m)
    med, lat = medial_lateral_split(kc.axial_n, kc.frontal_moment_nm, d_m, d_l)
    return KneeContactTrial(kc.time_s, med, lat, kc.total_n, kc.axial_n, kc.frontal_moment_nm, kc.contact_force_n,
                            kc.muscle_force_n, kc.intersegmental_force_n, kc.body_weight_n, kc.side, (d_m, d_l))


def _tibia_length_m(model: mujoco.MjModel, side: str) -> float:
    """Distance tibia origin -> talus origin (m) of ``side``."""
    return float(np.linalg.norm(model.body(f"talus_{side[0]}").pos))


#: the unscaled MyoLeg's tibia length per side (m), read once per process (the registry's template is itself built
#: once per process: :func:`models.body.registry.load_model`); :func:`clear_template_cache` forgets it
_TEMPLATE_TIBIA_M: dict[str, float] = {}


def clear_template_cache() -> None:
    """Forget the template tibia lengths that :func:`tibia_scale` keeps (the next call reads the template again)."""
    _TEMPLATE_TIBIA_M.clear()


def tibia_scale(model: mujoco.MjModel, side: str, template: mujoco.MjModel | None = None) -> float:
    """Tibia length of ``model`` over the unscaled MyoLeg's (distance tibia origin -> talus origin).

    Without ``template`` the registry's MyoLeg is used; its tibia length is kept per process (a float: saves a
    model copy, ~10 ms, per call)."""
    if template is not None:
        return _tibia_length_m(model, side) / _tibia_length_m(template, side)
    ref = _TEMPLATE_TIBIA_M.get(side[0])
    if ref is None:
        from models.body.registry import load_model

        ref = _TEMPLATE_TIBIA_M.setdefault(side[0], _tibia_length_m(load_model("myoleg").readonly_model, side))
    return _tibia_length_m(model, side) / ref


def subject_condyle_geometry(model: mujoco.MjModel, side: str, markerset=None) -> CondyleGeometry:
    """The contact points of ``side``: :data:`CONDYLE_OFFSET_M` times :func:`tibia_scale` on each side of the
    epicondyle midpoint of ``markerset`` (:func:`models.muscles.condyle_geometry.condyle_geometry`; about the
    tibia origin without a plausible marker pair)."""
    return condyle_geometry(model, side, markerset, half_spacing_m=CONDYLE_OFFSET_M * tibia_scale(model, side))


def contact_supported(model: mujoco.MjModel, side: str) -> bool:
    """Whether :class:`KneeContact` can run on ``model`` for ``side``: it has the ``tibia_<s>`` and ``talus_<s>``
    bodies (the knee's subtree and the tibia length for the condyle offsets)."""
    s = {"left": "l", "right": "r"}.get(side)
    return s is not None and all(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, f"{b}_{s}") >= 0
                                 for b in ("tibia", "talus"))


def _subtree_mask(model: mujoco.MjModel, root: int) -> np.ndarray:
    mask = np.zeros(model.nbody, dtype=bool)
    for b in range(model.nbody):
        x = b
        while x > 0:
            if x == root:
                mask[b] = True
                break
            x = int(model.body_parentid[x])
    return mask


class KneeContact:
    """Knee contact of one side on a MuJoCo musculoskeletal model (MyoLeg or a scaled copy)."""

    def __init__(self, model, side: str, *, body_mass_kg: float, condyle_offsets_m: tuple[float, float] | None = None,
                 gravity_m_s2: float = STANDARD_GRAVITY_M_S2) -> None:
        model = getattr(model, "model", model)
        if side not in ("left", "right"):
            raise ValueError(f"side = {side!r}: allowed 'left' or 'right'")
        self.side = side
        self.model = model
        self.data = mujoco.MjData(model)
        self.tibia = f"tibia_{side[0]}"
        self.tibia_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, self.tibia)
        if self.tibia_id < 0:
            raise KeyError(f"model has no body {self.tibia!r}")
        self.in_tibia = _subtree_mask(model, self.tibia_id)
        self.body_weight_n = body_mass_kg * STANDARD_GRAVITY_M_S2
        if condyle_offsets_m is None:
            k = tibia_scale(model, side)
            condyle_offsets_m = (CONDYLE_OFFSET_M * k, CONDYLE_OFFSET_M * k)
        self.condyle_offsets_m = (float(condyle_offsets_m[0]), float(condyle_offsets_m[1]))
        self.medial_sign = 1.0 if side == "left" else -1.0      # medial = +z (left), -z (right) in the tibia frame
        self.gravity_m_s2 = gravity_m_s2
        # muscles (actuators on spatial tendons): actuator name -> tendon id, and each tendon's site list
        self.muscle_names: list[str] = []
        self._tendon: list[int] = []
        self._sites: dict[int, np.ndarray] = {}
        for a in range(model.nu):
            if int(model.actuator_trntype[a]) != int(mujoco.mjtTrn.mjTRN_TENDON):
                continue
            t = int(model.actuator_trnid[a, 0])
            adr, num = int(model.tendon_adr[t]), int(model.tendon_num[t])
            types = model.wrap_type[adr:adr + num]
            if not np.any(types == int(mujoco.mjtWrap.mjWRAP_SITE)):
                continue
            self.muscle_names.append(model.actuator(a).name)
            self._tendon.append(t)
            self._sites[t] = np.array([int(model.wrap_objid[w]) for w in range(adr, adr + num)
                                       if int(model.wrap_type[w]) == int(mujoco.mjtWrap.mjWRAP_SITE)], dtype=int)
        self.crossing_muscles = self._find_crossing()
        # flat arrays for the compiled per-frame kernel (crossing muscles only)
        tmap = dict(zip(self.muscle_names, self._tendon))
        self._x_tendon = np.array([tmap[n] for n in self.crossing_muscles], dtype=np.int64)
        nsite = max((self._sites[t].size for t in self._x_tendon), default=1)
        self._x_site_body = np.full((self._x_tendon.size, max(nsite, 1)), -1, dtype=np.int64)
        for k, t in enumerate(self._x_tendon):
            sb = np.asarray(model.site_bodyid, dtype=np.int64)[self._sites[t]]
            self._x_site_body[k, :sb.size] = sb
        self._geom_body = np.asarray(model.geom_bodyid, dtype=np.int64)
        self._in_tibia_u8 = self.in_tibia.astype(np.uint8)
        self._idx_cache: tuple[tuple[str, ...], np.ndarray] | None = None

    # -- muscle paths ------------------------------------------------------------------------------

    def _path(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Path points (n, 3) world and their bodies (n,) (-1: a pulley break) of tendon ``t`` (after fwdPosition)."""
        m, d = self.model, self.data
        adr, num = int(d.ten_wrapadr[t]), int(d.ten_wrapnum[t])
        obj = d.wrap_obj.reshape(-1)[adr:adr + num]
        pts = d.wrap_xpos.reshape(-1, 3)[adr:adr + num]
        sites = self._sites[t]
        bodies = np.empty(num, dtype=int)
        k = 0
        for i in range(num):
            o = int(obj[i])
            if o == -1:
                bodies[i] = int(m.site_bodyid[sites[k]])
                k += 1
            elif o == -2:
                bodies[i] = -1
            else:
                bodies[i] = int(m.geom_bodyid[o])
        return pts, bodies

    def _crossings(self, t: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(inside point, unit vector toward the outside point) per crossing segment, world frame."""
        pts, bodies = self._path(t)
        out = []
        for i in range(len(bodies) - 1):
            b0, b1 = bodies[i], bodies[i + 1]
            if b0 < 0 or b1 < 0:
                continue
            in0, in1 = self.in_tibia[b0], self.in_tibia[b1]
            if in0 == in1:
                continue
            p_in, p_out = (pts[i], pts[i + 1]) if in0 else (pts[i + 1], pts[i])
            v = p_out - p_in
            n = np.linalg.norm(v)
            if n > 0:
                out.append((p_in.copy(), v / n))
        return out

    def _find_crossing(self) -> tuple[str, ...]:
        m, d = self.model, self.data
        d.qpos[:] = m.qpos0
        mujoco.mj_fwdPosition(m, d)
        return tuple(name for name, t in zip(self.muscle_names, self._tendon) if self._crossings(t))

    def _crossing_index(self, names: Sequence[str] | None) -> np.ndarray:
        """For each crossing muscle, its column in ``names`` (-1: absent, zero tension); cached per name tuple."""
        key = tuple(self.muscle_names if names is None else names)
        if self._idx_cache is None or self._idx_cache[0] != key:
            pos = {n: i for i, n in enumerate(key)}
            self._idx_cache = (key, np.array([pos.get(n, -1) for n in self.crossing_muscles], dtype=np.int64))
        return self._idx_cache[1]

    def muscle_wrench(self, qpos: np.ndarray, tension_n: np.ndarray, names: Sequence[str] | None = None):
        """Muscles' net force (3,) and moment about the knee centre (3,) on the tibia subtree, tibia frame.

        ``tension_n``: per muscle of ``names`` (default :attr:`muscle_names`), N >= 0.  Compiled path: MuJoCo's
        kinematics and tendon wrapping (``mj_kinematics``, ``mj_comPos``, ``mj_tendon``; no collision), then one
        numba pass over the crossing muscles' path points (equal to :meth:`muscle_wrench_reference`, tested).
        """
        m, d = self.model, self.data
        if not np.all(np.isfinite(qpos)):   # never hand MuJoCo's tendon wrapping a non-finite pose
            return np.full(3, np.nan), np.full(3, np.nan)
        d.qpos[:] = qpos
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        mujoco.mj_tendon(m, d)
        return self.muscle_wrench_from_data(d, tension_n, names)

    def muscle_wrench_from_data(self, d: mujoco.MjData, tension_n: np.ndarray, names: Sequence[str] | None = None):
        """:meth:`muscle_wrench` from an ``MjData`` whose kinematics and tendon wrapping are already current for the
        pose (e.g. the static optimisation's own data right after its step: same model structure), without any
        MuJoCo call: saves the tendon pass (MyoFullBody: ~300 us per frame)."""
        F = np.zeros(3)
        M = np.zeros(3)
        _wrench_kernel(d.ten_wrapadr, d.ten_wrapnum, d.wrap_obj.reshape(-1), d.wrap_xpos.reshape(-1, 3),
                       self._x_tendon, self._x_site_body, self._geom_body, self._in_tibia_u8,
                       np.asarray(tension_n, dtype=float), self._crossing_index(names), d.xpos[self.tibia_id], F, M)
        R = d.xmat[self.tibia_id].reshape(3, 3)
        return F @ R, M @ R

    def muscle_wrench_from_paths(self, ten_wrapadr: np.ndarray, ten_wrapnum: np.ndarray, wrap_obj: np.ndarray,
                                 wrap_xpos: np.ndarray, tibia_xpos: np.ndarray, tibia_xmat: np.ndarray,
                                 tension_n: np.ndarray, names: Sequence[str] | None = None):
        """:meth:`muscle_wrench_from_data` from the arrays themselves, in MuJoCo's layout (``ten_wrapadr``,
        ``ten_wrapnum`` (ntendon,), ``wrap_obj`` (2 nwrap,), ``wrap_xpos`` (6 nwrap,), any shape with those sizes;
        the tibia's ``xpos`` (3,) and ``xmat`` (9,) in world): one frame of a batched backend
        (:mod:`models.muscles.warp_backend`)."""
        F = np.zeros(3)
        M = np.zeros(3)
        _wrench_kernel(np.ascontiguousarray(ten_wrapadr, dtype=np.int32).reshape(-1),
                       np.ascontiguousarray(ten_wrapnum, dtype=np.int32).reshape(-1),
                       np.ascontiguousarray(wrap_obj, dtype=np.int32).reshape(-1),
                       np.ascontiguousarray(wrap_xpos, dtype=float).reshape(-1, 3),
                       self._x_tendon, self._x_site_body, self._geom_body, self._in_tibia_u8,
                       np.asarray(tension_n, dtype=float), self._crossing_index(names),
                       np.ascontiguousarray(tibia_xpos, dtype=float), F, M)
        R = np.asarray(tibia_xmat, dtype=float).reshape(3, 3)
        return F @ R, M @ R

    def muscle_wrench_reference(self, qpos: np.ndarray, tension_n: np.ndarray, names: Sequence[str] | None = None):
        """The same as :meth:`muscle_wrench` in plain Python after ``mj_fwdPosition`` (reference for the tests)."""
        m, d = self.model, self.data
        d.qpos[:] = qpos
        mujoco.mj_fwdPosition(m, d)
        names = self.muscle_names if names is None else list(names)
        tmap = dict(zip(self.muscle_names, self._tendon))
        F = np.zeros(3)
        M = np.zeros(3)
        o = d.xpos[self.tibia_id]
        for name, T in zip(names, np.asarray(tension_n, dtype=float)):
            if name not in self.crossing_muscles or not T:
                continue
            for p, u in self._crossings(tmap[name]):
                f = T * u
                F += f
                M += np.cross(p - o, f)
        R = d.xmat[self.tibia_id].reshape(3, 3)
        return F @ R, M @ R

    # -- whole trial -------------------------------------------------------------------------------

    def run(self, qpos: np.ndarray, qvel: np.ndarray, qacc: np.ndarray, externals: Sequence[ExternalWrenchTrial],
            tension_n: np.ndarray | None, muscle_names: Sequence[str] | None = None,
            time_s: np.ndarray | None = None, *, backend: str = "cpu", device: str | None = None) -> KneeContactTrial:
        """ID with the external loads -> net load on the tibia subtree; minus muscles -> contact; split.

        ``backend="warp"``: the inverse dynamics batched on MuJoCo Warp (``device``; :mod:`models.dynamics
        .warp_backend`); the muscle crossing sums stay on MuJoCo's paths here."""
        inv = InverseDynamics(self.model, InverseDynamicsParams(reaction_bodies=(self.tibia,),
                                                                gravity_m_s2=self.gravity_m_s2))
        if backend == "warp":
            from models.dynamics.warp_backend import WarpInverseDynamics

            jm = WarpInverseDynamics(inv, device=device).run(qpos, qvel, qacc, list(externals), time_s=time_s)
        elif backend == "cpu":
            jm = inv.run(qpos, qvel, qacc, list(externals), time_s=time_s)
        else:
            raise ValueError(f"backend = {backend!r}: allowed 'cpu', 'warp'")
        return self.run_from_inverse_dynamics(jm, qpos, tension_n, muscle_names, time_s)

    def run_from_inverse_dynamics(self, joint_moments, qpos: np.ndarray, tension_n: np.ndarray | None,
                                  muscle_names: Sequence[str] | None = None,
                                  time_s: np.ndarray | None = None) -> KneeContactTrial:
        """:meth:`run` from inverse dynamics already done on this model with this knee's tibia among its
        ``reaction_bodies`` and gravity :attr:`gravity_m_s2` (a :class:`~models.dynamics.inverse_dynamics
        .JointMomentsTrial`, e.g. ``TrialAnalysis.joint_moments``): the same answer without a second ID pass."""
        if self.tibia not in joint_moments.reaction_bodies:
            raise ValueError(f"joint_moments.reaction_bodies = {joint_moments.reaction_bodies!r}: "
                             f"needs {self.tibia!r}")
        k = joint_moments.reaction_bodies.index(self.tibia)
        F_int = joint_moments.reaction_force_n[:, k, :]
        M_int = joint_moments.reaction_moment_nm[:, k, :]
        n = F_int.shape[0]
        if np.shape(qpos)[0] != n:
            raise ValueError(f"qpos has {np.shape(qpos)[0]} frames, joint_moments {n}")
        F_mus = np.zeros((n, 3))
        M_mus = np.zeros((n, 3))
        if tension_n is not None:
            tension_n = np.asarray(tension_n, dtype=float)
            out = muscle_wrenches(self, qpos, tension_n, muscle_names)     # one compiled loop, where available
            if out is not None:
                F_mus, M_mus = out
            else:
                for i in range(n):
                    F_mus[i], M_mus[i] = self.muscle_wrench(qpos[i], tension_n[i], muscle_names)
        return self._assemble(F_int, M_int, F_mus, M_mus,
                              np.arange(n, dtype=float) if time_s is None else np.asarray(time_s, dtype=float))

    def _assemble(self, F_int, M_int, F_mus, M_mus, time_s) -> KneeContactTrial:
        Fc = F_int - F_mus
        Mc = M_int - M_mus
        axial = -Fc[:, 1]
        mf = self.medial_sign * Mc[:, 0]
        med, lat = medial_lateral_split(axial, mf, *self.condyle_offsets_m)
        return KneeContactTrial(time_s, med, lat, np.linalg.norm(Fc, axis=1), axial, mf, Fc, F_mus, F_int,
                                self.body_weight_n, self.side, self.condyle_offsets_m)


class KinematicsToContact:
    """Kinematics -> inverse dynamics -> static optimisation -> knee contact of one side, the whole trial in one call,
    each MuJoCo pass done once: the contact step reads the muscle paths from the static optimisation's own data
    (:meth:`KneeContact.muscle_wrench_from_data`).  Equal to ``InverseDynamics.run`` + ``StaticOptimization.run`` +
    ``KneeContact.run`` on the same inputs (tested)."""

    def __init__(self, model, side: str, *, body_mass_kg: float, so_params=None,
                 condyle_offsets_m: tuple[float, float] | None = None) -> None:
        from models.muscles.static_optimization import SOParams, StaticOptimization

        model = getattr(model, "model", model)
        self.contact = KneeContact(model, side, body_mass_kg=body_mass_kg, condyle_offsets_m=condyle_offsets_m)
        self.inverse_dynamics = InverseDynamics(model, InverseDynamicsParams(
            reaction_bodies=(self.contact.tibia,), gravity_m_s2=self.contact.gravity_m_s2))
        self.static_optimization = StaticOptimization(model, so_params or SOParams())
        self._compiled = None

    def run(self, qpos: np.ndarray, qvel: np.ndarray, qacc: np.ndarray, externals: Sequence[ExternalWrenchTrial],
            time_s: np.ndarray):
        """``(SOTrial, KneeContactTrial)`` of the trial (arrays (N, ...) as in those classes): one compiled loop
        over the frames (:class:`models.muscles.compiled_chain.CompiledChain`; the stages in Python, with the same
        results, where it cannot run)."""
        if self._compiled is None:
            from models.muscles.compiled_chain import CompiledChain

            self._compiled = CompiledChain(self.static_optimization, self.inverse_dynamics, self.contact)
        _, trial, contact = self._compiled.run(qpos, qvel, qacc, externals, time_s)
        return trial, contact


def opensim_so_tensions(so_force_path: str | Path, time_s: np.ndarray, muscle_names: Sequence[str]):
    """Muscle tensions from an OpenSim StaticOptimization ``_force.sto`` interpolated onto ``time_s``: (N, k) and
    the k names of ``muscle_names`` found in the file (for :meth:`KneeContact.run`; isolates the contact stage from
    our own static optimisation)."""
    from models.io.storage import read_sto

    tab = read_sto(so_force_path)
    names = [n for n in muscle_names if n in tab.columns]
    T = np.vstack([np.interp(time_s, tab.time_s, tab.column(n)) for n in names]).T
    return np.maximum(T, 0.0), names


def knee_contact_from_analysis(kin, analysis, condyle_offsets_m: tuple[float, float] | None = None, *,
                               tension_n: np.ndarray | None = None,
                               muscle_names: Sequence[str] | None = None, markerset=None) -> KneeContactTrial:
    """Contact force of ``analysis.params.side`` from :func:`models.trial_analysis.analyze_trial` run with
    ``muscles=True`` (its foot wrenches and SO tensions) on ``kin`` (:func:`trial_kinematics`).  ``tension_n`` /
    ``muscle_names`` given: those tensions instead of the analysis' static optimisation.  ``markerset`` (a
    :class:`models.body.markerset.MarkerSet` on ``kin.model``; default ``kin.markerset`` where ``kin`` has one)
    and no ``condyle_offsets_m``: the contact points about the subject's epicondyle midpoint
    (:func:`models.muscles.condyle_geometry.condyle_geometry`).

    Work already done is not repeated when ``analysis`` was made from this ``kin`` (the same ``time_s`` object):
    with the analysis' own tensions, the contact it computed in its shared ID + SO + contact pass
    (``analysis.knee_contact``; the same arrays are returned, equal to this function's own pass to 1e-12 relative,
    tested; split again by :func:`with_condyle_offsets` when the contact points differ); otherwise its inverse dynamics (``analysis.joint_moments``, which holds the tibia's reaction) with
    the muscle part computed here (:meth:`KneeContact.run_from_inverse_dynamics`)."""
    if tension_n is None and analysis.muscles is None:
        raise ValueError("analysis has no muscle forces: run analyze_trial with AnalyzeParams(..., muscles=True)")
    p = analysis.params
    markerset = getattr(kin, "markerset", None) if markerset is None else markerset
    if condyle_offsets_m is None and markerset is not None:
        condyle_offsets_m = subject_condyle_geometry(kin.model, p.side, markerset).offsets_m
    same_kin = analysis.time_s is kin.time_s
    done = getattr(analysis, "knee_contact", None)
    if same_kin and done is not None and tension_n is None and muscle_names is None:
        if condyle_offsets_m is None or tuple(condyle_offsets_m) == tuple(done.condyle_offsets_m):
            return done                        # the analysis already split about these points
        return with_condyle_offsets(done, condyle_offsets_m)
    kc = KneeContact(kin.model, p.side, body_mass_kg=p.mass_kg, condyle_offsets_m=condyle_offsets_m)
    if tension_n is None:
        tension_n, muscle_names = analysis.muscles.muscle_force_n, analysis.muscles.muscle_names
    mk = kin.mapped
    jm = getattr(analysis, "joint_moments", None)
    if same_kin and jm is not None and kc.tibia in jm.reaction_bodies:
        return kc.run_from_inverse_dynamics(jm, mk.qpos, tension_n, muscle_names, analysis.time_s)
    ext = [ExternalWrenchTrial(f"calcn_{s[0]}", analysis.foot_force_n[s], analysis.foot_cop_m[s],
                               analysis.foot_free_moment_nm[s], analysis.time_s) for s in ("left", "right")]
    return kc.run(mk.qpos, mk.qvel, mk.qacc, ext, tension_n, muscle_names, analysis.time_s,
                  backend=getattr(p, "backend", "cpu"), device=getattr(p, "device", None))


def quadriceps_hamstrings_cocontraction(activations: np.ndarray, names: Sequence[str], side: str) -> np.ndarray:
    """Rudolph et al. 2000 co-contraction index per frame: ``(lower / higher) * (lower + higher)`` of the mean
    quadriceps (vasmed, vaslat, vasint, recfem) and mean hamstrings (semimem, semiten, bflh, bfsh) activation of
    ``side``; 0 where both are 0.  Range 0..2."""
    s = {"left": "l", "right": "r"}.get(side)
    if s is None:
        raise ValueError(f"side = {side!r}: allowed 'left' or 'right'")
    a = np.atleast_2d(np.asarray(activations, dtype=float))
    names = list(names)

    def mean_of(group):
        idx = [names.index(f"{g}_{s}") for g in group if f"{g}_{s}" in names]
        if not idx:
            raise KeyError(f"none of {[f'{g}_{s}' for g in group]} in the muscle names")
        return a[:, idx].mean(axis=1)

    q, h = mean_of(QUADRICEPS), mean_of(HAMSTRINGS)
    lo, hi = np.minimum(q, h), np.maximum(q, h)
    with np.errstate(invalid="ignore", divide="ignore"):
        cci = np.where(hi > 0, lo / np.where(hi > 0, hi, 1.0) * (lo + hi), 0.0)
    return cci


# ------------------------------------------------------------------------------------------- validation

def read_in_vivo(path: str | Path) -> dict[str, np.ndarray]:
    """Grand Challenge eTibia 101-point file: columns gait_cycle_pct, F_medial, F_lateral, F_total_magnitude (N)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = [h.split("#")[0].strip() for h in rows[0]]
    data = np.array([[float(x) for x in r] for r in rows[1:] if r and not r[0].startswith("#")])
    return {h: data[:, j] for j, h in enumerate(header) if h}


def _stats(ours: np.ndarray, ref: np.ndarray, bw: float) -> dict[str, float]:
    ok = np.isfinite(ours) & np.isfinite(ref)
    e = ours[ok] - ref[ok]
    rmse = float(np.sqrt(np.mean(e ** 2)))
    r = float(np.corrcoef(ours[ok], ref[ok])[0, 1])
    ss = float(np.sum((ref[ok] - ref[ok].mean()) ** 2))
    return {"rmse_n": rmse, "rmse_bw": rmse / bw, "r2": r * r, "r2_cod": 1.0 - float(np.sum(e ** 2)) / ss,
            "peak_bw": float(np.nanmax(ours)) / bw, "peak_ref_bw": float(np.nanmax(ref)) / bw}


def validate_against_in_vivo(kc: KneeContactTrial, in_vivo_path: str | Path) -> dict[str, dict[str, float]]:
    """Our contact resampled to the implant's 101 points (0 % = first frame, 100 % = last frame): RMSE (N, BW),
    R^2 (squared Pearson, ``r2``; coefficient of determination, ``r2_cod``) for medial, lateral and total
    (total against ``F_total_magnitude``)."""
    ref = read_in_vivo(in_vivo_path)
    t = kc.time_s
    pct = (t - t[0]) / (t[-1] - t[0]) * 100.0
    g = ref["gait_cycle_pct"]
    out = {}
    for key, ours, col in (("medial", kc.medial_n, "F_medial"), ("lateral", kc.lateral_n, "F_lateral"),
                           ("total", kc.total_n, "F_total_magnitude")):
        out[key] = _stats(np.interp(g, pct, ours), ref[col], kc.body_weight_n)
    return out

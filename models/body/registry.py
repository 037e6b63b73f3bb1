"""Musculoskeletal model registry: load a named MuJoCo muscle model, describe it, and read its moment arms.

Named models (nothing is downloaded: every model comes from an installed package, never from the repo)
------------------------------------------------------------------------------------------------------
``"myoleg"``          MyoLeg: 80-muscle legs of the Rajagopal 2016 family on a passive torso scaffold with a head,
                      built in Python by ``myo_sim.load_spec("myolegs")`` (myo-sim 0.2.3 composes it with
                      ``MjSpec.attach``; there is no standalone XML).  nq 35, nv 34, free root, 75.0 kg.
``"myofullbody"``     MyoFullBody: ``musclemimic_models/model/body/myofullbody.xml`` (musclemimic-models 1.0.6).
                      nq 129, nv 128, 416 muscles, free root, 84.3 kg.
``"myobimanualarm"``  MyoBimanualArm: ``musclemimic_models/model/arm/myoarm_bimanual.xml`` (the package calls it
                      ``"bimanual"``).  Both arms and hands on a thorax welded to the world: nq 76, nv 76,
                      126 muscles, 16.5 kg, no free root.
any path              an MJCF file with at least one muscle actuator.

The seed's ULBS-112 and MS-Emulator models are not published; asking for them raises a ``ValueError`` that says so.

Frames and units
----------------
SI units.  World frame: z up, right-handed; the MyoLeg/MyoFullBody subject stands facing **-y** with **+x to the
subject's left**.  Body-local frames are OpenSim's (Rajagopal): x forward, **y up** along the segment, z to the right,
so a ``body_pos`` or ``site_pos`` read from these models is in that y-up segment frame, not in the world frame.

Moment arms and MuJoCo's sign convention
----------------------------------------
MuJoCo stores the actuator transmission Jacobian ``data.actuator_moment`` sparsely (mujoco 4.0: CSR rows with
``data.moment_rownnz``, ``data.moment_rowadr``, ``data.moment_colind``; there is no ``model.actuator_moment``) and
fills it in ``mj_fwdPosition``.  Its row ``i`` is ``+d(actuator_length_i)/d(qvel)`` (times the gear) and the joint
force is ``qfrc_actuator = actuator_moment.T @ actuator_force``.  A muscle's ``actuator_force`` is **negative**
(it pulls).  :meth:`MusculoskeletalModel.muscle_moment_arms` returns the anatomical moment arm of biomechanics
(OpenSim's convention, Sherman et al. 2013):

    r[i, j] = -d(l_i)/d(q_j),   shape (n_muscles, nv), metres per radian (hinge) or unitless (slide),

so that the joint moment of a muscle pulling with tension ``T_i >= 0`` N is ``tau_j = r[i, j] * T_i`` N·m; that
is ``r = -actuator_moment[muscles]``.  For ball and free joints the derivative is with respect to the dof velocity
(angular velocity in the joint's local frame), as in ``mj_integratePos``.  Coupled coordinates (the knee's
translations and rotations and the patella slaved to ``knee_angle_*`` by equality constraints) are separate columns:
the knee moment arm in OpenSim's sense is ``r[:, knee] + sum_c r[:, c] * dc/dknee``, which
:meth:`MusculoskeletalModel.coupled_muscle_moment_arms` returns.  The difference is not small: vastus intermedius at
1.5 rad knee flexion has a partial moment arm of -0.047 m and a coupled one of -0.025 m (the vasti act through the
patella).  Set a pose's slaved coordinates with :meth:`MusculoskeletalModel.apply_joint_couplings` first: with the
patella left at ``qpos0`` and the knee at 0.5 rad the same muscle shows +0.003 m.

This module is pure computation: it imports numpy, mujoco and (on demand) the model packages.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
import os
import threading
import time
import warnings
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, Iterable, Iterator

import mujoco
import numpy as np

from models.io.reader_support import close_matches_error

__all__ = [
    "ModelInfo",
    "MusculoskeletalModel",
    "MODEL_NAMES",
    "UNPUBLISHED_MODELS",
    "WINTER_TROCHANTER_HEIGHT_RATIO",
    "load_model",
    "list_models",
    "clear_cache",
    "measure_height",
    "is_muscle",
]

#: Names :func:`load_model` accepts (besides a path to an MJCF file).
MODEL_NAMES: tuple[str, ...] = ("myoleg", "myofullbody", "myobimanualarm")

#: Models the project seed mentions that have never been published: asked for by name they raise ``ValueError``.
UNPUBLISHED_MODELS: dict[str, str] = {
    "ulbs-112": "ULBS-112 (112-muscle full body, OpenSim/BioSim)",
    "ms-emulator": "MS-Emulator (700-muscle full body, MuJoCo Warp)",
}
_UNPUBLISHED_ALIASES = {"ulbs112": "ulbs-112", "ulbs_112": "ulbs-112", "msemulator": "ms-emulator",
                        "ms_emulator": "ms-emulator"}

#: Greater-trochanter height / stature (Winter 2009, *Biomechanics and Motor Control of Human Movement*, 4th ed.,
#: Fig. 4.1, after Drillis & Contini 1966).  Used to give a legs-only model a stature from its hip height.
WINTER_TROCHANTER_HEIGHT_RATIO = 0.530

# A model whose geometry reaches higher than this many hip heights above the sole has a head: its stature is measured.
# (Stature / trochanter height is 1/0.530 = 1.89 in Winter's table; a legs-and-pelvis model stays below about 1.3.)
_HAS_HEAD_RATIO = 1.6


# --------------------------------------------------------------------------------------------------
# model facts
# --------------------------------------------------------------------------------------------------


def is_muscle(model: mujoco.MjModel) -> np.ndarray:
    """Boolean mask over actuators: MuJoCo muscles (gain or bias type ``mjGAIN_MUSCLE``/``mjBIAS_MUSCLE``).

    Same predicate MuJoCo's ``mj_setLengthRange`` uses in ``mode="muscle"``.
    """
    return (model.actuator_gaintype == mujoco.mjtGain.mjGAIN_MUSCLE) | (
        model.actuator_biastype == mujoco.mjtBias.mjBIAS_MUSCLE
    )


@dataclass(frozen=True)
class ModelInfo:
    """Facts about one compiled musculoskeletal model.

    ``height_m`` is the stature the model represents (m), or ``None`` where it cannot be measured (a path model with
    no legs); ``height_basis`` says how it was obtained (see :func:`measure_height`).  ``mass_kg`` is the total mass
    of all bodies (``body_subtreemass[0]``).
    """

    name: str
    source: str
    nq: int
    nv: int
    n_muscles: int
    n_actuators: int
    mass_kg: float
    free_root: bool
    muscle_names: tuple[str, ...]
    joint_names: tuple[str, ...]
    height_m: float | None = None
    height_basis: str = ""

    @classmethod
    def from_mjmodel(cls, model: mujoco.MjModel, *, name: str, source: str, height_m: float | None,
                     height_basis: str) -> "ModelInfo":
        mus = np.flatnonzero(is_muscle(model))
        return cls(
            name=name,
            source=source,
            nq=int(model.nq),
            nv=int(model.nv),
            n_muscles=int(mus.size),
            n_actuators=int(model.nu),
            mass_kg=float(model.body_subtreemass[0]),
            free_root=bool(model.njnt > 0 and model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE
                           and model.body_parentid[model.jnt_bodyid[0]] == 0),
            muscle_names=tuple(model.actuator(int(i)).name for i in mus),
            joint_names=tuple(model.joint(j).name for j in range(model.njnt)),
            height_m=None if height_m is None else float(height_m),
            height_basis=height_basis,
        )


class MusculoskeletalModel:
    """A compiled MuJoCo muscle model with its facts and, where available, the editable ``MjSpec`` it came from.

    ``model`` is owned by this object (a private copy, never shared with the cache), ``spec`` is ``None`` or an
    ``MjSpec`` whose ``compile()`` gives an identical model; :func:`models.body.scaling.scale_model` edits a copy of it.
    Name lookups raise ``KeyError`` naming the missing name and the closest matches.

    Copies are made when first needed (the cache's ``MjModel.copy`` and ``MjSpec.copy()`` of MyoLeg cost ~6 ms
    each, and many callers never edit either): with ``model_source`` (instead of ``model``) and ``spec_source``
    (instead of ``spec``), cached objects that are never handed out, ``model`` and ``spec`` are private copies
    made on first access; :meth:`editable_spec` copies the spec source directly, and :attr:`readonly_model` lets
    the library's read-only code (name lookups, marker placement, scaling) read the source without a copy.
    :attr:`pristine_spec_key` is the cache's key for the spec source while nobody has been given this object's
    own ``spec`` (which they could edit), else ``None``; :attr:`model_is_source` says ``model`` was not copied
    yet (so it is the cached source, unedited).
    """

    def __init__(self, model: mujoco.MjModel | None, info: ModelInfo, spec: mujoco.MjSpec | None = None, *,
                 scale_factors: object | None = None, spec_source: mujoco.MjSpec | None = None,
                 spec_key: object | None = None, model_source: mujoco.MjModel | None = None) -> None:
        if spec is not None and spec_source is not None:
            raise ValueError("give spec or spec_source, not both")
        if (model is None) == (model_source is None):
            raise ValueError("give model or model_source (exactly one)")
        self._model = model
        self._model_source = model_source
        model = model if model is not None else model_source
        self.info = info
        self._spec = spec
        self._spec_source = spec_source
        self._spec_key = spec_key if spec_source is not None else None
        #: the :class:`models.body.scaling.ScaleFactors` a scaled model was made with; ``None`` for a template
        self.scale_factors = scale_factors
        self._muscle_ids = np.flatnonzero(is_muscle(model)).astype(np.intp)
        self._muscle_ids.setflags(write=False)
        self._all_actuators_are_muscles = self._muscle_ids.size == model.nu
        self._scratch: np.ndarray | None = None
        self._couplings: list[tuple[int, int, int, int, np.ndarray]] | None = None

    @property
    def model(self) -> mujoco.MjModel:
        """This object's own ``MjModel`` (a private copy of the cached source, made on first access)."""
        if self._model is None:
            self._model = copy.copy(self._model_source)
            self._model_source = None
        return self._model

    @model.setter
    def model(self, value: mujoco.MjModel) -> None:
        self._model, self._model_source = value, None

    @property
    def readonly_model(self) -> mujoco.MjModel:
        """The model to **read** without copying it: the own copy once made, else the cached source.  For the
        library's read-only code; modifying it would change every later copy: use :attr:`model` to edit."""
        return self._model if self._model is not None else self._model_source

    @property
    def model_is_source(self) -> bool:
        """True while :attr:`model` has not been copied (nobody can have edited it)."""
        return self._model is None

    @property
    def spec(self) -> mujoco.MjSpec | None:
        """The editable ``MjSpec`` of this model (a private copy of the cached source, made on first access)."""
        if self._spec is None and self._spec_source is not None:
            self._spec = self._spec_source.copy()
            self._spec_source, self._spec_key = None, None
        return self._spec

    @spec.setter
    def spec(self, value: mujoco.MjSpec | None) -> None:
        self._spec, self._spec_source, self._spec_key = value, None, None

    @property
    def pristine_spec_key(self) -> object | None:
        """Key of the cached, never handed-out spec this model compiles from; ``None`` once ``spec`` was read."""
        return self._spec_key

    def __repr__(self) -> str:
        i = self.info
        return (f"MusculoskeletalModel({i.name!r}: nq={i.nq}, nv={i.nv}, muscles={i.n_muscles}, "
                f"mass={i.mass_kg:.2f} kg, height={i.height_m if i.height_m is None else round(i.height_m, 3)} m)")

    # ---- data --------------------------------------------------------------------------------
    def new_data(self) -> mujoco.MjData:
        """A fresh ``MjData`` at ``qpos0``."""
        return mujoco.MjData(self.model)

    # ---- indices -----------------------------------------------------------------------------
    @property
    def muscle_ids(self) -> np.ndarray:
        """Actuator indices of the muscles, shape (n_muscles,), read-only, in actuator order."""
        return self._muscle_ids

    def _id(self, objtype: mujoco.mjtObj, name: str, what: str, count: int) -> int:
        m = self.readonly_model
        i = mujoco.mj_name2id(m, objtype, name)
        if i < 0:
            names = [mujoco.mj_id2name(m, objtype, k) or "" for k in range(count)]
            raise close_matches_error(what, name, [n for n in names if n], self.info.name)
        return int(i)

    def joint_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_JOINT, name, "joint", self.readonly_model.njnt)

    def joint_qpos_index(self, name: str) -> int:
        """First index of joint ``name`` in ``qpos`` (7 slots for a free joint, 4 for a ball, else 1)."""
        return int(self.readonly_model.jnt_qposadr[self.joint_id(name)])

    def joint_dof_index(self, name: str) -> int:
        """First index of joint ``name`` in ``qvel``/``qfrc_*`` (6 dofs for a free joint, 3 for a ball, else 1)."""
        return int(self.readonly_model.jnt_dofadr[self.joint_id(name)])

    def body_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_BODY, name, "body", self.readonly_model.nbody)

    def site_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_SITE, name, "site", self.readonly_model.nsite)

    def actuator_id(self, name: str) -> int:
        return self._id(mujoco.mjtObj.mjOBJ_ACTUATOR, name, "actuator", self.readonly_model.nu)

    def subtree_mass(self, body: str | int) -> float:
        """Mass (kg) of ``body`` and everything below it (``model.body_subtreemass``)."""
        b = self.body_id(body) if isinstance(body, str) else int(body)
        return float(self.readonly_model.body_subtreemass[b])

    # ---- moment arms -------------------------------------------------------------------------
    def actuator_moment_dense(self, data: mujoco.MjData, out: np.ndarray | None = None) -> np.ndarray:
        """MuJoCo's ``data.actuator_moment`` as a dense (nu, nv) array: ``+gear * d(length)/d(qvel)``.

        ``data`` must have been through ``mj_fwdPosition`` (or ``mj_forward``/``mj_inverse``).  Pass ``out``
        (float64, C-contiguous, shape (nu, nv)) to avoid allocating.
        """
        m = self.model
        if out is None:
            out = np.empty((m.nu, m.nv))
        mujoco.mju_sparse2dense(out, data.actuator_moment, data.moment_rownnz, data.moment_rowadr,
                                data.moment_colind)
        return out

    def muscle_moment_arms(self, data: mujoco.MjData, out: np.ndarray | None = None) -> np.ndarray:
        """Anatomical muscle moment arms ``r = -d(length)/dq``, shape (n_muscles, nv), m/rad for hinge dofs.

        Positive ``r[i, j]`` means muscle ``i`` pulling produces a positive moment about dof ``j``
        (``tau_j = r[i, j] * tension_i``).  Equals ``-actuator_moment`` restricted to the muscle rows.  ``data``
        must have been through ``mj_fwdPosition`` (or ``mj_forward``).  Pass ``out`` (float64, C-contiguous,
        shape (n_muscles, nv)) for an allocation-free call.
        """
        m = self.model
        if out is None:
            out = np.empty((self._muscle_ids.size, m.nv))
        if self._all_actuators_are_muscles:
            self.actuator_moment_dense(data, out)
        else:
            if self._scratch is None:
                self._scratch = np.empty((m.nu, m.nv))
            self.actuator_moment_dense(data, self._scratch)
            np.take(self._scratch, self._muscle_ids, axis=0, out=out)
        np.negative(out, out=out)
        return out

    def _joint_couplings(self) -> list[tuple[int, int, int, int, np.ndarray]]:
        """Active scalar joint-coupling equalities: (dof_y, dof_x, qposadr_y, qposadr_x, polycoef[5])."""
        if self._couplings is None:
            m = self.model
            # ints: ``enum == numpy_int`` is False in these bindings (only ``numpy_int == enum`` works), so ``in``
            # over a tuple of enums never matches a numpy value
            scalar = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
            out = []
            for e in range(m.neq):
                if m.eq_type[e] != mujoco.mjtEq.mjEQ_JOINT or not m.eq_active0[e] or m.eq_obj2id[e] < 0:
                    continue
                jy, jx = int(m.eq_obj1id[e]), int(m.eq_obj2id[e])
                if int(m.jnt_type[jy]) not in scalar or int(m.jnt_type[jx]) not in scalar:
                    continue
                out.append((int(m.jnt_dofadr[jy]), int(m.jnt_dofadr[jx]), int(m.jnt_qposadr[jy]),
                            int(m.jnt_qposadr[jx]), m.eq_data[e, :5].copy()))
            self._couplings = out
        return self._couplings

    def apply_joint_couplings(self, qpos: np.ndarray) -> np.ndarray:
        """Set the slaved coordinates of ``qpos`` (in place) from their masters, ``y = y0 + sum_k a_k (x - x0)^k``.

        A pose from inverse kinematics or from setting ``knee_angle_r`` by hand satisfies MuJoCo's coupling
        equalities only after this (a simulation satisfies them softly).  Returns ``qpos``.
        """
        q0 = self.model.qpos0
        for _, _, qy, qx, a in self._joint_couplings():
            t = qpos[qx] - q0[qx]
            qpos[qy] = q0[qy] + a[0] + t * (a[1] + t * (a[2] + t * (a[3] + t * a[4])))
        return qpos

    def coupled_muscle_moment_arms(self, data: mujoco.MjData) -> np.ndarray:
        """Moment arms about the independent coordinates, shape (n_muscles, nv), the OpenSim moment arm.

        MuJoCo joint-coupling equalities ``y - y0 = sum_k a_k (x - x0)^k`` (``x0``, ``y0`` from ``qpos0``) slave
        coordinates to others; MyoLeg's knee translations/rotations and the patella follow ``knee_angle_*`` this
        way.  With ``D[y, x] = dy/dx`` at ``data.qpos``, a motion of the free coordinates gives
        ``dq = (I - D)^-1 dq_free``, so ``r_coupled = r (I - D)^-1`` with the columns of slaved dofs set to 0.  This
        matters: the vasti reach the tibia over the patella, and at 1.5 rad knee flexion vastus intermedius has a
        partial moment arm of -0.047 m about ``knee_angle_r`` but a coupled one of -0.025 m.  ``data.qpos`` should
        satisfy the couplings (:meth:`apply_joint_couplings`), ``data`` must have been through ``mj_fwdPosition``.
        """
        r = self.muscle_moment_arms(data)
        couplings = self._joint_couplings()
        if not couplings:
            return r
        nv = self.model.nv
        A = np.eye(nv)
        for dy, dx, qy, qx, a in couplings:
            t = data.qpos[qx] - self.model.qpos0[qx]
            A[dy, dx] -= a[1] + 2.0 * a[2] * t + 3.0 * a[3] * t * t + 4.0 * a[4] * t ** 3
        out = np.linalg.solve(A.T, r.T).T
        out[:, [c[0] for c in couplings]] = 0.0
        return out

    # ---- copies ------------------------------------------------------------------------------
    def editable_spec(self) -> mujoco.MjSpec:
        """A private copy of the ``MjSpec`` this model compiles from (raises if the model has none)."""
        if self._spec is None and self._spec_source is not None:
            return self._spec_source.copy()
        if self._spec is None:
            raise ValueError(f"{self.info.name}: this model carries no MjSpec to edit")
        return self._spec.copy()


# --------------------------------------------------------------------------------------------------
# stature of a model
# --------------------------------------------------------------------------------------------------


def _geom_z_extent(model: mujoco.MjModel, data: mujoco.MjData, g: int) -> tuple[float, float]:
    """Lowest and highest world z (m) of geom ``g`` (exact for meshes and primitives; data after kinematics)."""
    R = data.geom_xmat[g].reshape(3, 3)
    c = float(data.geom_xpos[g][2])
    t = int(model.geom_type[g])
    s = model.geom_size[g]
    G = mujoco.mjtGeom
    if t == G.mjGEOM_MESH:
        mid = model.geom_dataid[g]
        a, n = model.mesh_vertadr[mid], model.mesh_vertnum[mid]
        z = model.mesh_vert[a:a + n] @ R[2] + c
        return float(z.min()), float(z.max())
    if t == G.mjGEOM_SPHERE:
        e = s[0]
    elif t == G.mjGEOM_CAPSULE:
        e = s[1] * abs(R[2, 2]) + s[0]
    elif t == G.mjGEOM_CYLINDER:
        e = s[1] * abs(R[2, 2]) + s[0] * math.sqrt(max(0.0, 1.0 - R[2, 2] ** 2))
    elif t == G.mjGEOM_ELLIPSOID:
        e = math.sqrt(float(np.sum((R[2] * s) ** 2)))
    elif t == G.mjGEOM_BOX:
        e = float(np.sum(np.abs(R[2]) * s))
    else:  # planes, height fields, SDFs: not part of a body's extent
        return math.inf, -math.inf
    return c - e, c + e


def measure_height(model: mujoco.MjModel, rule: str = "auto") -> tuple[float | None, str]:
    """Stature (m) a model represents, and how it was obtained.

    All geoms of moving bodies (not the world body: floors and scenery are excluded), visual and collision, in the
    default pose ``qpos0``, with exact z extents:

    * ``sole`` = lowest geometry point (MyoLeg and MyoFullBody: the toe contact capsules, z = 0.053 m; the feet
      hover above the floor in ``qpos0``);
    * ``rule="stature"``: ``height = top - sole`` (the top of MyoFullBody is the skull's collision ellipsoid at
      1.776 m, 2.4 cm above the bone mesh, so it measures 1.723 m, the collision envelope standing in for skin);
    * ``rule="winter"``: ``height = (hip - sole) / 0.530`` with ``hip`` the mean height of the hip joint centres
      (``femur_r``/``femur_l`` origins) and 0.530 Winter's (2009) greater-trochanter height / stature;
    * ``rule="auto"``: "stature" when the geometry reaches above 1.6 hip heights (the model has a head), "winter"
      for a legs-only model, and ``(None, reason)`` without ``femur_*`` bodies: the caller must give the height.

    The registry uses "winter" for MyoLeg (see :func:`_template_height`) and "auto" otherwise.
    """
    if rule not in ("auto", "stature", "winter"):
        raise ValueError(f"rule={rule!r}; valid rules: 'auto', 'stature', 'winter'")
    d = mujoco.MjData(model)
    mujoco.mj_kinematics(model, d)
    lo, hi = math.inf, -math.inf
    for g in range(model.ngeom):
        if model.geom_bodyid[g] == 0:
            continue
        a, b = _geom_z_extent(model, d, g)
        lo, hi = min(lo, a), max(hi, b)
    if not math.isfinite(lo):
        return None, "no body geometry to measure"
    stature = (hi - lo, "stature from geometry (top of head - sole, qpos0)")
    hips = [h for h in (mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in ("femur_r", "femur_l"))
            if h >= 0]
    if not hips:
        if rule == "stature":
            return stature
        return None, "no femur_r/femur_l bodies to measure a hip height: give the template height explicitly"
    hip = float(np.mean([d.xpos[h][2] for h in hips])) - lo
    winter = (hip / WINTER_TROCHANTER_HEIGHT_RATIO,
              f"Winter hip ratio (hip joint centre - sole = {hip:.4f} m) / {WINTER_TROCHANTER_HEIGHT_RATIO}")
    if rule == "stature" or (rule == "auto" and hi - lo >= _HAS_HEAD_RATIO * hip):
        return stature
    return winter


#: Stature of MyoFullBody from :func:`measure_height` (m); MyoBimanualArm's arms are the same bodies at the same
#: positions (checked in the tests), so it shares this stature.
MYOFULLBODY_STATURE_M = 1.7229


def _template_height(name: str, model: mujoco.MjModel) -> tuple[float | None, str]:
    if name == "myoleg":
        # MyoLeg is the leg model: its stature is defined from the legs (Winter), as for a legs-only model, even
        # though myo-sim's build carries a passive torso and head whose top is 1.723 m above the sole (the same as
        # MyoFullBody).  The legs of this family are short for that stature (hip 0.504 H against Winter's 0.530 H),
        # so the Winter rule gives 1.638 m: a subject gets Winter-typical leg lengths on MyoLeg.
        return measure_height(model, "winter")
    if name == "myobimanualarm":
        return MYOFULLBODY_STATURE_M, "MyoFullBody stature (same arm geometry; no feet to measure)"
    return measure_height(model, "auto")


# --------------------------------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------------------------------


def _pkg_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:  # pragma: no cover
        return "?"


@contextlib.contextmanager
def _quiet_attach_warning() -> Iterator[None]:
    """Silence myo-sim's harmless "Attaching a spec with an empty prefix" warning while building MyoLeg.

    MuJoCo's logger would otherwise print it and append it to ``MUJOCO_LOG.TXT`` in the current directory on every
    load.  Only file/console logging is paused, for the duration of the build, and restored afterwards.
    """
    saved = mujoco.MjLogConfig.get()
    quiet = mujoco.MjLogConfig.get()
    quiet.logto_file = False
    quiet.logto_console = False
    quiet.set()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Attaching a spec with an empty prefix")
            yield
    finally:
        saved.set()


def _spec_myoleg() -> tuple[mujoco.MjSpec, str]:
    try:
        import myo_sim
    except ImportError as e:  # pragma: no cover
        raise ImportError("model 'myoleg' needs the package myo-sim (pip install 'myo-sim==0.2.3')") from e
    with _quiet_attach_warning():
        spec = myo_sim.load_spec("myolegs")
    return spec, f"myo-sim {_pkg_version('myo-sim')}: myo_sim.load_spec('myolegs')"


def _musclemimic_file(rel: str) -> Path:
    try:
        import musclemimic_models
    except ImportError as e:  # pragma: no cover
        raise ImportError("this model needs the package musclemimic-models (pip install musclemimic-models)") from e
    return Path(musclemimic_models.MODELS_DIR) / rel


def _spec_from_package(rel: str) -> Callable[[], tuple[mujoco.MjSpec, str]]:
    def build() -> tuple[mujoco.MjSpec, str]:
        path = _musclemimic_file(rel)
        return (mujoco.MjSpec.from_file(str(path)),
                f"musclemimic-models {_pkg_version('musclemimic-models')}: musclemimic_models/model/{rel}")
    return build


_BUILDERS: dict[str, Callable[[], tuple[mujoco.MjSpec, str]]] = {
    "myoleg": _spec_myoleg,
    "myofullbody": _spec_from_package("body/myofullbody.xml"),
    "myobimanualarm": _spec_from_package("arm/myoarm_bimanual.xml"),
}
assert tuple(_BUILDERS) == MODEL_NAMES


@dataclass(frozen=True)
class _Entry:
    spec: mujoco.MjSpec
    model: mujoco.MjModel
    info: ModelInfo
    load_time_s: float
    token: int = 0          # unique per build in this process: part of the key of anything derived from the entry


_TOKENS = itertools.count(1)
_CACHE: dict[object, _Entry] = {}
_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every cached model (the next :func:`load_model` builds and compiles again)."""
    with _LOCK:
        _CACHE.clear()


def _compile(spec: mujoco.MjSpec) -> mujoco.MjModel:
    with _quiet_attach_warning():
        return spec.compile()


def strip_textures(spec: mujoco.MjSpec) -> int:
    """Remove every texture from ``spec`` (materials keep their colours); returns how many were removed.

    The analysis models are never rendered here, and decoding MyoLeg's 6 textures (10 MB of pixels) was most of a
    compile (measured 167 -> 19 ms) and 40 % of an ``MjModel`` copy (19 -> 12 ms), paid again by every scaled
    subject.  Every physics array (bodies, joints, geoms, sites, tendons, actuators, inertias) is unchanged:
    only the texture arrays, the materials' texture ids and the name addresses differ (tested).
    """
    textures = list(spec.textures)
    for mat in spec.materials:
        mat.textures = [""] * len(mat.textures)
    for tex in textures:
        spec.delete(tex)
    return len(textures)


def _build(key: str, path: Path | None) -> _Entry:
    t0 = time.perf_counter()
    if path is None:
        spec, source = _BUILDERS[key]()
        name = key
    else:
        spec, source, name = mujoco.MjSpec.from_file(str(path)), str(path), path.stem
    if strip_textures(spec):
        source += " (textures removed: not rendered)"
    model = _compile(spec)
    if path is not None and not is_muscle(model).any():
        raise ValueError(f"{path}: the MJCF compiles but has no muscle actuators (gaintype/biastype 'muscle'); "
                         "load_model is for musculoskeletal models")
    height, basis = _template_height(name if path is None else "", model)
    info = ModelInfo.from_mjmodel(model, name=name, source=source, height_m=height, height_basis=basis)
    return _Entry(spec=spec, model=model, info=info, load_time_s=time.perf_counter() - t0, token=next(_TOKENS))


def _resolve(name_or_path: str | os.PathLike) -> tuple[object, str, Path | None]:
    """Cache key, registry name (or ``""``) and path (or ``None``)."""
    raw = os.fspath(name_or_path)
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"model name {name_or_path!r} is empty; valid names: {list(MODEL_NAMES)} or a path to an MJCF")
    key = raw.strip().lower()
    if key in MODEL_NAMES:
        return key, key, None
    unpub = _UNPUBLISHED_ALIASES.get(key, key)
    if unpub in UNPUBLISHED_MODELS:
        raise ValueError(
            f"model {raw!r}: {UNPUBLISHED_MODELS[unpub]} is named in the project seed but has not been published, "
            f"so it cannot be loaded (and will not be invented here); valid names: {list(MODEL_NAMES)}")
    looks_like_path = (os.sep in raw or "/" in raw or raw.lower().endswith((".xml", ".mjcf"))
                       or Path(raw).exists())
    if not looks_like_path:
        raise ValueError(f"unknown model {raw!r}; valid names: {list(MODEL_NAMES)} or a path to an MJCF file")
    path = Path(raw).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"model file {raw!r} does not exist (resolved to {path})")
    return ("path", str(path), path.stat().st_mtime_ns), "", path


def load_model(name_or_path: str | os.PathLike, *, cache: bool = True) -> MusculoskeletalModel:
    """Load a musculoskeletal model by registry name (see :data:`MODEL_NAMES`) or MJCF path.

    With ``cache=True`` the built spec and compiled model are kept for the process (a path is re-read when its
    modification time changes) and every call returns an independent copy (``MjModel`` copy when ``.model`` is
    first read, ``MjSpec.copy()`` when ``.spec`` is), so callers may edit what they get.  Raises ``ValueError`` for an unknown or unpublished name (the message lists
    the valid names), ``FileNotFoundError`` for a missing path.
    """
    key, name, path = _resolve(name_or_path)
    if cache:
        with _LOCK:
            entry = _CACHE.get(key)
            if entry is None:
                entry = _build(name, path)
                _CACHE[key] = entry
        return MusculoskeletalModel(None, entry.info, model_source=entry.model, spec_source=entry.spec,
                                    spec_key=(key, entry.token))
    entry = _build(name, path)
    return MusculoskeletalModel(entry.model, entry.info, entry.spec)


def load_time_s(name_or_path: str | os.PathLike) -> float | None:
    """Seconds the cached build of this model took (``None`` if it is not cached yet)."""
    key, _, _ = _resolve(name_or_path)
    entry = _CACHE.get(key)
    return None if entry is None else entry.load_time_s


def list_models(names: Iterable[str] = MODEL_NAMES) -> list[ModelInfo]:
    """Facts (nq, nv, muscles, mass, stature, source) of each named model; builds and caches them (seconds)."""
    return [load_model(n).info for n in names]

"""The real-time estimation chain, one frame at a time: markers or landmarks -> loads on the knee.

    markers (M, 3) world, z up, m
      -> inverse kinematics (damped least squares on the subject-scaled model, warm-started)
      -> causal low-pass + derivatives of the coordinates   (lag stated by ``lag_s``)
      -> (``grf_trunk``, torso markers given) the trunk's lumbar angles from the thorax markers (``TrunkTracker``)
      -> ground reaction force and centre of pressure from kinematics (F_ext = m (a_com - g))
      -> inverse dynamics (mj_inverse) -> knee adduction / extension moments (%BW*ht)
      -> static optimisation (MuJoCo muscles) -> synergy coefficients (NNLS onto the shipped W)
      -> medial / lateral knee contact force (Winby split)
      -> confidence in [0, 1] from named parts (``models.confidence``: visibility, freshness, reprojection,
         dynamic residual, physiological envelope of each estimate); their minimum

Every stage is one of ``models``' per-frame ``step`` objects; this module only wires them and owns
the preallocated buffers. The same object runs in the 60 Hz loop (``runtime.pipeline.stages``) and offline
over a whole recording (:func:`run_offline`), so online equals offline by construction, and
``tests/test_estimation.py`` replays a recording both ways to prove it.

Inputs are in the model's world frame (right-handed, z up, metres). Outputs (see
:class:`EstimateFrame`) in SI units unless the name says otherwise.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np

from models.confidence import PART_NAMES

STANDARD_GRAVITY_M_S2 = 9.80665
#: Coordinates reported per frame (deg in telemetry); the side suffix is added.
REPORTED_COORDINATES = ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle")


#: Landmark IK in the real-time chain: the iteration cap of each cold-start seed (3 seeds at most), so that a cold
#: start (first frame, person re-found) costs at most ≈ 3 × 20 iterations (≈ 6-14 ms here) instead of 3 × 300.
RT_COLD_ITERATIONS = 20


@dataclass(frozen=True)
class EstimatorParams:
    """Subject and chain options.

    ``side``: the limb whose knee moments and contact force are computed. ``rate_hz``: frame rate of the
    input (frames are assumed evenly spaced). ``cutoff_hz``: low-pass of the coordinates (2nd-order causal
    Butterworth). ``muscles``: run static optimisation and the contact force (about 0.1 ms per frame more).
    ``floor_height_m``: height of the walking surface in the input's world frame (0 for lab recordings, whose
    origin is on the force plates, and for the vision front end's floor-grounded frame).
    ``grf_trunk``: the GRF estimate's upper body follows the trunk's lumbar angles from the thorax markers
    (:class:`models.grf.trunk.TrunkTracker`, causal: bending and rotation per frame, extension an EMA of
    ``trunk_extension_tau_s``; the offline chain holds the extension at its trial median instead); needs torso
    markers (:class:`TorsoMarkers`, given by :meth:`KinematicsToLoads.for_subject`, and per frame in ``step``).
    Off, or without them: MyoLeg's upper body stays welded to the pelvis (the trunk held to the pelvis).
    """

    mass_kg: float
    height_m: float
    side: Literal["left", "right"]
    rate_hz: float = 60.0
    cutoff_hz: float = 6.0
    muscles: bool = True
    model: str = "myoleg"
    floor_height_m: float = 0.0
    kcf: Literal["physics", "learned"] = "physics"      # learned: medial/lateral from models.muscles.kcf_learned
    grf_trunk: bool = True
    trunk_extension_tau_s: float = 2.0

    def __post_init__(self) -> None:
        from models.body.scaling import SubjectScale

        SubjectScale(self.mass_kg, self.height_m)          # names the field and the value
        if self.side not in ("left", "right"):
            raise ValueError(f"side = {self.side!r}: allowed 'left' or 'right'")
        if not (10.0 <= self.rate_hz <= 1000.0):
            raise ValueError(f"rate_hz = {self.rate_hz!r}: allowed 10..1000 Hz")
        if not (1.0 <= self.cutoff_hz < 0.5 * self.rate_hz):
            raise ValueError(f"cutoff_hz = {self.cutoff_hz!r}: allowed 1 Hz .. rate_hz/2 ({0.5 * self.rate_hz:g} Hz)")
        if self.kcf not in ("physics", "learned") or (self.kcf == "learned" and not self.muscles):
            raise ValueError(f"kcf = {self.kcf!r}: allowed 'physics' or 'learned' (learned needs muscles=True)")
        if not (math.isfinite(self.trunk_extension_tau_s) and self.trunk_extension_tau_s > 0.0):
            raise ValueError(f"trunk_extension_tau_s = {self.trunk_extension_tau_s!r}: allowed a finite time > 0 s")


@dataclass
class EstimateFrame:
    """One frame's output (preallocated, overwritten by :meth:`KinematicsToLoads.step`).

    ``coordinates_rad`` (n_rep,) the reported coordinates of ``side`` (rad), ``coordinate_names``;
    ``grf_n`` (2, 3) per foot (right, left) world; ``cop_m`` (2, 3) (NaN when unloaded); ``contact`` (2,);
    ``free_moment_nm`` (2,) vertical free moment per foot;
    ``kam_pct_bw_ht``, ``kem_pct_bw_ht``: external knee adduction / internal extension moments of ``side``;
    ``knee_moment_nm``: the biological knee flexion-extension moment (coordinate force, N m, extension +);
    ``activation`` (n_muscles,), ``synergy`` (k,) coefficients of ``side``'s leg;
    ``kcf_n`` (3,) medial, lateral, total compressive contact force (N); ``ik_residual_m`` RMS;
    ``valid``: IK solved this frame (enough markers) and every stage produced finite outputs; ``stage_s``:
    seconds per stage this frame. ``confidence`` in [0, 1]: the minimum of ``confidence_parts`` (P,), each in
    [0, 1], named by ``confidence_names`` (``models.confidence.PART_NAMES``, fixed order). ``lumbar_rad`` (3,):
    the lumbar angles (extension, bending, rotation; rad) the GRF estimate's upper body followed this frame, NaN
    when the trunk was held to the pelvis.
    """

    t_s: float
    coordinate_names: tuple[str, ...]
    coordinates_rad: np.ndarray
    grf_n: np.ndarray
    cop_m: np.ndarray
    contact: np.ndarray
    free_moment_nm: np.ndarray = field(default_factory=lambda: np.full(2, math.nan))
    kam_pct_bw_ht: float = math.nan
    kem_pct_bw_ht: float = math.nan
    knee_moment_nm: float = math.nan
    activation: np.ndarray = field(default_factory=lambda: np.zeros(0))
    synergy: np.ndarray = field(default_factory=lambda: np.zeros(0))
    kcf_n: np.ndarray = field(default_factory=lambda: np.full(3, math.nan))
    ik_residual_m: float = math.nan
    valid: bool = False
    stage_s: dict[str, float] = field(default_factory=dict)
    confidence: float = math.nan
    confidence_parts: np.ndarray = field(default_factory=lambda: np.full(len(PART_NAMES), math.nan))
    confidence_names: tuple[str, ...] = PART_NAMES
    lumbar_rad: np.ndarray = field(default_factory=lambda: np.full(3, math.nan))


@dataclass(frozen=True)
class TorsoMarkers:
    """The thorax markers of a marker set on the estimator's model (``models.grf.trunk.thorax_markers``: the torso
    body's markers but the shoulders): ``names`` and ``offsets_m`` (T, 3) in the torso body frame (m)."""

    names: tuple[str, ...]
    offsets_m: np.ndarray


def torso_markers(markerset_path: str | Path, model: Any) -> TorsoMarkers | None:
    """The thorax markers of an OpenSim marker set placed on ``model`` (the selection of
    ``models.trial_analysis.trunk_lumbar``), or None when it has fewer than 3 (the trunk's orientation is then
    not fixed by them)."""
    from models.body.markerset import from_opensim_markerset
    from models.grf.trunk import thorax_markers

    mset = from_opensim_markerset(Path(markerset_path), model, exclude_bodies=())
    sel = thorax_markers(mset.names, mset.bodies)
    if len(sel) < 3:
        return None
    return TorsoMarkers(tuple(mset.names[i] for i in sel), np.stack([np.asarray(mset.markers[i].offset_m, float)
                                                                     for i in sel]))


class KinematicsToLoads:
    """Markers (world, z up) -> joint angles, GRF/CoP, KAM/KEM, activations, synergies, knee contact force.

    Build with :meth:`for_subject` (scales the template to the subject, like the offline analysis) or
    directly with a scaled MuJoCo model and a :class:`models.body.markerset.MarkerSet` on it. ``torso``: the thorax
    markers on ``model`` for the trunk (:class:`TorsoMarkers`; used when ``params.grf_trunk``).
    """

    def __init__(self, model: Any, markerset: Any, params: EstimatorParams, ik_params: Any = None,
                 torso: TorsoMarkers | None = None) -> None:
        import mujoco

        from models.filters import CausalDerivativeFilter, LowPassParams
        from models.grf.estimator import GroundReactionEstimator
        from models.grf.params import GroundReactionParams
        from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
        from models.dynamics.opensim_state import OpenSimStateMap
        from models.dynamics.wrenches import ExternalWrench
        from models.kinematics.ik_types import IKParams
        from models.kinematics.inverse_kinematics import InverseKinematics
        from models.dynamics.knee_moments import KneeMoments, KneeMomentsFrame, KneeMomentsParams

        self.params = params
        self.model = model
        self.markerset = markerset
        self.ik = InverseKinematics(model, markerset, ik_params if ik_params is not None else IKParams())
        self._ik_out = self.ik.new_frame()
        self.coordinate_names = tuple(self.ik.coordinate_names)
        nc = len(self.coordinate_names)
        self.filter = CausalDerivativeFilter(nc, LowPassParams(cutoff_hz=params.cutoff_hz, sample_rate_hz=params.rate_hz))
        self._pos, self._vel, self._acc = np.zeros(nc), np.zeros(nc), np.zeros(nc)
        self.state_map = OpenSimStateMap(model, self.coordinate_names)
        self.grf = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=params.mass_kg, cutoff_hz=params.cutoff_hz,
                                                                sample_rate_hz=params.rate_hz,
                                                                floor_height_m=params.floor_height_m,
                                                                floor_adapt_max_m=0.08), model=model)
        self._grf_out = self.grf.new_frame()
        self._qframe = _QFrame(np.zeros(0), 0.0)          # the GRF stage's input, refilled every frame
        self.torso = torso
        self._build_trunk()
        self.tibia = f"tibia_{params.side[0]}"
        self.inv = InverseDynamics(model, InverseDynamicsParams(reaction_bodies=(self.tibia,),
                                                                 gravity_m_s2=STANDARD_GRAVITY_M_S2))
        self._jm = self.inv.allocate_frame()
        self._wrenches = [ExternalWrench.zeros("calcn_r"), ExternalWrench.zeros("calcn_l")]   # FEET order
        self.knee = KneeMoments(self.inv, KneeMomentsParams(params.side, params.mass_kg, params.height_m))
        self._km = KneeMomentsFrame.allocate()
        sfx = "_" + params.side[0]
        self.reported = tuple(c + sfx for c in REPORTED_COORDINATES if c + sfx in self.coordinate_names)
        self._rep_idx = np.array([self.coordinate_names.index(c) for c in self.reported], dtype=int)
        self.so = self.kc = self.synergies = self.condyles = None
        n_mus = 0
        k = 0
        if params.muscles:
            from models.muscles.knee_contact import KneeContact, subject_condyle_geometry
            from models.muscles.static_optimization import SOParams, StaticOptimization
            from models.muscles.synergies import load_synergies

            self.so = StaticOptimization(model, SOParams())
            self._so_out = self.so.allocate_frame()
            n_mus = self.so.n_muscles
            # the contact points about the subject's epicondyle midpoint where the marker set places it (as offline)
            self.condyles = subject_condyle_geometry(model, params.side, markerset)
            self.kc = KneeContact(model, params.side, body_mass_kg=params.mass_kg,
                                  condyle_offsets_m=self.condyles.offsets_m)
            self.muscle_names = tuple(self.so.muscle_names)
            syn = load_synergies()
            self.synergies = syn
            pos = {n: i for i, n in enumerate(self.muscle_names)}
            self._syn_rows = np.array([pos[m + sfx] for m in syn.muscle_names], dtype=int)
            k = syn.k
            self.learned_kcf = self._learned_kcf_features = None
            if params.kcf == "learned":       # the features of models.muscles.kcf_features -> onnxruntime
                from models.muscles.kcf_features import KcfFeatures
                from models.muscles.kcf_learned import LearnedKcf

                self._learned_kcf_features = KcfFeatures(params.side, params.mass_kg, params.height_m, params.rate_hz,
                                                         self.muscle_names)
                # split at the subject's contact points, as the physics branch
                self.learned_kcf = LearnedKcf(params.mass_kg, self.condyles, rate_hz=params.rate_hz)
        else:
            self.muscle_names = ()
        self.out = EstimateFrame(0.0, self.reported, np.full(len(self.reported), np.nan), np.full((2, 3), np.nan),
                                 np.full((2, 3), np.nan), np.zeros(2, bool), activation=np.full(n_mus, np.nan),
                                 synergy=np.full(k, np.nan))
        from models.confidence import ConfidenceParams, FrameConfidence

        self.confidence = FrameConfidence(ConfidenceParams(params.mass_kg, params.height_m, muscles=params.muscles),
                                          len(self.ik.marker_names), n_mus)
        self._mujoco = mujoco
        self.frames = 0

    # ------------------------------------------------------------------ construction
    def _build_trunk(self) -> None:
        """With ``params.grf_trunk`` and torso markers: the :class:`models.grf.trunk.TrunkTracker` and the causal
        low-pass of its angles (the coordinates' own: the trunk stays in phase with the filtered pelvis); else none."""
        from models.filters import CausalDerivativeFilter, LowPassParams
        from models.grf.trunk import TrunkTracker

        p, torso = self.params, self.torso
        self.trunk = self._trunk_filter = None
        if not (p.grf_trunk and torso is not None):
            return
        self.trunk = TrunkTracker(self.model, torso.offsets_m, p.rate_hz, extension_tau_s=p.trunk_extension_tau_s)
        self._trunk_filter = CausalDerivativeFilter(3, LowPassParams(cutoff_hz=p.cutoff_hz, sample_rate_hz=p.rate_hz))
        self._lum, self._lum_v, self._lum_a = np.zeros(3), np.zeros(3), np.zeros(3)

    @classmethod
    def for_subject(cls, markerset_path: str | Path, params: EstimatorParams) -> "KinematicsToLoads":
        """The template model scaled to the subject as the offline analysis does (``models.trial_analysis``)."""
        from models.body.markerset import from_opensim_markerset
        from models.trial_analysis import AnalyzeParams, subject_model

        notes: list[str] = []
        ap = AnalyzeParams(params.mass_kg, params.height_m, params.side, model=params.model, cutoff_hz=params.cutoff_hz)
        model = subject_model(ap, Path(markerset_path), notes)
        torso = torso_markers(markerset_path, model)
        est = cls(model, from_opensim_markerset(Path(markerset_path), model), params, torso=torso)
        if params.grf_trunk:
            notes.append("GRF estimate: trunk held to the pelvis (fewer than 3 thorax markers in the marker set)"
                         if torso is None else f"GRF estimate: trunk from {len(torso.names)} thorax markers of the "
                         "marker set (TrunkTracker: bending/rotation per frame, extension EMA "
                         f"{params.trunk_extension_tau_s:g} s) when the input carries them, else held to the pelvis")
        if est.condyles is not None:
            notes.append(f"knee contact points: {est.condyles.source}")
        est.notes = notes
        return est

    @classmethod
    def for_landmarks(cls, params: EstimatorParams) -> "KinematicsToLoads":
        """BlazePose landmarks (world, z up, floor at ``floor_height_m``) as the input: the template scaled by
        the subject's height and mass, the landmark marker set and IK weights of ``models.body.landmark_markerset``."""
        from models.body.landmark_markerset import blazepose_markerset, landmark_ik_params
        from models.body.registry import load_model
        from models.body.scaling import SubjectScale, scale_model

        scaled = scale_model(load_model(params.model), SubjectScale(params.mass_kg, params.height_m))
        # real-time budget: at most 10 warm-started iterations per frame, a cold re-solve only on gross failure
        # (25 cm RMS), and a cold start bounded too (RT_COLD_ITERATIONS per seed, at most 3 seeds: the following
        # warm-started frames finish converging); offline landmark IK (models.kinematics.landmark_ik) keeps the
        # defaults (30 per frame, 300 per cold seed, 8 cm)
        est = cls(scaled.model, blazepose_markerset(scaled.model), params,
                  ik_params=landmark_ik_params(max_iterations=10, reinit_rms_m=0.25,
                                               initial_max_iterations=RT_COLD_ITERATIONS))
        est.notes = [f"model: {params.model} scaled by height ({params.height_m:g} m) and mass ({params.mass_kg:g} kg); "
                     "BlazePose landmarks as markers (models.body.landmark_markerset)"]
        return est

    @property
    def marker_names(self) -> tuple[str, ...]:
        return tuple(self.ik.marker_names)

    @property
    def lag_s(self) -> float:
        """Delay of the outputs behind the input at low frequency: the coordinate filter's plus the GRF filter's."""
        return float(self.filter.lag_position_s + self.grf.causal_lag_s(self.params.rate_hz))

    def warm_up(self, frames: int = 5) -> float:
        """Run the whole chain on the model's own default pose a few times, then :meth:`reset`: loads the compiled
        (numba) kernels from their cache and touches every buffer before a real-time loop starts. Returns the
        seconds it took. (Otherwise the first live frame takes tens of ms at real-time priority, which on a
        2-core HIL rig starves the emulated drive's process into a reply timeout.)"""
        t0 = time.perf_counter()
        markers = np.array(self.ik.marker_positions(np.array(self.model.qpos0)), dtype=float)
        torso = self._neutral_torso_markers() if self.trunk is not None else None
        for i in range(frames):
            self.step(markers, i / self.params.rate_hz, torso_m=torso)
        self.reset()
        return time.perf_counter() - t0

    def _neutral_torso_markers(self) -> np.ndarray:
        """The torso markers (T, 3) world of the model's default pose (lumbar angles 0), for :meth:`warm_up`."""
        m, d = self.model, self._mujoco.MjData(self.model)
        self._mujoco.mj_kinematics(m, d)
        b = self._mujoco.mj_name2id(m, self._mujoco.mjtObj.mjOBJ_BODY, "torso")
        return d.xpos[b] + self.torso.offsets_m @ d.xmat[b].reshape(3, 3).T

    def reset(self) -> None:
        """Forget all filter and warm-start state (a new recording or a long gap)."""
        self.ik.reset()
        self.filter.reset()
        self.grf.reset()
        if self.trunk is not None:
            self.trunk.reset()
            self._trunk_filter.reset()
        if self.so is not None:
            self.so.reset()
            if self.learned_kcf is not None:
                self._learned_kcf_features.reset()
                self.learned_kcf.reset()
        self.confidence.reset()
        self.frames = 0

    # ------------------------------------------------------------------ per frame
    def step(self, markers_m: np.ndarray, t_s: float, visibility: np.ndarray | None = None,
             reprojection_px: float = math.nan, torso_m: np.ndarray | None = None) -> EstimateFrame:
        """One frame: ``markers_m`` (M, 3) in :attr:`marker_names` order (NaN = missing) at time ``t_s``;
        optional ``visibility`` (M,) landmark scores 0..1 (None: a present marker counts 1) and the monocular fit's
        ``reprojection_px`` (NaN: none) for the confidence; ``torso_m`` (T, 3) world, the thorax markers in
        ``torso.names`` order (NaN = missing; used with ``params.grf_trunk``, else the trunk is held to the pelvis)."""
        from models.kinematics.ik_types import IKStatus

        out = self.out
        st = out.stage_s
        clock = time.perf_counter
        t0 = clock()
        out.t_s = float(t_s)
        ik = self._ik_out
        self.ik.step(markers_m, ik)
        out.ik_residual_m = float(ik.residual_rms_m)
        t1 = clock()
        st["ik"] = t1 - t0
        qpos, qvel, qacc = self._filtered_state(ik.coordinates, out)
        t2 = clock()
        st["filter"] = t2 - t1
        if self.trunk is not None:
            self._trunk_angles(ik.qpos, torso_m, out)
            t2b = clock()
            st["trunk"] = t2b - t2
            t2 = t2b
        self._ground_reaction(qpos, t_s, out)
        t3 = clock()
        st["grf"] = t3 - t2
        # No state yet (nobody in view before the filters are primed) or a non-finite one: MuJoCo is not called
        # with it (its tendon wrapping on NaN geometry corrupted memory); every downstream output is NaN.
        state_ok = bool(np.isfinite(qpos).all() and np.isfinite(qvel).all() and np.isfinite(qacc).all())
        if not state_ok:
            self._invalid_downstream(out, st)
            out.valid = False
            self._confidence(markers_m, visibility, reprojection_px, out)
            self.frames += 1
            return out
        jm = self._inverse_dynamics(qpos, qvel, qacc, out)
        t4 = clock()
        st["inverse_dynamics"] = t4 - t3
        ok = bool(np.isfinite(out.coordinates_rad).all() and np.isfinite(jm.coordinate_force).all())
        if self.so is not None:
            ok = self._muscles(qpos, qvel, t_s, jm, out, t4) and ok
        out.valid = ok and self.frames > 0 and not (ik.status & IKStatus.TOO_FEW_MARKERS)
        self._confidence(markers_m, visibility, reprojection_px, out)
        self.frames += 1
        return out

    def _confidence(self, markers_m: np.ndarray, visibility: np.ndarray | None, reprojection_px: float,
                    out: EstimateFrame) -> None:
        """The frame's confidence and its parts (``models.confidence.FrameConfidence``; no allocation). A frame
        without a finite state has NaN estimates, whose envelope parts are 0."""
        g = self._grf_out
        c = self.confidence
        t0 = time.perf_counter()
        c.step(out.t_s, markers_m, visibility, reprojection_px, out.grf_n, g.residual_force_n, g.residual_moment_nm,
               out.kam_pct_bw_ht, out.kem_pct_bw_ht, out.kcf_n, out.activation)
        out.confidence_parts[:] = c.parts
        out.confidence = c.value
        out.stage_s["confidence"] = time.perf_counter() - t0

    def _filtered_state(self, coordinates: np.ndarray, out: EstimateFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Causal low-pass and derivatives of the IK coordinates -> MuJoCo (qpos, qvel, qacc); the reported angles."""
        self.filter.step(coordinates, self._pos, self._vel, self._acc)
        mk = self.state_map.map(self._pos, self._vel, self._acc)
        out.coordinates_rad[:] = self._pos[self._rep_idx]
        return mk.qpos[0], mk.qvel[0], mk.qacc[0]

    def _trunk_angles(self, ik_qpos: np.ndarray, torso_m: np.ndarray | None, out: EstimateFrame) -> None:
        """The lumbar angles of this frame for the GRF stage (``out.lumbar_rad``, NaN: held to the pelvis): the
        TrunkTracker on the IK pose of this frame and its torso markers (both unfiltered, so the trunk's rotation
        relative to the pelvis is of one instant), then the coordinates' causal low-pass (the same lag as the
        filtered pose the GRF stage gets). Before the first frame with 3 torso markers, or without them, none."""
        lum = out.lumbar_rad
        if torso_m is None:
            lum[:] = math.nan
        else:
            a = self.trunk.step(ik_qpos, torso_m)
            if np.isfinite(a).all():                   # all three, or the frame keeps the trunk held
                self._trunk_filter.step(a, self._lum, self._lum_v, self._lum_a)
                lum[:] = self._lum
            else:
                lum[:] = math.nan
        self._qframe.lumbar_rad = lum if np.isfinite(lum).all() else None

    def _ground_reaction(self, qpos: np.ndarray, t_s: float, out: EstimateFrame) -> None:
        """GRF, CoP, contact and free moment per foot from kinematics; the loaded feet become the external wrenches
        of inverse dynamics (world, z up; zero on an unloaded foot)."""
        g = self._grf_out
        qf = self._qframe
        qf.qpos, qf.t_s = qpos, t_s
        self.grf.step(qf, g)
        out.grf_n[:] = g.force_n
        out.cop_m[:] = g.cop_m
        out.contact[:] = g.contact
        out.free_moment_nm[:] = g.free_moment_nm
        for k, w in enumerate(self._wrenches):
            f = g.force_n[k]
            loaded = bool(np.isfinite(f).all() and f[2] > 1e-9)
            w.force_n[:] = f if loaded else 0.0
            w.point_m[:] = g.cop_m[k] if loaded else 0.0
            w.free_moment_nm[:] = 0.0
            if loaded and np.isfinite(g.free_moment_nm[k]):
                w.free_moment_nm[2] = g.free_moment_nm[k]

    def _inverse_dynamics(self, qpos: np.ndarray, qvel: np.ndarray, qacc: np.ndarray, out: EstimateFrame) -> Any:
        """Inverse dynamics with the feet's wrenches -> KAM / KEM (%BW*ht) and the knee coordinate moment (N m);
        returns the joint-moment frame (coordinate forces, the tibia's reaction) for the muscle stages."""
        jm = self._jm
        self.inv.step(qpos, qvel, qacc, self._wrenches, jm)
        self.knee.step(jm, self._km)
        out.kam_pct_bw_ht = float(self._km.knee_adduction_moment_pct_bw_ht)
        out.kem_pct_bw_ht = float(self._km.knee_extension_moment_pct_bw_ht)
        out.knee_moment_nm = float(self._km.knee_extension_moment_coordinate_nm)
        return jm

    def _muscles(self, qpos: np.ndarray, qvel: np.ndarray, t_s: float, jm: Any, out: EstimateFrame,
                 t_start: float) -> bool:
        """Static optimisation -> activations, synergy coefficients, medial / lateral knee contact force (N); their
        stage seconds from ``t_start``. True when the activations and the contact force are finite."""
        clock = time.perf_counter
        st = out.stage_s
        so = self._so_out
        self.so.step(qpos, qvel, jm.coordinate_force, so)
        out.activation[:] = so.activation
        t5 = clock()
        st["static_optimization"] = t5 - t_start
        out.synergy[:] = _nnls_coefficients(self.synergies.W, so.activation[self._syn_rows])
        if self.learned_kcf is None:          # the Winby split of the tibia's reaction and the muscle wrench
            F_mus, M_mus = self.kc.muscle_wrench(qpos, so.muscle_force_n, self.muscle_names)
            kc = self.kc._assemble(jm.reaction_force_n[:1], jm.reaction_moment_nm[:1], F_mus[None, :],
                                   M_mus[None, :], np.array([t_s]))
            out.kcf_n[0], out.kcf_n[1], out.kcf_n[2] = kc.medial_n[0], kc.lateral_n[0], kc.total_n[0]
        else:                                 # learned axial + frontal moment split at self.condyles; total = sum
            x = self._learned_kcf_features.step(out, so.muscle_force_n, jm.reaction_force_n[0], jm.reaction_moment_nm[0])
            ml = self.learned_kcf.step(x)
            out.kcf_n[0], out.kcf_n[1], out.kcf_n[2] = ml[0], ml[1], ml[0] + ml[1]
        st["knee_contact"] = clock() - t5
        return bool(np.isfinite(so.activation).all() and np.isfinite(out.kcf_n).all())

    def _invalid_downstream(self, out: EstimateFrame, st: dict[str, float]) -> None:
        """NaN for everything after the GRF stage (this frame had no finite state)."""
        out.kam_pct_bw_ht = out.kem_pct_bw_ht = out.knee_moment_nm = math.nan
        out.activation[:] = math.nan
        out.synergy[:] = math.nan
        out.kcf_n[:] = math.nan
        for k in ("inverse_dynamics", "static_optimization", "knee_contact"):
            st[k] = 0.0


class _QFrame:
    """What :meth:`GroundReactionEstimator.step` reads: ``qpos`` and ``t_s``."""

    __slots__ = ("qpos", "t_s", "lumbar_rad")

    def __init__(self, qpos: np.ndarray, t_s: float) -> None:
        self.qpos, self.t_s, self.lumbar_rad = qpos, t_s, None


def _nnls_coefficients(W: np.ndarray, a: np.ndarray) -> np.ndarray:
    """c >= 0 minimising ||W c - a|| (W (m, k), a (m,)); NaN when ``a`` is not finite."""
    if not np.isfinite(a).all():
        return np.full(W.shape[1], np.nan)
    from scipy.optimize import nnls

    return nnls(W, a)[0]


# ---------------------------------------------------------------------------------------------- replay input

@dataclass(frozen=True)
class MarkerRecording:
    """Marker positions of a recorded trial in the estimator's marker order: ``markers_m`` (N, M, 3) world, z up;
    ``reprojection_px`` (N,) the monocular fit's reprojection error of each frame (px) or None (lab markers);
    ``torso_markers_m`` (N, T, 3) world, z up, the thorax markers in the estimator's ``torso.names`` order (NaN
    where absent) and ``torso_offsets_m`` (T, 3) their offsets in the model's torso frame (m), or both None (no
    trunk input: the GRF estimate holds the trunk to the pelvis)."""

    name: str
    time_s: np.ndarray
    markers_m: np.ndarray
    rate_hz: float
    reprojection_px: np.ndarray | None = None
    torso_markers_m: np.ndarray | None = None
    torso_offsets_m: np.ndarray | None = None

    def __post_init__(self) -> None:
        tm, to = self.torso_markers_m, self.torso_offsets_m
        if (tm is None) != (to is None):
            raise ValueError("MarkerRecording: torso_markers_m and torso_offsets_m are given together or not at all")
        if tm is not None and (tm.ndim != 3 or tm.shape[0] != self.markers_m.shape[0] or tm.shape[2] != 3
                               or to.shape != (tm.shape[1], 3)):
            raise ValueError(f"MarkerRecording: torso_markers_m {tm.shape} must be (N = {self.markers_m.shape[0]}, "
                             f"T, 3) and torso_offsets_m {to.shape} (T, 3)")


def _ordered_markers(pos: np.ndarray, trial_names: list[str], names: list[str]) -> tuple[np.ndarray, int]:
    """The trial's markers ``pos`` (N, K, 3) ordered like ``names`` (N, len(names), 3; NaN where absent) and the
    number found (``models.kinematics.marker_matching``)."""
    from models.kinematics.marker_matching import match_marker_names

    out = np.full((pos.shape[0], len(names), 3), np.nan)
    match = match_marker_names(names, trial_names)
    for i, j in match.items():
        out[:, i] = pos[:, j]
    return out, len(match)


def load_marker_recording(trc_path: str | Path, marker_names: Iterable[str],
                          torso: TorsoMarkers | None = None) -> MarkerRecording:
    """Read a ``.trc``/``.c3d`` trial and order its markers like ``marker_names`` (NaN where absent); with
    ``torso`` (the estimator's :attr:`KinematicsToLoads.torso`) also its thorax markers, when the trial has at least
    3 of them (as ``models.trial_analysis.trunk_lumbar`` requires; else no torso markers)."""
    from models.io.axes import opensim_to_z_up
    from models.io.lab_files import read_trial

    trial = read_trial(Path(trc_path))
    markers = getattr(trial, "markers", trial)
    pos = opensim_to_z_up(np.asarray(markers.positions_m, dtype=float))
    trial_names = list(markers.marker_names)
    out, _ = _ordered_markers(pos, trial_names, list(marker_names))
    tm = to = None
    if torso is not None:
        tm, found = _ordered_markers(pos, trial_names, list(torso.names))
        tm, to = (tm, np.array(torso.offsets_m, float)) if found >= 3 else (None, None)
    rate = float(getattr(markers, "rate_hz", 0.0) or 0.0)
    t = np.asarray(markers.time_s, dtype=float)
    if not rate > 0:
        rate = (t.size - 1) / float(t[-1] - t[0])
    return MarkerRecording(Path(trc_path).stem, t[0] + np.arange(t.size) / rate, out, rate,
                           torso_markers_m=tm, torso_offsets_m=to)


def resample_hold(rec: MarkerRecording, rate_hz: float) -> MarkerRecording:
    """The recording at ``rate_hz`` by sample-and-hold of the latest frame at or before each tick (what a
    live source delivers to a loop at that rate; no interpolation, no look-ahead)."""
    n = int(math.floor((rec.time_s[-1] - rec.time_s[0]) * rate_hz)) + 1
    t = rec.time_s[0] + np.arange(n) / rate_hz
    idx = np.clip(np.searchsorted(rec.time_s, t + 1e-9, side="right") - 1, 0, rec.time_s.size - 1)
    rep = None if rec.reprojection_px is None else np.asarray(rec.reprojection_px)[idx]
    torso = None if rec.torso_markers_m is None else rec.torso_markers_m[idx]
    return MarkerRecording(rec.name, t, rec.markers_m[idx], rate_hz, rep, torso, rec.torso_offsets_m)


@dataclass
class OfflineResult:
    """Per-frame outputs stacked: arrays (N, ...) on ``time_s``; ``seconds`` the wall time of the run."""

    time_s: np.ndarray
    coordinate_names: tuple[str, ...]
    coordinates_rad: np.ndarray
    grf_n: np.ndarray
    cop_m: np.ndarray
    contact: np.ndarray
    free_moment_nm: np.ndarray
    kam_pct_bw_ht: np.ndarray
    kem_pct_bw_ht: np.ndarray
    knee_moment_nm: np.ndarray
    activation: np.ndarray
    synergy: np.ndarray
    kcf_n: np.ndarray
    ik_residual_m: np.ndarray
    valid: np.ndarray
    seconds: float
    stage_s: dict[str, np.ndarray]
    confidence: np.ndarray
    confidence_parts: np.ndarray
    lumbar_rad: np.ndarray
    confidence_names: tuple[str, ...] = PART_NAMES

    def frame(self, i: int) -> EstimateFrame:
        """Frame ``i`` as the :class:`EstimateFrame` the live chain returned for it (its arrays are views)."""
        return EstimateFrame(float(self.time_s[i]), self.coordinate_names, self.coordinates_rad[i], self.grf_n[i],
                             self.cop_m[i], self.contact[i], free_moment_nm=self.free_moment_nm[i],
                             kam_pct_bw_ht=float(self.kam_pct_bw_ht[i]), kem_pct_bw_ht=float(self.kem_pct_bw_ht[i]),
                             knee_moment_nm=float(self.knee_moment_nm[i]), activation=self.activation[i],
                             synergy=self.synergy[i], kcf_n=self.kcf_n[i], ik_residual_m=float(self.ik_residual_m[i]),
                             valid=bool(self.valid[i]), stage_s={k: float(v[i]) for k, v in self.stage_s.items()},
                             confidence=float(self.confidence[i]), confidence_parts=self.confidence_parts[i],
                             confidence_names=self.confidence_names, lumbar_rad=self.lumbar_rad[i])


def _offline_columns(n: int, out: EstimateFrame) -> dict[str, np.ndarray]:
    """One preallocated (n, ...) array per per-frame output of :class:`EstimateFrame` (NaN / False)."""
    return {"coordinates_rad": np.full((n, out.coordinates_rad.size), np.nan), "grf_n": np.full((n, 2, 3), np.nan),
            "cop_m": np.full((n, 2, 3), np.nan), "contact": np.zeros((n, 2), bool),
            "free_moment_nm": np.full((n, 2), np.nan), "kam_pct_bw_ht": np.full(n, np.nan),
            "kem_pct_bw_ht": np.full(n, np.nan), "knee_moment_nm": np.full(n, np.nan),
            "activation": np.full((n, out.activation.size), np.nan), "synergy": np.full((n, out.synergy.size), np.nan),
            "kcf_n": np.full((n, 3), np.nan), "ik_residual_m": np.full(n, np.nan), "valid": np.zeros(n, bool),
            "confidence": np.full(n, np.nan), "confidence_parts": np.full((n, out.confidence_parts.size), np.nan),
            "lumbar_rad": np.full((n, 3), np.nan)}


def run_offline(est: KinematicsToLoads, rec: MarkerRecording, progress: Any = None) -> OfflineResult:
    """The same chain over a whole recording as fast as possible (``progress(i, n)`` called every 60 frames); the
    recording's reprojection error, when it has one, goes to the confidence as in the live loop, and its torso
    markers, when it has them, to the trunk (they must be for ``est``'s torso markers: same offsets)."""
    n = rec.time_s.size
    rep = np.full(n, np.nan) if rec.reprojection_px is None else np.asarray(rec.reprojection_px, dtype=float)
    torso = check_torso_input(est, rec)
    cols = _offline_columns(n, est.out)
    stages: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    for i in range(n):
        f = est.step(rec.markers_m[i], float(rec.time_s[i]), reprojection_px=float(rep[i]),
                     torso_m=None if torso is None else torso[i])
        for k, arr in cols.items():
            arr[i] = getattr(f, k)
        for k, v in f.stage_s.items():
            stages.setdefault(k, np.zeros(n))[i] = v
        if progress is not None and (i % 60 == 0 or i == n - 1):
            progress(i + 1, n)
    return OfflineResult(rec.time_s, est.reported, seconds=time.perf_counter() - t0, stage_s=stages, **cols)


def check_torso_input(est: KinematicsToLoads, rec: MarkerRecording) -> np.ndarray | None:
    """``rec.torso_markers_m`` when the recording has torso markers, else None; ``ValueError`` when they were built
    for other torso markers than ``est``'s (names count or offsets differ: another marker set or model)."""
    tm = rec.torso_markers_m
    if tm is None:
        return None
    ref = est.torso
    if ref is None or ref.offsets_m.shape != rec.torso_offsets_m.shape or \
            not np.allclose(ref.offsets_m, rec.torso_offsets_m, rtol=0.0, atol=1e-9):
        raise ValueError(f"recording {rec.name!r}: torso_offsets_m {rec.torso_offsets_m.shape} are not the estimator's "
                         f"torso markers ({None if ref is None else ref.offsets_m.shape}); build it with "
                         "load_marker_recording(..., torso=estimator.torso)")
    return tm

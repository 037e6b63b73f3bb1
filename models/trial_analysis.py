"""A recorded walking trial, end to end: markers -> joint angles -> GRF -> joint moments -> KAM/KEM.

The offline chain that ``exo analyze`` runs (pure computation; the CLI only parses and writes):

1. markers (``.trc``/``.c3d``, lab y-up frame) -> inverse kinematics on the model
   (``models.kinematics.inverse_kinematics``), the model scaled to the subject: per segment from an OpenSim
   model of the subject when the marker set comes from one (``GC5.osim``), else by height, and
   masses to the subject's body mass;
2. coordinates -> zero-lag smoothed velocities and accelerations (``models.filters``, Butterworth
   ``cutoff_hz``, default 6 Hz);
3. ground reaction force per foot: measured force plates (``grf``; each plate assigned to the foot
   whose calcaneus-to-toe segment is nearest its centre of pressure while loaded) or, without plates,
   the kinematics-only estimate (``models.grf.estimator``);
4. inverse dynamics (``mj_inverse``, each foot's wrench at its CoP) -> coordinate moments (N*m),
   pelvis residuals, knee adduction/extension moments in %BW*ht (``models.dynamics.knee_moments``); with
   ``muscles``, static optimisation and the knee contact of the side in the same compiled frame loop
   (:func:`_id_muscles_contact_cpu`; ``models.muscles.knee_contact.knee_contact_from_analysis`` returns that
   contact).  Per trial the stages copy no model for a subject already seen in the process: the SO and the
   contact read the trial's model, inverse dynamics' private model is kept per model content
   (``models.dynamics.id_model_cache``).

Frames: outputs are in the model's z-up world (x, y horizontal) except where named otherwise.
"""
from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import mujoco
import numpy as np

from models.confidence import EnvelopeFlag, estimate_flags, flags_dict, implausible_notes
from models.filters import smooth_derivatives
from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
from models.dynamics.opensim_grf import external_wrench_from_opensim_grf
from models.dynamics.opensim_state import kinematics_from_opensim
from models.dynamics.wrenches import ExternalWrenchTrial
from models.kinematics.ik_types import IKParams
from models.kinematics.inverse_kinematics import InverseKinematics
from models.dynamics.knee_moments import KneeMoments, KneeMomentsParams, stance_intervals_from_force, stance_summaries
from models.io.lab_files import read_trial
from models.io.storage import read_mot, read_sto
from models.io.time_series import TimeSeriesTable
from models.body.markerset import from_opensim_markerset
from models.body.registry import MusculoskeletalModel, load_model
from models.body.scaling import SubjectScale, opensim_max_isometric_forces, scale_model

STANDARD_GRAVITY_M_S2 = 9.80665
FOOT_BODIES = {"left": ("calcn_l", "toes_l"), "right": ("calcn_r", "toes_r")}
REPORT_COORDINATES = ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle")


@dataclass(frozen=True)
class AnalyzeParams:
    """Subject and options. ``side``: the limb of interest (its knee moments are reported)."""

    mass_kg: float
    height_m: float
    side: Literal["left", "right"]
    model: str = "myoleg"
    cutoff_hz: float = 6.0
    grf_threshold_n: float = 20.0
    muscles: bool = False                    # static optimisation (activations, reserves)
    grf_contact_solver: str = "feasible"     # kinematics-only GRF: models.grf.params.CONTACT_SOLVERS
    grf_trunk: bool = True                   # kinematics-only GRF: trunk bending/rotation from the thorax markers (live: EstimatorParams.grf_trunk)
    subject_calibration: bool = True         # MyoLeg's muscles calibrated to the subject .osim when an artefact exists
    backend: str = "cpu"                     # ID + SO: "cpu" (MuJoCo, float64) or "warp" (MuJoCo Warp batch, float32)
    device: str | None = None                # warp device ("cpu", "cuda", ...); None: CUDA when present, else cpu

    def __post_init__(self) -> None:
        SubjectScale(self.mass_kg, self.height_m)   # validates mass and height, naming the field and value
        if self.side not in ("left", "right"):
            raise ValueError(f"side = {self.side!r}: allowed 'left' or 'right'")
        if not (1.0 <= self.cutoff_hz <= 30.0):
            raise ValueError(f"cutoff_hz = {self.cutoff_hz!r}: allowed 1..30 Hz")
        from models.dynamics.warp_backend import check_backend

        check_backend(self.backend)


@dataclass
class TrialAnalysis:
    """Everything one trial produced; arrays are (N, ...) on ``time_s``."""

    name: str
    time_s: np.ndarray
    coordinate_names: tuple[str, ...]
    coordinates: np.ndarray                 # rad / m
    ik_residual_rms_m: np.ndarray
    ik_status: np.ndarray
    grf_source: str                         # "force plates" | "kinematics"
    foot_force_n: dict[str, np.ndarray]     # side -> (N, 3) world
    foot_cop_m: dict[str, np.ndarray]       # side -> (N, 3) world (NaN when unloaded)
    foot_free_moment_nm: dict[str, np.ndarray]
    moment_names: tuple[str, ...]
    moments_nm: np.ndarray                  # (N, n_coord) net joint moments
    residual_force_n: np.ndarray
    residual_moment_nm: np.ndarray
    kam_pct_bw_ht: np.ndarray
    kem_pct_bw_ht: np.ndarray
    stance: list[tuple[float, float]]
    params: AnalyzeParams
    notes: list[str] = field(default_factory=list)
    muscles: Any = None                     # models.muscles.static_optimization.SOTrial, when computed
    backend: str = "cpu"                    # where ID and SO ran: "cpu", or "warp (device ...)"
    joint_moments: Any = None               # models.dynamics.inverse_dynamics.JointMomentsTrial (tibia reaction incl.)
    knee_contact: Any = None                # models.muscles.knee_contact.KneeContactTrial of ``params.side``, when
                                            # computed with the muscles in one pass (CPU backend)

    def coordinate(self, name: str) -> np.ndarray:
        return self.coordinates[:, self.coordinate_names.index(name)]

    def summary(self) -> dict[str, Any]:
        kam = stance_summaries(self.time_s, self.kam_pct_bw_ht, self.stance)
        kem = stance_summaries(self.time_s, self.kem_pct_bw_ht, self.stance)
        bw = self.params.mass_kg * STANDARD_GRAVITY_M_S2
        flags = self.envelope_flags()
        return {
            "trial": self.name, "frames": int(self.time_s.size), "grf_source": self.grf_source, "backend": self.backend,
            "side": self.params.side, "stance_s": self.stance,
            "ik_residual_rms_mm": {"median": float(np.nanmedian(self.ik_residual_rms_m) * 1e3),
                                   "max": float(np.nanmax(self.ik_residual_rms_m) * 1e3)},
            "kam_pct_bw_ht": [{"peak": s.peak, "first_peak": s.first_peak, "second_peak": s.second_peak,
                               "impulse": s.impulse} for s in kam],
            "kem_pct_bw_ht": [{"peak": s.peak, "impulse": s.impulse} for s in kem],
            "pelvis_residual_force_rms_bw": (np.sqrt(np.mean(self.residual_force_n ** 2, axis=0)) / bw).tolist(),
            "envelopes": flags_dict(flags),
            "notes": self.notes + implausible_notes(flags),
        }

    def envelope_flags(self) -> list[EnvelopeFlag]:
        """Each estimate against its physiological envelope (``models.confidence``): vertical GRF of each foot, KAM,
        KEM and, with muscles, the activation rate; the fraction of frames outside each."""
        rate = (self.time_s.size - 1) / float(self.time_s[-1] - self.time_s[0]) if self.time_s.size > 1 else None
        vgrf = np.column_stack([f[:, 2] for f in self.foot_force_n.values()])
        act = self.muscles.activation if self.muscles is not None else None
        return estimate_flags(self.params.mass_kg, foot_vgrf_n=vgrf, kam_pct_bw_ht=self.kam_pct_bw_ht,
                              kem_pct_bw_ht=self.kem_pct_bw_ht, activation=act, rate_hz=rate)


# ----------------------------------------------------------------------------------- model

def _osim_has_bodies(path: Path) -> bool:
    """Whether the marker-set file is a whole OpenSim model (a ``BodySet``); parsed once per file version
    (:func:`models.io.xml_cache.osim_has_body_set`, the tree shared with the marker-set readers)."""
    from models.io.xml_cache import osim_has_body_set

    try:
        return osim_has_body_set(path)
    except ET.ParseError as exc:
        raise ValueError(f"markerset file {path}: not valid XML ({exc})") from None


def _apply_subject_calibration(model: mujoco.MjModel, osim_path: Path, side: str, notes: list[str]) -> None:
    """The stored calibration of MyoLeg's muscles to ``osim_path`` (:mod:`models.muscles.moment_arm_calibration`:
    path sites, operating lengths, force-length curves), applied in place when one exists for this file and side."""
    from models.muscles.subject_calibration import apply_calibration, calibration_path, load_calibration

    cal = load_calibration(osim_path, side)
    if cal is None:
        notes.append(f"muscles: no subject calibration for {osim_path.name} ({side}); MyoLeg's paths and curves as scaled")
        return
    apply_calibration(model, cal)
    notes.append(f"muscles: {len(cal.site_offsets_m)} paths, {len(cal.length_ranges_m)} operating lengths and "
                 f"{len(cal.curves)} force-length curves calibrated to {osim_path.name} "
                 f"({calibration_path(osim_path, side).name})")


def subject_model(params: AnalyzeParams, markerset_path: Path, notes: list[str]) -> mujoco.MjModel:
    """The template scaled to the subject (geometry, masses, inertias and muscle length ranges together).

    With an OpenSim model of the subject (a marker set file with a BodySet, e.g. ``GC5.osim``): each segment
    gets the length ratio of that model to the template (talus with the foot, patella with the femur), the
    rest the height factor; otherwise every segment the height factor. Masses follow the body mass.
    """
    template = load_model(params.model)
    tm = template.readonly_model           # read here, never written: no copy of the registry's template (27 MB)
    subject = SubjectScale(params.mass_kg, params.height_m)
    if markerset_path.suffix == ".osim" and _osim_has_bodies(markerset_path):
        ratios = from_opensim_markerset(markerset_path, tm).scale_factors   # template / subject model
        factors = {b: 1.0 / r for b, r in ratios.items() if r > 0}
        for side in "lr":
            if f"calcn_{side}" in factors:
                factors.setdefault(f"talus_{side}", factors[f"calcn_{side}"])
            if f"femur_{side}" in factors:
                factors.setdefault(f"patella_{side}", factors[f"femur_{side}"])
        bodies = {tm.body(i).name for i in range(1, tm.nbody)}
        factors = {b: f for b, f in factors.items() if b in bodies}
        # the subject model's muscle strengths (F0): GC5.osim's knee muscles are ~0.6 x MyoLeg's, see models/body/scaling.py
        try:
            f0 = opensim_max_isometric_forces(markerset_path, [tm.actuator(i).name for i in range(tm.nu)])
        except ValueError:
            f0 = {}
        scaled = scale_model(template, subject, length_by_body=factors, max_isometric_force_n=f0 or None)
        notes.append(f"model: {params.model} scaled to {markerset_path.name}'s segments "
                     f"({', '.join(f'{b} {f:.3f}' for b, f in sorted(factors.items()) if b.endswith('_l') or b == 'pelvis')}), "
                     f"other segments by height, masses to {params.mass_kg:g} kg, muscles with their segments"
                     + (f", F0 of {len(f0)} muscles from {markerset_path.name}" if f0 else ""))
        if params.subject_calibration and params.model == "myoleg":
            _apply_subject_calibration(scaled.model, markerset_path, params.side, notes)
        return scaled.model
    scaled = scale_model(template, subject)
    notes.append(f"model: {params.model} scaled by height ({params.height_m:g} m) and mass ({params.mass_kg:g} kg)")
    return scaled.model


# ----------------------------------------------------------------------------------- plates

_PLATE_PATTERNS = [
    (re.compile(r"^(\d+)_ground_force_vx$"), "{p}_ground_force_v", "{p}_ground_force_p", "{p}_ground_torque_"),
    (re.compile(r"^ground_force_(\d+)_vx$"), "ground_force_{p}_v", "ground_force_{p}_p", "ground_torque_{p}_"),
]


def force_plates(table: TimeSeriesTable) -> list[tuple[str, str, str, str]]:
    """(plate, force id, point id, torque id) for every plate in an OpenSim GRF table."""
    plates = []
    for col in table.columns:
        for pat, f, p, t in _PLATE_PATTERNS:
            m = pat.match(col)
            if m:
                k = m.group(1)
                plates.append((k, f.format(p=k), p.format(p=k), t.format(p=k)))
    if not plates:
        raise ValueError(f"{table.name}: no force-plate columns (expected '1_ground_force_vx' or 'ground_force_1_vx' "
                         f"style); columns: {list(table.columns)[:8]}...")
    return plates


def _with_missing_torques(table: TimeSeriesTable, torque_id: str) -> TimeSeriesTable:
    """Plates that record only the vertical free moment: the other components are zero (stated)."""
    cols, data = list(table.columns), table.data
    extra = [f"{torque_id}{a}" for a in "xyz" if f"{torque_id}{a}" not in cols]
    if not extra:
        return table
    return dataclasses.replace(table, columns=tuple(cols + extra),
                               data=np.hstack([data, np.zeros((data.shape[0], len(extra)))]))


def _foot_segment_points(model: mujoco.MjModel, qpos: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    d = mujoco.MjData(model)
    heel = np.empty((qpos.shape[0], 3))
    toe = np.empty_like(heel)
    b_heel, b_toe = (mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in FOOT_BODIES[side])
    for i, q in enumerate(qpos):
        d.qpos[:] = q
        mujoco.mj_kinematics(model, d)
        heel[i], toe[i] = d.xpos[b_heel], d.xpos[b_toe]
    return heel, toe


def _dist_to_segment_xy(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = (b - a)[:, :2]
    ap = (p - a)[:, :2]
    t = np.clip(np.sum(ap * ab, axis=1) / np.maximum(np.sum(ab * ab, axis=1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(ap - t[:, None] * ab, axis=1)


def external_loads_plates(xml_path: str | Path) -> dict[str, str]:
    """Plate -> side from an OpenSim ExternalLoads XML (``applied_to_body`` calcn_l/calcn_r per force identifier)."""
    root = ET.parse(xml_path).getroot()
    out = {}
    for ef in root.iter("ExternalForce"):
        body = (ef.findtext("applied_to_body") or "").strip()
        ident = (ef.findtext("force_identifier") or "").strip()
        m = re.search(r"(\d+)", ident)
        if m and body in ("calcn_l", "calcn_r"):
            out[m.group(1)] = "left" if body == "calcn_l" else "right"
    if not out:
        raise ValueError(f"{xml_path}: no ExternalForce with applied_to_body calcn_l/calcn_r and a numbered force_identifier")
    return out


def measured_foot_wrenches(model: mujoco.MjModel, qpos: np.ndarray, time_s: np.ndarray, grf_path: Path,
                           cutoff_hz: float, threshold_n: float, notes: list[str],
                           plate_sides: dict[str, str] | None = None) -> dict[str, ExternalWrenchTrial]:
    """Each plate's wrench on the calcaneus of the foot standing on it: assigned per loaded interval to the
    nearer foot, or by ``plate_sides`` (plate -> side, e.g. from an external-loads XML; other plates unused)."""
    table = read_sto(grf_path) if grf_path.suffix == ".sto" else read_mot(grf_path)
    feet = {s: _foot_segment_points(model, qpos, s) for s in ("left", "right")}
    out: dict[str, list[ExternalWrenchTrial]] = {"left": [], "right": []}
    for plate, f_id, p_id, t_id in force_plates(table):
        tab = _with_missing_torques(table, t_id)
        w = external_wrench_from_opensim_grf(tab, "calcn_l", force_identifier=f_id, point_identifier=p_id,
                                             torque_identifier=t_id, time_s=time_s, cutoff_hz=cutoff_hz,
                                             threshold_n=threshold_n)
        loaded = w.force_n[:, 2] >= threshold_n
        if not loaded.any():
            notes.append(f"plate {plate}: never loaded above {threshold_n:g} N; unused")
            continue
        # contiguous loaded intervals, each assigned to the nearer foot
        edges = np.flatnonzero(np.diff(np.r_[0, loaded.astype(int), 0]))
        for a, b in zip(edges[::2], edges[1::2]):
            sl = slice(a, b)
            dist = {s: float(np.nanmedian(_dist_to_segment_xy(w.point_m[sl], feet[s][0][sl], feet[s][1][sl])))
                    for s in feet}
            side = min(dist, key=dist.get)
            if plate_sides is not None:
                if plate not in plate_sides:
                    notes.append(f"plate {plate}: not in the external loads; unused")
                    break
                side = plate_sides[plate]
            part = ExternalWrenchTrial(f"calcn_{side[0]}", np.zeros_like(w.force_n), np.full_like(w.point_m, np.nan),
                                       np.zeros_like(w.free_moment_nm), time_s)
            part.force_n[sl], part.point_m[sl], part.free_moment_nm[sl] = w.force_n[sl], w.point_m[sl], w.free_moment_nm[sl]
            out[side].append(part)
            notes.append(f"plate {plate} {time_s[a]:.3f}-{time_s[b - 1]:.3f} s -> {side} foot "
                         f"(CoP {dist[side] * 100:.1f} cm from its heel-toe line)")
    return {s: _combine(ws, f"calcn_{s[0]}", time_s) for s, ws in out.items()}


def _combine(wrenches: list[ExternalWrenchTrial], body: str, time_s: np.ndarray) -> ExternalWrenchTrial:
    """Sum of wrenches on one foot as one force at a combined CoP (on the ground plane) plus free moment."""
    n = time_s.size
    F = np.zeros((n, 3))
    M = np.zeros((n, 3))     # about the world origin
    for w in wrenches:
        F += w.force_n
        p = np.where(np.isfinite(w.point_m), w.point_m, 0.0)
        M += np.cross(p, w.force_n) + w.free_moment_nm
    h = np.zeros(n)                          # ground-plane height per frame: mean CoP height of the loaded plates
    if wrenches:
        zs = np.vstack([w.point_m[:, 2] for w in wrenches])
        cnt = np.isfinite(zs).sum(axis=0)
        h = np.where(cnt > 0, np.nansum(zs, axis=0) / np.maximum(cnt, 1), 0.0)
    loaded = F[:, 2] > 1e-6
    P = np.full((n, 3), np.nan)
    fz = np.where(loaded, F[:, 2], 1.0)
    P[:, 0] = np.where(loaded, (h * F[:, 0] - M[:, 1]) / fz, np.nan)
    P[:, 1] = np.where(loaded, (M[:, 0] + h * F[:, 1]) / fz, np.nan)
    P[:, 2] = np.where(loaded, h, np.nan)
    T = np.zeros((n, 3))
    Pz = np.where(loaded[:, None], P, 0.0)
    T[:, 2] = np.where(loaded, M[:, 2] - (Pz[:, 0] * F[:, 1] - Pz[:, 1] * F[:, 0]), 0.0)
    return ExternalWrenchTrial(body, F, P, T, time_s)


# ----------------------------------------------------------------------------------- chain

@dataclass
class TrialKinematics:
    """Steps 1-2 of the chain, shared by the measured-GRF and the kinematics-only paths."""

    name: str
    model: mujoco.MjModel
    ik: Any                  # models.kinematics.inverse_kinematics.IKTrial
    smoothed: Any            # models.filters smoothing result (position, velocity, acceleration)
    mapped: Any              # models.dynamics.inverse_dynamics.MappedKinematics (qpos, qvel, qacc)
    notes: list[str]
    time_s: np.ndarray       # uniform grid at the trial's sample rate (lab stamps are often rounded)
    rate_hz: float
    markerset: Any = None    # models.body.markerset.MarkerSet on ``model`` (lab markers; None for video keypoints)


def trial_kinematics(trc_path: str | Path, markerset_path: str | Path, params: AnalyzeParams) -> TrialKinematics:
    """Markers -> IK on the subject-scaled model -> smoothed coordinates, velocities, accelerations."""
    trc_path, markerset_path = Path(trc_path), Path(markerset_path)
    notes: list[str] = []
    trial = read_trial(trc_path)
    markers = getattr(trial, "markers", trial)          # a C3DTrial carries a MarkerTrial
    model = subject_model(params, markerset_path, notes)
    mset = from_opensim_markerset(markerset_path, model)
    ik = InverseKinematics(model, mset, IKParams()).run(markers)
    solved = np.isfinite(ik.residual_rms_m)
    if not solved.any():
        raise ValueError(f"{trc_path.name}: inverse kinematics solved no frame (markers: {len(markers.marker_names)}, "
                         f"matched to the marker set: {len(mset)})")
    if not solved.all():
        notes.append(f"IK: {int((~solved).sum())} frame(s) not solved (too few markers): pose held, flagged")
    # The header's rate, not 1/median(diff(t)): lab stamps are rounded (120 Hz at 1 ms gives 8 and 9 ms steps,
    # whose median would say 125 Hz and scale velocities by 4 % and accelerations by 8.5 %).
    rate = float(getattr(markers, "rate_hz", 0.0) or 0.0)
    if not rate > 0:
        rate = (ik.time_s.size - 1) / float(ik.time_s[-1] - ik.time_s[0])
    span_rate = (ik.time_s.size - 1) / float(ik.time_s[-1] - ik.time_s[0])
    if abs(span_rate / rate - 1.0) > 0.01:
        raise ValueError(f"{trc_path.name}: DataRate = {rate:g} Hz but the time column spans {span_rate:.3f} Hz")
    t = ik.time_s[0] + np.arange(ik.time_s.size) / rate
    sm = smooth_derivatives(ik.coordinates, rate, cutoff_hz=params.cutoff_hz, channel_names=ik.coordinate_names)
    mk = kinematics_from_opensim(model, ik.coordinate_names, sm.position, sm.velocity, sm.acceleration)
    return TrialKinematics(trc_path.stem, model, ik, sm, mk, notes, t, rate, markerset=mset)


def trial_dynamics(kin: TrialKinematics, feet: dict[str, ExternalWrenchTrial], source: str,
                   params: AnalyzeParams, notes: list[str]) -> TrialAnalysis:
    """Step 4: inverse dynamics with each foot's wrench, knee moments of ``params.side``; with ``params.muscles``
    static optimisation and, on the CPU backend, the knee contact of ``params.side`` in the same pass
    (:func:`_id_muscles_contact_cpu`)."""
    tibia = f"tibia_{params.side[0]}"
    # the private ID model shared by the trials of one subject (models.dynamics.id_model_cache): never written here
    inv = InverseDynamics(kin.model, InverseDynamicsParams(reaction_bodies=(tibia,), gravity_m_s2=STANDARD_GRAVITY_M_S2),
                          shared_private=True)
    mk = kin.mapped
    externals = [feet["left"], feet["right"]]
    backend, muscles, contact = "cpu", None, None
    if params.backend == "warp":            # MuJoCo Warp, all frames in one batch (models.dynamics.warp_backend)
        jm, muscles, backend = _id_muscles_warp(kin, inv, externals, params, notes)
    elif params.muscles:
        jm, muscles, contact = _id_muscles_contact_cpu(kin, inv, externals, params, notes)
    else:
        jm = inv.run(mk.qpos, mk.qvel, mk.qacc, externals, time_s=kin.time_s)
    knee = KneeMoments(inv, KneeMomentsParams(params.side, params.mass_kg, params.height_m)).run(jm)
    stance = stance_intervals_from_force(kin.time_s, feet[params.side].force_n[:, 2], params.grf_threshold_n)
    if muscles is not None:
        worst = max(((float(np.sqrt(np.mean(muscles.reserve_nm[:, j] ** 2))), c)
                     for j, c in enumerate(muscles.coordinate_names) if c in muscles.solved_coordinates), default=None)
        if worst is not None and worst[0] > 1.0:
            notes.append(f"static optimisation: largest reserve {worst[1]} {worst[0]:.1f} N*m RMS (muscles could not "
                         "supply it: the IK model's muscle paths are not scaled with its segments)")
    return TrialAnalysis(
        name=kin.name, time_s=kin.time_s, coordinate_names=tuple(kin.ik.coordinate_names),
        coordinates=kin.smoothed.position, ik_residual_rms_m=kin.ik.residual_rms_m, ik_status=kin.ik.status,
        grf_source=source, foot_force_n={s: w.force_n for s, w in feet.items()},
        foot_cop_m={s: w.point_m for s, w in feet.items()},
        foot_free_moment_nm={s: w.free_moment_nm for s, w in feet.items()},
        moment_names=tuple(jm.coordinate_names), moments_nm=jm.coordinate_force,
        residual_force_n=jm.residual_force_n, residual_moment_nm=jm.residual_moment_nm,
        kam_pct_bw_ht=knee.knee_adduction_moment_pct_bw_ht, kem_pct_bw_ht=knee.knee_extension_moment_pct_bw_ht,
        stance=stance, params=params, notes=list(kin.notes) + notes, muscles=muscles, backend=backend,
        joint_moments=jm, knee_contact=contact)


def _id_muscles_contact_cpu(kin: TrialKinematics, inv: InverseDynamics, externals: list[ExternalWrenchTrial],
                            params: AnalyzeParams, notes: list[str]):
    """ID, static optimisation and (where the model has the knee's bodies) the knee contact of ``params.side`` in
    one compiled frame loop (:class:`models.muscles.compiled_chain.CompiledChain`: one position stage per frame,
    the contact read from the SO's tendon paths; the SO reads ``kin.model`` itself, :mod:`models.muscles
    .so_stage_model`, and the contact stage too: one model copy per trial, the ID's).  ID and SO equal
    ``inv.run`` + ``StaticOptimization.run`` bit for bit, the contact :meth:`KneeContact.run` to 1e-12 relative
    (tests/test_trial_analysis_chain.py).
    Returns ``(JointMomentsTrial, SOTrial, KneeContactTrial | None)``."""
    from models.muscles.compiled_chain import CompiledChain
    from models.muscles.knee_contact import KneeContact, contact_supported, subject_condyle_geometry
    from models.muscles.static_optimization import SOParams, StaticOptimization

    so = StaticOptimization(kin.model, SOParams(), share_model=True)   # kin.model is read only from here on
    kc = None
    if contact_supported(kin.model, params.side):
        # the contact points about the subject's epicondyle midpoint where the marker set places it
        geom = subject_condyle_geometry(kin.model, params.side, kin.markerset)
        kc = KneeContact(kin.model, params.side, body_mass_kg=params.mass_kg, condyle_offsets_m=geom.offsets_m)
        notes.append(f"knee contact points: {geom.source}")
    mk = kin.mapped
    return CompiledChain(so, inv, kc).run(mk.qpos, mk.qvel, mk.qacc, externals, kin.time_s)


def _id_muscles_warp(kin: TrialKinematics, inv: InverseDynamics, externals: list[ExternalWrenchTrial],
                     params: AnalyzeParams, notes: list[str]):
    """ID (and with ``params.muscles`` the SO's muscle state) batched on MuJoCo Warp: ``(JointMomentsTrial,
    SOTrial | None, backend label)``."""
    from models.dynamics.warp_backend import WarpInverseDynamics

    wid = WarpInverseDynamics(inv, device=params.device)
    mk = kin.mapped
    jm = wid.run(mk.qpos, mk.qvel, mk.qacc, externals, time_s=kin.time_s)
    muscles = None
    qp_where = ""
    if params.muscles:
        from models.muscles.static_optimization import SOParams, StaticOptimization
        from models.muscles.warp_backend import WarpStaticOptimization

        wso = WarpStaticOptimization(StaticOptimization(kin.model, SOParams()), device=params.device)
        muscles = wso.run(mk.qpos, mk.qvel, jm.coordinate_force)
        qp_where = (" and the static optimisation's muscle state (QP "
                    + ("batched on Warp, float64)" if wso.qp == "warp" else "on the host, frame by frame)"))
    notes.append(f"backend: MuJoCo Warp on device {wid.device} (float32) for inverse dynamics" + qp_where)
    return jm, muscles, f"warp (device {wid.device})"


def analyze_trial(trc_path: str | Path, markerset_path: str | Path, params: AnalyzeParams, *,
                  grf_path: str | Path | None = None, kin: TrialKinematics | None = None,
                  external_loads: str | Path | None = None) -> TrialAnalysis:
    """Run the chain on one trial; ``grf_path`` given: measured plates, else the kinematics-only estimate."""
    kin = kin or trial_kinematics(trc_path, markerset_path, params)
    notes: list[str] = []
    if grf_path is not None:
        sides = external_loads_plates(external_loads) if external_loads else None
        feet = measured_foot_wrenches(kin.model, kin.mapped.qpos, kin.time_s, Path(grf_path), params.cutoff_hz,
                                      params.grf_threshold_n, notes, plate_sides=sides)
        return trial_dynamics(kin, feet, "force plates", params, notes)
    # on by default in both chains (the live chain: EstimatorParams.grf_trunk; its KAM is guarded against this one)
    lumbar = trunk_lumbar(kin, trc_path, markerset_path, notes) if params.grf_trunk else None
    feet = kinematic_foot_wrenches(kin, params, notes, lumbar_rad=lumbar)
    return trial_dynamics(kin, feet, "kinematics", params, notes)


# ----------------------------------------------------------------------------------- outputs

def _angle_columns(names: tuple[str, ...]) -> list[str]:
    return [f"{n}_m" if n.endswith(("_tx", "_ty", "_tz")) else f"{n}_deg" for n in names]


def write_csvs(result: TrialAnalysis, out_dir: str | Path) -> list[Path]:
    """joint_angles.csv (deg, m), ground_reaction_force.csv (N, m, N*m), joint_moments.csv (N*m; N for
    translations), knee_moments.csv (%BW*ht), activations.csv (fraction 0..1, reserves N*m; when static
    optimisation ran); every file starts with a ``time_s`` column."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t = result.time_s[:, None]
    ang = result.coordinates.copy()
    rot = [not n.endswith(("_tx", "_ty", "_tz")) for n in result.coordinate_names]
    ang[:, rot] = np.degrees(ang[:, rot])
    files = []

    def save(name: str, header: list[str], data: np.ndarray) -> None:
        p = out / name
        tmp = p.with_suffix(".csv.tmp")
        np.savetxt(tmp, data, delimiter=",", header=",".join(header), comments="", fmt="%.6g")
        tmp.replace(p)
        files.append(p)

    save("joint_angles.csv", ["time_s", *_angle_columns(result.coordinate_names)], np.hstack([t, ang]))
    cols, blocks = ["time_s"], [t]
    for side in ("left", "right"):
        for what, arr, unit in (("force", result.foot_force_n[side], "n"), ("cop", result.foot_cop_m[side], "m"),
                                ("free_moment", result.foot_free_moment_nm[side], "nm")):
            cols += [f"{side}_{what}_{a}_{unit}" for a in "xyz"]
            blocks.append(arr)
    save("ground_reaction_force.csv", cols, np.hstack(blocks))
    mcols = [f"{n}_n" if n.endswith(("_tx", "_ty", "_tz")) else f"{n}_nm" for n in result.moment_names]
    save("joint_moments.csv", ["time_s", *mcols, "pelvis_residual_force_x_n", "pelvis_residual_force_y_n",
                               "pelvis_residual_force_z_n", "pelvis_residual_moment_x_nm", "pelvis_residual_moment_y_nm",
                               "pelvis_residual_moment_z_nm"],
         np.hstack([t, result.moments_nm, result.residual_force_n, result.residual_moment_nm]))
    side = result.params.side
    save("knee_moments.csv", ["time_s", f"knee_adduction_moment_{side}_pct_bw_ht", f"knee_extension_moment_{side}_pct_bw_ht"],
         np.hstack([t, result.kam_pct_bw_ht[:, None], result.kem_pct_bw_ht[:, None]]))
    so = result.muscles
    if so is not None:   # activation is a fraction 0..1 (suffix _frac), reserves N*m
        save("activations.csv", ["time_s", *[f"{m}_frac" for m in so.muscle_names],
                                 *[f"reserve_{c}_nm" for c in so.coordinate_names]],
             np.hstack([t, so.activation, so.reserve_nm]))
    return files


def write_results(result: TrialAnalysis, out_dir: str | Path) -> list[Path]:
    """What ``exo analyze`` writes: :func:`write_csvs`, and beside them the same results in OpenSim's formats
    (``joint_angles.mot``, ``grf.mot`` + ``external_loads.xml``, ``joint_moments.sto``;
    :mod:`models.io.opensim_export`)."""
    from models.io.opensim_export import write_opensim_results

    return write_csvs(result, out_dir) + write_opensim_results(result, out_dir)


# ----------------------------------------------------------------------------------- validation

def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.sqrt(np.mean((a[ok] - b[ok]) ** 2))) if ok.any() else float("nan")


def ik_validation(result: TrialAnalysis, ik_ref_path: str | Path) -> dict[str, float]:
    """Joint-angle RMSE (deg) of our IK against a reference IK (.mot, OpenSim coordinate names), side of interest."""
    ref = read_mot(ik_ref_path) if str(ik_ref_path).endswith(".mot") else read_sto(ik_ref_path)
    ref = ref.to_radians() if ref.in_degrees else ref
    out = {}
    s = result.params.side[0]
    for c in REPORT_COORDINATES:
        name = f"{c}_{s}"
        if name in result.coordinate_names and name in ref.columns:
            r = np.interp(result.time_s, ref.time_s, ref.column(name))
            out[f"{name}_rmse_deg"] = float(np.degrees(_rmse(result.coordinate(name), r)))
    return out


def grf_validation(estimate: TrialAnalysis, measured: TrialAnalysis) -> dict[str, float]:
    """Vertical and horizontal GRF RMSE (%BW) of the estimate against the plates, stance foot (where loaded).

    Also the plates' consistency with the kinematics (:func:`models.grf.plate_check.plate_consistency`: scale and
    lag of the plates' total vertical force against the estimate's, where every foot in contact is on a plate;
    ``plates_vs_kinematics_scale``, ``plates_vs_kinematics_lag_ms``) and, as a diagnostic beside the headline
    figure, the vertical RMSE against the plates with that scale and lag taken out
    (``*_vertical_grf_rmse_pct_bw_plates_rescaled_shifted``): what the error would be if the plates agreed with
    the recorded mass and the markers' clock."""
    from models.grf.plate_check import corrected_plate_force, plate_consistency

    bw = estimate.params.mass_kg * STANDARD_GRAVITY_M_S2
    thr = estimate.params.grf_threshold_n
    out = {}
    t = estimate.time_s
    rate = (t.size - 1) / float(t[-1] - t[0]) if t.size > 1 else float("nan")
    sides = ("left", "right")
    check = plate_consistency(sum(estimate.foot_force_n[s][:, 2] for s in sides),
                              sum(measured.foot_force_n[s][:, 2] for s in sides),
                              np.column_stack([estimate.foot_force_n[s][:, 2] > 1e-6 for s in sides]),
                              np.column_stack([measured.foot_force_n[s][:, 2] > 1.0 for s in sides]), rate) \
        if t.size > 40 else None
    if check is not None:
        out["plates_vs_kinematics_scale"] = check.scale
        out["plates_vs_kinematics_lag_ms"] = 1e3 * check.lag_s
    for side in sides:
        m = measured.foot_force_n[side]
        e = estimate.foot_force_n[side]
        loaded = m[:, 2] >= thr
        if loaded.sum() < 5:
            continue
        out[f"{side}_vertical_grf_rmse_pct_bw"] = 100 * _rmse(e[loaded, 2], m[loaded, 2]) / bw
        out[f"{side}_horizontal_grf_rmse_pct_bw"] = 100 * float(
            np.sqrt(np.nanmean(np.sum((e[loaded, :2] - m[loaded, :2]) ** 2, axis=1)))) / bw
        if check is not None:
            mc = corrected_plate_force(m[:, 2], check, rate)
            ok = np.isfinite(mc) & (mc >= thr)
            out[f"{side}_vertical_grf_rmse_pct_bw_plates_rescaled_shifted"] = 100 * _rmse(e[ok, 2], mc[ok]) / bw
    return out


def moment_validation(estimate: TrialAnalysis, measured: TrialAnalysis) -> dict[str, float]:
    """KEM and KAM RMSE (%BW*ht) of the kinematics-only chain against ID with measured GRF, stance of the side."""
    st = np.zeros(estimate.time_s.size, dtype=bool)
    for a, b in measured.stance:
        st |= (estimate.time_s >= a) & (estimate.time_s <= b)
    side = estimate.params.side
    return {f"knee_extension_moment_{side}_rmse_pct_bw_ht": _rmse(estimate.kem_pct_bw_ht[st], measured.kem_pct_bw_ht[st]),
            f"knee_adduction_moment_{side}_rmse_pct_bw_ht": _rmse(estimate.kam_pct_bw_ht[st], measured.kam_pct_bw_ht[st])}


def trunk_lumbar(kin: TrialKinematics, trc_path: str | Path, markerset_path: str | Path,
                 notes: list[str]) -> np.ndarray | None:
    """Lumbar angles (N, 3) rad for the GRF estimate from the trial's thorax markers
    (:func:`models.grf.trunk.lumbar_for_grf`; the IK leaves the torso markers out), or ``None`` (with a note) when
    the marker set or the trial has fewer than 3 of them."""
    from models.body.markerset import from_opensim_markerset
    from models.grf.trunk import lumbar_for_grf, thorax_markers
    from models.io.axes import opensim_to_z_up
    from models.kinematics.marker_matching import match_marker_names

    trial = read_trial(Path(trc_path))
    markers = getattr(trial, "markers", trial)
    mset = from_opensim_markerset(Path(markerset_path), kin.model, exclude_bodies=())
    sel = thorax_markers(mset.names, mset.bodies)
    match = match_marker_names([mset.names[i] for i in sel], list(markers.marker_names))
    if len(match) < 3 or markers.positions_m.shape[0] != kin.mapped.qpos.shape[0]:
        notes.append(f"GRF estimate: trunk held to the pelvis ({len(match)} thorax marker(s) in the trial, need 3)")
        return None
    pos = opensim_to_z_up(np.asarray(markers.positions_m, float))
    cols = sorted(match)
    mk = np.stack([pos[:, match[i]] for i in cols], axis=1)
    off = np.stack([mset.markers[sel[i]].offset_m for i in cols])
    try:
        lum = lumbar_for_grf(kin.model, kin.mapped.qpos, mk, off)
    except ValueError as exc:
        notes.append(f"GRF estimate: trunk held to the pelvis ({exc})")
        return None
    notes.append(f"GRF estimate: trunk bending/rotation from {len(cols)} thorax markers (ranges "
                 f"{np.degrees(np.ptp(lum[:, 1])):.1f} / {np.degrees(np.ptp(lum[:, 2])):.1f} deg), extension held at "
                 f"{np.degrees(lum[0, 0]):.1f} deg")
    return lum


def kinematic_foot_wrenches(kin: TrialKinematics, params: AnalyzeParams, notes: list[str],
                            lumbar_rad: np.ndarray | None = None) -> dict[str, ExternalWrenchTrial]:
    """Per-foot wrenches from kinematics alone (``models.grf.estimator``): the whole-body equation
    F = m(a_com - g) exactly, split between the feet, CoP under the stance foot, on the calcaneus of each foot.
    ``lumbar_rad`` (N, 3): the trunk's lumbar angles (:func:`trunk_lumbar`), else the trunk moves with the pelvis."""
    from models.grf.contact import FEET
    from models.grf.estimator import GroundReactionEstimator
    from models.grf.params import GroundReactionParams
    from models.grf.records import CoordinatesTrial

    est = GroundReactionEstimator(GroundReactionParams(subject_mass_kg=params.mass_kg, cutoff_hz=params.cutoff_hz,
                                                       sample_rate_hz=kin.rate_hz,
                                                       contact_solver=params.grf_contact_solver), model=kin.model)
    g = est.run(CoordinatesTrial(kin.time_s, kin.mapped.qpos, lumbar_rad, source=kin.name))
    notes.extend(f"GRF estimate: {n}" for n in getattr(g, "notes", []))
    out = {}
    for k, side in enumerate(FEET):
        F = np.nan_to_num(g.force_n[:, k, :])
        P = g.cop_m[:, k, :].copy()
        P[F[:, 2] <= 1e-9] = np.nan
        T = np.zeros_like(F)
        fm = np.nan_to_num(np.asarray(g.free_moment_nm))
        if fm.ndim == 3:
            T = fm[:, k, :]
        else:                   # (N, 2): the vertical free moment per foot
            T[:, 2] = fm[:, k]
        out[side] = ExternalWrenchTrial(f"calcn_{side[0]}", F, P, T, kin.time_s)
    return out

"""OpenSim's own tools (StaticOptimization, InverseDynamicsTool, JointReaction), run from Python beside ours on the
same trial, with timings.

``opensim`` (the 4.6 wheel, ``pip install opensim==4.6``; a *bench* extra, never imported by the default chain) is
imported inside :func:`run_opensim_static_optimization`.  The model, coordinates and loads come from the shared
data (``GC5_PS``: the lab's scaled Rajagopal model ``GC5.osim``, its IK ``.mot``, the plate ``.mot`` and the
external-loads ``.xml`` whose ``datafile`` is the author's path and is replaced here).

The run (OpenSim's AnalyzeTool with one StaticOptimization analysis, OpenSim's defaults otherwise: activation
exponent 2, muscle force-length-velocity on, coordinates low-passed at 6 Hz, the cut-off of the lab's external-loads
file):

* reserves: a ``CoordinateActuator`` on every free, unlocked, independent coordinate, optimal force
  ``reserve_optimal_force_nm`` (1 N m: a reserve costs as much as a fully active muscle per N m, the same weighting
  as our default :class:`models.muscles.static_optimization.SOParams`), and ``residual_optimal_force`` (N or N m) on the six
  pelvis coordinates (OpenSim's usual residual actuators);
* timing: wall and CPU time of ``tool.run()`` only (model loading excluded), divided by the seconds of motion
  analysed: "seconds of compute per second of motion".  Both tools are single-threaded; on a shared machine the
  CPU-time ratio is the one to quote (wall time swings with other load: 17-70 s per s for OpenSim here).

Agreement with the lab's own OpenSim 3.3 results on PS ss1 (same model, IK and loads; whole trial, measured
2026-12-07, the patella coordinate recomputed as below): summed plantarflexor force within 4.9 % of its peak frame by
frame (peaks 3007 vs 2993 N), soleus alone within 5.7 %, gluteus medius within 6.9 %, vasti within 9.0 %,
semimembranosus within 11 %.  An earlier rerun (2026-11-25) reported the soleus up to 25 % lower and a late-swing
quadriceps-hamstrings co-contraction in 4.6 (vastus lateralis +825 N, semimembranosus +630 N at 85-90 % of the
cycle): both came from the patella coordinate's unit (:func:`coordinates_with_coupled`), not from OpenSim 4.6.
Through our contact step (:mod:`models.muscles.knee_contact`) the lab's 3.3 forces give 0.301 BW total RMSE against
the implant, the corrected 4.6 rerun 0.348 BW (r2 0.84; 0.68 BW before the correction).  JointReaction 4.6 against
3.3 on the knee (``walker_knee_l`` on the tibia, |F|): RMSE 135 N over the trial, peaks 1916 vs 1694 N.

Ours on the same trial (:func:`time_ours_id_so`): inverse dynamics (:class:`models.dynamics.inverse_dynamics
.InverseDynamics`) + static optimisation (:class:`models.muscles.static_optimization.StaticOptimization`) on our subject
model and kinematics, the same work OpenSim's tool does after reading the files (it runs its own inverse dynamics
inside StaticOptimization), timed in the same process.

Other OpenSim tools run here: :func:`run_opensim_inverse_dynamics` (InverseDynamicsTool, muscles excluded) and
:func:`run_opensim_joint_reaction` (JointReaction after a StaticOptimization run, its forces as ``forces_file``).
Each of the three first rewrites the coordinates with :func:`coordinates_with_coupled` (beside its results).

Side by side on the same frames (:func:`inverse_dynamics_side_by_side`, :func:`muscles_side_by_side`; figures in
``tests/test_opensim_side_by_side.py`` and ``make validate``): an OpenSim IK ``.mot`` and its plates on our model
(:func:`motion_on_model`: coordinates and plate wrenches low-passed at 6 Hz as ``exo analyze`` does), the same
low-passed inputs written for OpenSim (:mod:`models.io.opensim_export`) and run with OpenSim's filter off, so that only
the models and the methods differ.  The patella coordinate ``knee_angle_<s>_beta`` goes to OpenSim in radians (its
motion type is "coupled", which OpenSim 4 does not convert from degrees): the lab's OpenSim 3.3 IK files hold it in
degrees, and fed as they are to OpenSim 4.6 the patella spins and the hip moments in swing reach 480 N m.
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from typing import Any

import numpy as np

from models.io.opensim_import import import_opensim, opensim_available  # noqa: F401  (re-exported)

__all__ = ["OpenSimSOResult", "run_opensim_static_optimization", "run_opensim_inverse_dynamics",
           "run_opensim_joint_reaction", "time_ours_id_so", "opensim_available", "SideBySide", "MotionOnModel",
           "motion_on_model", "inverse_dynamics_side_by_side", "muscles_side_by_side", "MUSCLE_GROUPS",
           "SideBySideTrial", "side_by_side_trials", "trial_motion", "side_by_side_figures", "coordinates_with_coupled"]

PELVIS_COORDINATES = ("pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz")


@dataclass(frozen=True)
class OpenSimSOResult:
    """One OpenSim StaticOptimization run: ``force_path``/``activation_path`` (.sto), timings (s), window (s)."""

    force_path: Path
    activation_path: Path
    run_wall_s: float
    run_cpu_s: float
    load_wall_s: float
    start_s: float
    end_s: float
    opensim_version: str

    @property
    def motion_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def wall_per_motion_s(self) -> float:
        """Seconds of compute (wall) per second of motion."""
        return self.run_wall_s / self.motion_s

    @property
    def cpu_per_motion_s(self) -> float:
        """Seconds of this process's CPU time per second of motion (less sensitive to other load than wall)."""
        return self.run_cpu_s / self.motion_s


def _external_loads_copy(xml_path: Path, grf_path: Path, out_dir: Path) -> Path:
    text = Path(xml_path).read_text()
    text, n = re.subn(r"<datafile>.*?</datafile>", f"<datafile>{Path(grf_path).resolve()}</datafile>", text,
                      flags=re.S)
    if n != 1:
        raise ValueError(f"external_loads = {str(xml_path)!r}: expected one <datafile> element, found {n}")
    text = re.sub(r"<external_loads_model_kinematics_file>.*?</external_loads_model_kinematics_file>",
                  "<external_loads_model_kinematics_file />", text, flags=re.S)
    out = out_dir / Path(xml_path).name
    out.write_text(text)
    return out


def coordinates_with_coupled(model: Any, coordinates_path: str | Path, out_dir: str | Path) -> Path:
    """A copy of an OpenSim coordinates file in ``out_dir`` whose coupled coordinates (the dependent side of every
    ``CoordinateCouplerConstraint`` of ``model``, an ``opensim.Model``) are recomputed from their independent
    coordinate with the constraint's own function, in radians (added when missing).

    Why: OpenSim 4 converts only rotational coordinates from degrees, so a coupled one (Rajagopal's patella,
    ``knee_angle_<s>_beta``) is read as radians even in an ``inDegrees=yes`` file, while the lab's OpenSim 3.3 IK
    holds it in degrees: the patella then sits 57 times too far round, the quadriceps paths over it are wrong, and
    OpenSim 4.6's SO on PS ss1 puts 825 N in vastus lateralis and 833 N in semimembranosus in late swing (0.90-0.97
    s) where the lab's 3.3 run has 0 N and 169 N; with the patella recomputed, 21 N and 162 N (measured 2026-12-07).
    """
    osim = import_opensim()
    src = Path(coordinates_path)
    lines = src.read_text().splitlines()
    try:
        end = next(i for i, ln in enumerate(lines) if ln.strip().lower() == "endheader")
    except StopIteration:
        raise ValueError(f"coordinates_path = {str(src)!r}: no 'endheader' line") from None
    header = lines[:end + 1]
    labels = lines[end + 1].split()
    rows = [ln.split() for ln in lines[end + 2:] if ln.strip()]
    data = np.array(rows, dtype=float)
    in_degrees = any(ln.strip().lower().replace(" ", "") == "indegrees=yes" for ln in header)
    cs = model.getCoordinateSet()
    cons = model.getConstraintSet()
    for k in range(cons.getSize()):
        cc = osim.CoordinateCouplerConstraint.safeDownCast(cons.get(k))
        if cc is None:
            continue
        names = cc.getIndependentCoordinateNames()
        if names.getSize() != 1:
            raise ValueError(f"constraint {cc.getName()!r}: {names.getSize()} independent coordinates; one is read")
        ind, dep = names.get(0), cc.getDependentCoordinateName()
        if ind not in labels:
            continue
        x = data[:, labels.index(ind)].copy()
        if in_degrees and cs.get(ind).getMotionType() == 1:          # rotational
            x = np.radians(x)
        fn = cc.getFunction()
        y = np.array([fn.calcValue(osim.Vector(1, float(v))) for v in x])
        if dep in labels:
            data[:, labels.index(dep)] = y
        else:
            labels.append(dep)
            data = np.hstack([data, y[:, None]])
    header = [f"nColumns={len(labels)}" if ln.strip().startswith("nColumns=") else
              f"nRows={data.shape[0]}" if ln.strip().startswith("nRows=") else ln for ln in header]
    out = Path(out_dir) / f"{src.stem}_coupled{src.suffix}"
    out.write_text("\n".join(header + ["\t".join(labels)] + ["\t".join(f"{v:.10g}" for v in row) for row in data])
                   + "\n")
    return out


def _analyze_tool(osim, name: str, model_file: Path, ik_path, cutoff_hz: float | None, loads: Path, t0: float,
                  t1: float, out: Path):
    """An OpenSim AnalyzeTool on ``model_file`` driven by the coordinates ``ik_path`` (low-pass ``cutoff_hz``,
    None = off) and the external loads ``loads``, from ``t0`` to ``t1`` s, results into ``out``; analyses to add."""
    setup = osim.AnalyzeTool()
    setup.setName(name)
    setup.setModelFilename(str(model_file))
    setup.setCoordinatesFileName(str(Path(ik_path).resolve()))
    setup.setLowpassCutoffFrequency(-1.0 if cutoff_hz is None else float(cutoff_hz))
    setup.setExternalLoadsFileName(str(loads))
    setup.setInitialTime(t0)
    setup.setFinalTime(t1)
    setup.setResultsDir(str(out))
    return setup


def run_opensim_static_optimization(model_path: str | Path, ik_path: str | Path, grf_path: str | Path,
                                    external_loads_path: str | Path, out_dir: str | Path | None = None, *,
                                    start_s: float | None = None, end_s: float | None = None,
                                    reserve_optimal_force_nm: float = 1.0, residual_optimal_force: float = 100.0,
                                    cutoff_hz: float | None = 6.0, name: str = "opensim_so") -> OpenSimSOResult:
    """OpenSim's AnalyzeTool + StaticOptimization on one trial (see the module docstring); results in ``out_dir``
    (a new temporary folder when ``None``); ``cutoff_hz=None``: the coordinates as they are (already filtered)."""
    osim = import_opensim()

    for label, p in (("model_path", model_path), ("ik_path", ik_path), ("grf_path", grf_path),
                     ("external_loads_path", external_loads_path)):
        if not Path(p).exists():
            raise FileNotFoundError(f"{label} = {str(p)!r}: no such file")
    if not (reserve_optimal_force_nm > 0 and residual_optimal_force > 0):
        raise ValueError(f"reserve_optimal_force_nm = {reserve_optimal_force_nm!r}, residual_optimal_force = "
                         f"{residual_optimal_force!r}: must be > 0")
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="opensim_so_"))
    out.mkdir(parents=True, exist_ok=True)
    loads = _external_loads_copy(Path(external_loads_path), Path(grf_path), out)

    w0 = time.perf_counter()
    model = osim.Model(str(model_path))
    cs = model.getCoordinateSet()
    # coupled coordinates (the dependent side of a CoordinateCouplerConstraint, e.g. Rajagopal's knee_angle_l_beta,
    # the patella) follow their independent coordinate and get no reserve
    dependent = set()
    cons = model.getConstraintSet()
    for k in range(cons.getSize()):
        cc = osim.CoordinateCouplerConstraint.safeDownCast(cons.get(k))
        if cc is not None:
            dependent.add(cc.getDependentCoordinateName())
    for i in range(cs.getSize()):
        c = cs.get(i)
        if c.getDefaultLocked() or c.getDefaultIsPrescribed() or c.getName() in dependent:
            continue
        act = osim.CoordinateActuator(c.getName())
        act.setName(f"{c.getName()}_reserve")
        act.setOptimalForce(residual_optimal_force if c.getName() in PELVIS_COORDINATES else reserve_optimal_force_nm)
        act.setMinControl(-np.inf)
        act.setMaxControl(np.inf)
        model.addForce(act)
    model.finalizeConnections()
    ik_path = coordinates_with_coupled(model, ik_path, out)
    ik = osim.TimeSeriesTable(str(ik_path))
    times = ik.getIndependentColumn()
    t0 = float(times[0]) if start_s is None else float(start_s)
    t1 = float(times[-1]) if end_s is None else float(end_s)
    if not t1 > t0:
        raise ValueError(f"start_s = {t0!r}, end_s = {t1!r}: need end_s > start_s")

    model_file = out / f"{name}_model_with_reserves.osim"
    model.printToXML(str(model_file))
    setup = _analyze_tool(osim, name, model_file, ik_path, cutoff_hz, loads, t0, t1, out)
    so = osim.StaticOptimization()
    so.setStartTime(t0)
    so.setEndTime(t1)
    so.setUseModelForceSet(True)
    so.setActivationExponent(2.0)
    so.setUseMusclePhysiology(True)
    setup.getAnalysisSet().cloneAndAppend(so)
    setup_file = out / f"{name}_setup.xml"
    setup.printToXML(str(setup_file))
    w0 = time.perf_counter()
    tool = osim.AnalyzeTool(str(setup_file))      # parses the setup, loads the model: excluded from the run time
    w1 = time.perf_counter()
    c1 = time.process_time()
    ok = tool.run()
    w2 = time.perf_counter()
    c2 = time.process_time()
    if not ok:
        raise RuntimeError(f"OpenSim AnalyzeTool failed on {ik_path} (results in {out})")
    force = out / f"{name}_StaticOptimization_force.sto"
    activation = out / f"{name}_StaticOptimization_activation.sto"
    if not force.exists():
        raise RuntimeError(f"OpenSim wrote no {force.name} in {out}: {sorted(os.listdir(out))}")
    return OpenSimSOResult(force, activation, w2 - w1, c2 - c1, w1 - w0, t0, t1, osim.__version__)


def run_opensim_inverse_dynamics(model_path: str | Path, coordinates_path: str | Path,
                                 external_loads_path: str | Path, out_dir: str | Path, *,
                                 grf_path: str | Path | None = None, start_s: float | None = None,
                                 end_s: float | None = None, cutoff_hz: float | None = 6.0,
                                 name: str = "opensim_id") -> Path:
    """OpenSim's InverseDynamicsTool (muscles excluded: net joint moments) on one motion; returns its ``.sto``
    (``<coordinate>_moment`` N m, ``<coordinate>_force`` N).

    ``cutoff_hz``: OpenSim's low-pass of the coordinates (``None``: the coordinates as they are, e.g. already
    filtered); ``grf_path``: replaces the external loads' ``datafile`` (the lab's files name the author's path)."""
    osim = import_opensim()
    for label, p in (("model_path", model_path), ("coordinates_path", coordinates_path),
                     ("external_loads_path", external_loads_path)):
        if not Path(p).exists():
            raise FileNotFoundError(f"{label} = {str(p)!r}: no such file")
    if cutoff_hz is not None and not cutoff_hz > 0:
        raise ValueError(f"cutoff_hz = {cutoff_hz!r}: must be > 0 or None")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loads = Path(external_loads_path)
    if grf_path is not None:
        loads = _external_loads_copy(loads, Path(grf_path), out)
    model = osim.Model(str(model_path))
    model.initSystem()
    coordinates_path = coordinates_with_coupled(model, coordinates_path, out)
    times = osim.TimeSeriesTable(str(coordinates_path)).getIndependentColumn()
    t0 = float(times[0]) if start_s is None else float(start_s)
    t1 = float(times[-1]) if end_s is None else float(end_s)
    if not t1 > t0:
        raise ValueError(f"start_s = {t0!r}, end_s = {t1!r}: need end_s > start_s")
    tool = osim.InverseDynamicsTool()
    tool.setName(name)
    tool.setModelFileName(str(Path(model_path).resolve()))
    tool.setCoordinatesFileName(str(Path(coordinates_path).resolve()))
    tool.setExternalLoadsFileName(str(loads.resolve()))
    tool.setLowpassCutoffFrequency(-1.0 if cutoff_hz is None else float(cutoff_hz))
    tool.setStartTime(t0)
    tool.setEndTime(t1)
    tool.setResultsDir(str(out.resolve()))
    tool.setOutputGenForceFileName(f"{name}.sto")
    excluded = osim.ArrayStr()
    excluded.append("Muscles")
    tool.setExcludedForces(excluded)
    setup = out / f"{name}_setup.xml"
    tool.printToXML(str(setup))
    if not osim.InverseDynamicsTool(str(setup)).run():       # from the file, as OpenSim's GUI and CLI run it
        raise RuntimeError(f"OpenSim InverseDynamicsTool failed on {coordinates_path} (setup {setup})")
    result = out / f"{name}.sto"
    if not result.exists():
        raise RuntimeError(f"OpenSim wrote no {result.name} in {out}: {sorted(os.listdir(out))}")
    return result


def run_opensim_joint_reaction(so: OpenSimSOResult, ik_path: str | Path, grf_path: str | Path,
                               external_loads_path: str | Path, joint: str, *, on_body: str = "child",
                               in_frame: str = "child", cutoff_hz: float | None = 6.0, name: str = "opensim_jr") -> Path:
    """OpenSim's JointReaction analysis after :func:`run_opensim_static_optimization` (its model with reserves, its
    muscle and reserve forces as the ``forces_file``, the same window and filter); returns the ``.sto`` whose
    ``<joint>_on_<body>_in_<frame>_f{x,y,z}`` columns are the joint's reaction force (N) in that body's frame."""
    osim = import_opensim()
    out = so.force_path.parent
    name_so = so.force_path.name[: -len("_StaticOptimization_force.sto")]
    model_file = out / f"{name_so}_model_with_reserves.osim"
    if not model_file.exists():
        raise FileNotFoundError(f"so: {model_file} is missing (run_opensim_static_optimization writes it)")
    loads = _external_loads_copy(Path(external_loads_path), Path(grf_path), out)
    model = osim.Model(str(model_file))
    model.initSystem()
    ik_path = coordinates_with_coupled(model, ik_path, out)
    setup = _analyze_tool(osim, name, model_file, ik_path, cutoff_hz, loads, so.start_s, so.end_s, out)
    jr = osim.JointReaction()
    jr.setName("JointReaction")
    jr.setStartTime(so.start_s)
    jr.setEndTime(so.end_s)
    jr.setForcesFileName(str(so.force_path))
    for setter, value in ((jr.setJointNames, joint), (jr.setOnBody, on_body), (jr.setInFrame, in_frame)):
        arr = osim.ArrayStr()
        arr.append(value)
        setter(arr)
    setup.getAnalysisSet().cloneAndAppend(jr)
    setup_file = out / f"{name}_setup.xml"
    setup.printToXML(str(setup_file))
    if not osim.AnalyzeTool(str(setup_file)).run():
        raise RuntimeError(f"OpenSim JointReaction failed on {ik_path} (results in {out})")
    result = out / f"{name}_JointReaction_ReactionLoads.sto"
    if not result.exists():
        raise RuntimeError(f"OpenSim wrote no {result.name} in {out}: {sorted(os.listdir(out))}")
    return result


def time_ours_id_so(model, qpos: np.ndarray, qvel: np.ndarray, qacc: np.ndarray, externals, time_s: np.ndarray,
                    repeats: int = 3) -> dict[str, float]:
    """Our inverse dynamics + static optimisation over a trial, best of ``repeats`` wall and CPU time (s), and the same
    per second of motion.

    ``externals``: per-foot :class:`models.dynamics.inverse_dynamics.ExternalWrenchTrial` list."""
    from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
    from models.muscles.static_optimization import SOParams, StaticOptimization

    inv = InverseDynamics(model, InverseDynamicsParams())
    so = StaticOptimization(model, SOParams())
    best, best_cpu = np.inf, np.inf
    for _ in range(max(1, int(repeats))):
        t0, c0 = time.perf_counter(), time.process_time()
        jm = inv.run(qpos, qvel, qacc, list(externals), time_s=time_s)
        so.run(qpos, qvel, jm.coordinate_force)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    motion = float(time_s[-1] - time_s[0])
    return {"id_so_s": float(best), "id_so_cpu_s": float(best_cpu), "motion_s": motion,
            "per_motion_s": float(best / motion), "cpu_per_motion_s": float(best_cpu / motion),
            "frames": int(qpos.shape[0])}


# ----------------------------------------------------------------------------------- side by side

@dataclass(frozen=True)
class SideBySide:
    """One quantity frame by frame on the same frames: ``ours`` and ``theirs`` (N, k) on ``time_s`` (s) for
    ``names``, in ``unit``."""

    quantity: str
    unit: str
    names: tuple[str, ...]
    time_s: np.ndarray
    ours: np.ndarray
    theirs: np.ndarray

    def figures(self) -> dict[str, dict[str, float]]:
        """Per name: ``rmse``, ``peak_ours``, ``peak_theirs`` (|max|, in ``unit``), Pearson ``r``, ``frames``."""
        out: dict[str, dict[str, float]] = {}
        for j, n in enumerate(self.names):
            a, b = self.ours[:, j], self.theirs[:, j]
            ok = np.isfinite(a) & np.isfinite(b)
            if not ok.any():
                out[n] = {"rmse": float("nan"), "peak_ours": float("nan"), "peak_theirs": float("nan"),
                          "r": float("nan"), "frames": 0}
                continue
            a, b = a[ok], b[ok]
            r = float(np.corrcoef(a, b)[0, 1]) if a.size > 2 and np.std(a) > 0 and np.std(b) > 0 else float("nan")
            out[n] = {"rmse": float(np.sqrt(np.mean((a - b) ** 2))), "peak_ours": float(np.max(np.abs(a))),
                      "peak_theirs": float(np.max(np.abs(b))), "r": r, "frames": int(a.size)}
        return out

    def rmse(self, name: str) -> float:
        return self.figures()[name]["rmse"]


@dataclass(frozen=True)
class MotionOnModel:
    """An OpenSim motion and its loads on our MuJoCo model: the coordinates low-passed (``position``, rad / m, the
    motion's column ``names``), mapped to MuJoCo (``mapped``), and each ``ExternalForce`` of the loads file on a body
    (``externals``, z-up world, low-passed at the same cut-off, points recomputed on the plate plane)."""

    model: Any                       # mujoco.MjModel
    time_s: np.ndarray
    names: tuple[str, ...]
    position: np.ndarray
    mapped: Any                      # models.dynamics.inverse_dynamics.MappedKinematics
    externals: tuple[Any, ...]       # models.dynamics.inverse_dynamics.ExternalWrenchTrial per foot
    cutoff_hz: float


def external_forces(xml_path: str | Path) -> list[tuple[str, str, str, str]]:
    """``(body, force, point, torque identifier)`` of every ``ExternalForce`` applied to a body (not ``ground``) in
    an OpenSim ExternalLoads file, force and point expressed in ground (the only convention read)."""
    import xml.etree.ElementTree as ET

    out = []
    for ef in ET.parse(xml_path).getroot().iter("ExternalForce"):
        text = {k: (ef.findtext(k) or "").strip() for k in ("applied_to_body", "force_expressed_in_body",
                                                              "point_expressed_in_body", "force_identifier",
                                                              "point_identifier", "torque_identifier")}
        if text["applied_to_body"] in ("", "ground"):
            continue
        for k in ("force_expressed_in_body", "point_expressed_in_body"):
            if text[k] != "ground":
                raise ValueError(f"{xml_path}: ExternalForce {ef.get('name')!r} {k} = {text[k]!r}: only 'ground' is read")
        out.append((text["applied_to_body"], text["force_identifier"], text["point_identifier"],
                    text["torque_identifier"]))
    if not out:
        raise ValueError(f"{xml_path}: no ExternalForce applied to a body")
    return out


def motion_on_model(model, ik_path: str | Path, external_loads_path: str | Path, grf_path: str | Path, *,
                    cutoff_hz: float = 6.0, threshold_n: float = 20.0) -> MotionOnModel:
    """An OpenSim IK ``.mot`` and its plates on ``model`` (MyoLeg or a scaled copy): coordinates low-passed at
    ``cutoff_hz`` with their derivatives (:func:`models.filters.smooth_derivatives`, as ``exo analyze``), plate
    wrenches by :func:`models.dynamics.inverse_dynamics.external_wrench_from_opensim_grf`, one per foot."""
    from models.dynamics.opensim_grf import external_wrench_from_opensim_grf
    from models.dynamics.opensim_state import kinematics_from_opensim
    from models.filters import smooth_derivatives
    from models.io.storage import read_mot, read_sto

    ik = read_mot(ik_path) if str(ik_path).endswith(".mot") else read_sto(ik_path)
    ik = ik.to_radians() if ik.in_degrees else ik
    n = ik.time_s.size
    rate = (n - 1) / float(ik.time_s[-1] - ik.time_s[0])
    t = ik.time_s[0] + np.arange(n) / rate              # uniform grid (lab stamps are rounded)
    names = tuple(ik.columns)
    sm = smooth_derivatives(np.asarray(ik.data, dtype=float), rate, cutoff_hz=cutoff_hz, channel_names=names)
    mk = kinematics_from_opensim(model, names, sm.position, sm.velocity, sm.acceleration)
    table = read_mot(grf_path) if str(grf_path).endswith(".mot") else read_sto(grf_path)
    feet: dict[str, Any] = {}
    for body, f_id, p_id, t_id in external_forces(external_loads_path):
        if body in feet:
            raise ValueError(f"external_loads_path = {str(external_loads_path)!r}: two forces on {body!r}; "
                             "one per foot is read")
        feet[body] = external_wrench_from_opensim_grf(table, body, force_identifier=f_id, point_identifier=p_id,
                                                      torque_identifier=t_id, time_s=t, cutoff_hz=cutoff_hz,
                                                      threshold_n=threshold_n)
    return MotionOnModel(model, t, names, sm.position, mk, tuple(feet.values()), float(cutoff_hz))


def _opensim_inputs(motion: MotionOnModel, out: Path) -> tuple[Path, Path, Path]:
    """The motion's low-passed coordinates and its plate wrenches, written for OpenSim (no further filtering)."""
    from models.io.opensim_export import write_coordinates_mot, write_external_loads_xml, write_foot_loads_mot

    # the motion's own patella columns are dropped: the writer adds them from the knee in OpenSim's unit (radians;
    # OpenSim 3.3 files such as the lab's GC5 IK hold them in degrees)
    keep = [j for j, n in enumerate(motion.names) if not n.endswith("_beta")]
    coords = write_coordinates_mot(out / "coordinates.mot", motion.time_s, [motion.names[j] for j in keep],
                                   motion.position[:, keep])
    side = {"calcn_l": "left", "calcn_r": "right"}
    feet = {}
    for w in motion.externals:
        if w.body not in side:
            raise ValueError(f"external force on {w.body!r}: only calcn_l / calcn_r are written for OpenSim")
        feet[side[w.body]] = w
    grf = write_foot_loads_mot(out / "loads.mot", motion.time_s, {s: w.force_n for s, w in feet.items()},
                               {s: w.point_m for s, w in feet.items()}, {s: w.free_moment_nm for s, w in feet.items()})
    return coords, grf, write_external_loads_xml(out / "loads.xml", grf, list(feet))


def _window(time_s: np.ndarray, start_s: float | None, end_s: float | None) -> np.ndarray:
    t0 = float(time_s[0]) if start_s is None else float(start_s)
    t1 = float(time_s[-1]) if end_s is None else float(end_s)
    if not t1 > t0:
        raise ValueError(f"start_s = {t0!r}, end_s = {t1!r}: need end_s > start_s")
    return (time_s >= t0 - 1e-9) & (time_s <= t1 + 1e-9)


def _gravity(osim_model_path: str | Path) -> float:
    osim = import_opensim()
    return float(np.linalg.norm(osim.Model(str(osim_model_path)).getGravity().to_numpy()))


def inverse_dynamics_side_by_side(osim_model_path: str | Path, motion: MotionOnModel, coordinates: tuple[str, ...],
                                  out_dir: str | Path, *, start_s: float | None = None,
                                  end_s: float | None = None) -> SideBySide:
    """Net joint moments (N m) of ``coordinates``: our :class:`models.dynamics.inverse_dynamics.InverseDynamics` on
    ``motion`` against OpenSim's InverseDynamicsTool on the OpenSim model with the same low-passed coordinates and
    plate wrenches (written by :mod:`models.io.opensim_export`, OpenSim's filter off), the OpenSim model's gravity
    on both sides."""
    from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    coords, _, loads = _opensim_inputs(motion, out)
    w = _window(motion.time_s, start_s, end_s)
    t = motion.time_s[w]
    sto = run_opensim_inverse_dynamics(osim_model_path, coords, loads, out, cutoff_hz=None, start_s=float(t[0]),
                                       end_s=float(t[-1]), name="side_by_side_id")
    from models.io.storage import read_sto

    theirs_tab = read_sto(sto)
    inv = InverseDynamics(motion.model, InverseDynamicsParams(gravity_m_s2=_gravity(osim_model_path)))
    mk = motion.mapped
    jm = inv.run(mk.qpos, mk.qvel, mk.qacc, list(motion.externals), time_s=motion.time_s)
    ours = np.column_stack([jm.coordinate(c)[w] for c in coordinates])
    theirs = np.column_stack([np.interp(t, theirs_tab.time_s, theirs_tab.column(f"{c}_moment")) for c in coordinates])
    return SideBySide("net joint moment", "N*m", tuple(coordinates), t, ours, theirs)


MUSCLE_GROUPS = {"plantarflexors": ("soleus", "gasmed", "gaslat"), "quadriceps": ("vasmed", "vaslat", "vasint", "recfem"),
                 "hamstrings": ("semimem", "semiten", "bflh", "bfsh"), "gluteus_medius": ("glmed1", "glmed2", "glmed3")}


@dataclass(frozen=True)
class MusclesSideBySide:
    """Static optimisation and knee contact, ours against OpenSim's on the same frames: summed muscle-group forces
    (N), per-muscle activations (0..1) of the muscles both models have, and the knee's total contact force (N,
    ``|F|`` on the tibia: our :mod:`models.muscles.knee_contact` vs OpenSim's JointReaction on ``joint``)."""

    group_force_n: SideBySide
    activation: SideBySide
    knee_contact_n: SideBySide
    opensim: OpenSimSOResult
    opensim_jr_path: Path


def muscles_side_by_side(osim_model_path: str | Path, motion: MotionOnModel, side: str, body_mass_kg: float,
                         out_dir: str | Path, *, start_s: float, end_s: float, joint: str | None = None) -> MusclesSideBySide:
    """Our ID -> SO -> knee contact (:class:`models.muscles.knee_contact.KinematicsToContact`, default
    :class:`models.muscles.static_optimization.SOParams`) on ``motion`` against OpenSim 4.6's StaticOptimization
    (:func:`run_opensim_static_optimization`: reserves, activation exponent 2, the same low-passed coordinates and
    plate wrenches, OpenSim's filter off) and JointReaction (:func:`run_opensim_joint_reaction`, ``joint`` default
    ``walker_knee_<s>`` on the tibia in the tibia frame) over ``start_s..end_s``."""
    from models.io.storage import read_sto
    from models.muscles.knee_contact import KinematicsToContact

    if side not in ("left", "right"):
        raise ValueError(f"side = {side!r}: allowed 'left' or 'right'")
    s = side[0]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    coords, grf, loads = _opensim_inputs(motion, out)
    w = _window(motion.time_s, start_s, end_s)
    t = motion.time_s[w]
    so = run_opensim_static_optimization(osim_model_path, coords, grf, loads, out, start_s=float(t[0]),
                                         end_s=float(t[-1]), cutoff_hz=None, name="side_by_side_so")
    jr_path = run_opensim_joint_reaction(so, coords, grf, loads, joint or f"walker_knee_{s}", cutoff_hz=None,
                                         name="side_by_side_jr")
    mk = motion.mapped
    trial, contact = KinematicsToContact(motion.model, side, body_mass_kg=body_mass_kg).run(
        mk.qpos, mk.qvel, mk.qacc, list(motion.externals), motion.time_s)
    f_tab, a_tab, jr_tab = read_sto(so.force_path), read_sto(so.activation_path), read_sto(jr_path)

    def theirs(tab, col: str) -> np.ndarray:
        return np.interp(t, tab.time_s, tab.column(col))

    ours_m = {m: j for j, m in enumerate(trial.muscle_names)}
    groups = [g for g, ms in MUSCLE_GROUPS.items()
              if all(f"{m}_{s}" in ours_m and f"{m}_{s}" in f_tab.columns for m in ms)]
    g_ours = np.column_stack([sum(trial.muscle_force_n[w, ours_m[f"{m}_{s}"]] for m in MUSCLE_GROUPS[g]) for g in groups])
    g_theirs = np.column_stack([sum(theirs(f_tab, f"{m}_{s}") for m in MUSCLE_GROUPS[g]) for g in groups])
    common = tuple(m for m in trial.muscle_names if m.endswith(f"_{s}") and m in a_tab.columns)
    a_ours = np.column_stack([trial.activation[w, ours_m[m]] for m in common])
    a_theirs = np.column_stack([theirs(a_tab, m) for m in common])
    prefix = f"{joint or f'walker_knee_{s}'}_on_tibia_{s}_in_tibia_{s}_f"
    jr = np.column_stack([theirs(jr_tab, prefix + a) for a in "xyz"])
    return MusclesSideBySide(
        SideBySide("muscle-group force", "N", tuple(groups), t, g_ours, g_theirs),
        SideBySide("activation", "1", common, t, a_ours, a_theirs),
        SideBySide("knee total contact force", "N", ("knee_total",), t, contact.total_n[w][:, None],
                   np.linalg.norm(jr, axis=1)[:, None]),
        so, jr_path)


@dataclass(frozen=True)
class SideBySideTrial:
    """A trial with an OpenSim model, IK, plates and external loads: what the side by side runs on.  ``mass_kg``
    ``None``: the OpenSim model's own mass; ``window_s``: the stance window of the SO / JR comparison."""

    name: str
    osim_model: Path
    ik: Path
    external_loads: Path
    grf: Path
    side: str
    mass_kg: float | None
    height_m: float
    window_s: tuple[float, float]


def side_by_side_trials(data: Path) -> list[SideBySideTrial]:
    """PS ss1 (Grand Challenge 5: ``GC5.osim``, the lab's IK and loads; left knee; 75 kg, 1.80 m) and OpenSim's example
    walk on Rajagopal 2016 (``opensim_walk/rajagopal``, right leg; the model's own 85.07 kg).  The walk's subject
    height is not given: 1.80 m is stated, and it scales only the segments its marker set does not cover (1.6 m
    instead moves the knee moment RMSE by < 0.001 N m, measured 2026-12-07).  Windows: 0.10 s of stance."""
    ps, raj = Path(data) / "GC5_PS", Path(data) / "opensim_walk" / "rajagopal"
    return [SideBySideTrial("PS_ss1", ps / "model" / "GC5.osim", ps / "ik" / "PS_ngait_og_ss1_kinematics.mot",
                            ps / "grf" / "PS_ngait_og_ss1_External_Forces.xml",
                            ps / "grf" / "PS_ngait_og_ss1_kinetics.mot", "left", 75.0, 1.80, (0.30, 0.40)),
            SideBySideTrial("rajagopal_walk", raj / "subject_scaled_walk.osim", raj / "ik_output_walk.mot",
                            raj / "grf_walk.xml", raj / "grf_walk.mot", "right", None, 1.80, (0.55, 0.65))]


def trial_motion(trial: SideBySideTrial) -> tuple[MotionOnModel, float]:
    """The trial on MyoLeg scaled to its OpenSim model (:func:`models.trial_analysis.subject_model`), and the body
    mass used (kg)."""
    from models.trial_analysis import AnalyzeParams, subject_model

    mass = trial.mass_kg
    if mass is None:
        osim = import_opensim()
        m = osim.Model(str(trial.osim_model))
        mass = float(m.getTotalMass(m.initSystem()))
    model = subject_model(AnalyzeParams(mass, trial.height_m, trial.side, subject_calibration=False), Path(trial.osim_model), [])  # type: ignore[arg-type]
    return motion_on_model(model, trial.ik, trial.external_loads, trial.grf), mass


SIDE_BY_SIDE_COORDINATES = ("hip_flexion", "hip_adduction", "knee_angle", "ankle_angle")


def side_by_side_figures(trial: SideBySideTrial, out_dir: str | Path, *, muscles: bool = True) -> dict[str, Any]:
    """The figures of one trial for ``make validate``: net joint moment RMSE / r / peaks (whole trial), and with
    ``muscles`` the muscle-group forces, the median activation RMSE and the knee total contact force (window)."""
    motion, mass = trial_motion(trial)
    s = trial.side[0]
    out = Path(out_dir)
    idc = inverse_dynamics_side_by_side(trial.osim_model, motion, tuple(f"{c}_{s}" for c in SIDE_BY_SIDE_COORDINATES),
                                        out)
    fig: dict[str, Any] = {"trial": trial.name, "side": trial.side, "opensim_model": Path(trial.osim_model).name,
                           "net_joint_moment_nm": idc.figures(), "frames": int(idc.time_s.size)}
    if muscles:
        mus = muscles_side_by_side(trial.osim_model, motion, trial.side, mass, out, start_s=trial.window_s[0],
                                   end_s=trial.window_s[1])
        act = mus.activation.figures()
        fig.update({"window_s": list(trial.window_s), "muscle_group_force_n": mus.group_force_n.figures(),
                    "activation_rmse_median": float(np.median([v["rmse"] for v in act.values()])),
                    "activation_muscles": len(act), "knee_total_contact_force_n": mus.knee_contact_n.figures(),
                    "opensim_so_cpu_per_motion_s": mus.opensim.cpu_per_motion_s})
    return fig

"""Batch analysis: the offline chain over many trials, on local processes or a Ray cluster, into the store.

One code path: :func:`run_job` analyses one :class:`TrialJob` (markers -> IK -> measured GRF -> inverse
dynamics -> KAM/KEM; static optimisation -> knee contact force, co-contraction) and returns a plain dict;
:func:`run_batch` hands the jobs to a backend (``local``: a ``ProcessPoolExecutor`` of spawned processes;
``ray``: ``ray.remote`` tasks on the cluster at an address, or a private local Ray instance, which must run
in a private network namespace because Ray listens on every interface) and collects
the results the same way. A job that raises is reported with its error and retried up to ``retries``
times; a job that still fails is listed with every attempt's error (never dropped). Workers run
single-threaded BLAS (``OMP_NUM_THREADS=1`` etc.) on both backends so the arithmetic is the same.

Trials come from a manifest (YAML or JSON, see :func:`jobs_from_manifest`) or from the shared data folder
(:func:`jobs_from_shared`: PS ss1/3/8, DM og1/3/4/5/6 as in ``runtime.estimation.validate``).
"""
from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "NUMBA_NUM_THREADS": "1"}
#: Shared-data subjects: pseudonymous study codes, mass, height, sex, affected (instrumented) knee, per the
#: data README (Fregly et al. 2012 Grand Challenge).
SHARED_SUBJECTS = {"PS": ("GC5_PS", 75.0, 1.80, "male", "left"), "DM": ("GC6_DM", 70.0, 1.72, "male", "right")}
SHARED_TASK = "overground walking, self-selected speed"


@dataclass(frozen=True)
class TrialJob:
    """One trial to analyse. Paths absolute or relative to the current folder; date ``YYYY-MM-DD`` or None."""

    name: str
    subject: str
    mass_kg: float | None
    height_m: float | None
    side: str
    trc: str
    markerset: str
    grf: str | None = None
    external_loads: str | None = None
    session_date: str | None = None
    task: str = SHARED_TASK
    sex: str = "unknown"
    affected_side: str = "none"
    muscles: bool = True
    extra_files: tuple[tuple[str, str], ...] = ()     # (role, path) referenced with the session
    output_dir: str | None = None                     # write the analysis CSVs under <output_dir>/<name>/
    encrypt_key: str | None = None                    # ... encrypted with this Fernet key file
    backend: str = "cpu"                              # ID + SO: "cpu" or "warp" (MuJoCo Warp, models/*/warp_backend.py)


@dataclass
class JobOutcome:
    job: TrialJob
    result: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)   # one per failed attempt

    @property
    def ok(self) -> bool:
        return self.result is not None


@dataclass
class BatchReport:
    outcomes: list[JobOutcome]
    seconds: float
    backend: str
    workers: int

    @property
    def succeeded(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def trials_per_minute(self) -> float:
        return 60.0 * len(self.succeeded) / self.seconds if self.seconds > 0 else float("nan")


# ------------------------------------------------------------------------------------------ job lists

def jobs_from_shared(data: Path, *, muscles: bool = True) -> list[TrialJob]:
    """Every shared trial present under ``data`` (see ``models.io.shared_trials``); date unknown (the
    recordings carry none)."""
    from models.io.shared_trials import shared_trials

    jobs = []
    for t in shared_trials(Path(data)):
        if not Path(t.trc).exists():
            continue
        code, mass, height, sex, affected = SHARED_SUBJECTS[t.name.split("_")[0]]
        extra = []
        if t.ik_ref:
            extra.append(("lab_ik", t.ik_ref))
        if t.kcf_ref:
            extra.append(("in_vivo_kcf", t.kcf_ref))
        jobs.append(TrialJob(t.name, code, t.mass_kg, t.height_m, t.side, t.trc, t.markerset, t.grf, None, None,
                             SHARED_TASK, sex, affected, muscles, tuple(extra)))
    if not jobs:
        raise FileNotFoundError(f"--trials {data}: no shared trials there (expected GC5_PS/ and GC6_DM/)")
    return jobs


_MANIFEST_KEYS = {"name", "subject", "mass_kg", "height_m", "side", "trc", "markerset", "grf", "external_loads",
                  "date", "task", "sex", "affected_side", "muscles"}


def jobs_from_manifest(path: Path) -> list[TrialJob]:
    """A manifest: ``trials:`` list of mappings with keys ``name, subject, mass_kg, height_m, side, trc, markerset``
    and optional ``grf, external_loads, date, task, sex, affected_side, muscles``; an optional ``subjects:``
    mapping (code -> mass_kg, height_m, sex, affected_side) supplies defaults. Relative paths are relative to
    the manifest's folder."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"manifest {path}: not valid YAML/JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("trials"), list) or not doc["trials"]:
        raise ValueError(f"manifest {path}: needs a non-empty 'trials:' list")
    subjects = doc.get("subjects") or {}
    base = path.parent

    def p(v: str | None) -> str | None:
        return None if v is None else str(v if Path(v).is_absolute() else base / v)

    jobs = []
    for i, t in enumerate(doc["trials"]):
        if not isinstance(t, dict):
            raise ValueError(f"manifest {path}: trials[{i}] = {t!r}: expected a mapping")
        unknown = set(t) - _MANIFEST_KEYS
        if unknown:
            raise ValueError(f"manifest {path}: trials[{i}]: unknown key(s) {sorted(unknown)}; allowed: "
                             f"{', '.join(sorted(_MANIFEST_KEYS))}")
        for key in ("name", "subject", "side", "trc", "markerset"):
            if not t.get(key):
                raise ValueError(f"manifest {path}: trials[{i}].{key} is missing")
        s = subjects.get(t["subject"], {}) or {}
        jobs.append(TrialJob(str(t["name"]), str(t["subject"]), t.get("mass_kg", s.get("mass_kg")),
                             t.get("height_m", s.get("height_m")), str(t["side"]), p(t["trc"]), p(t["markerset"]),
                             p(t.get("grf")), p(t.get("external_loads")),
                             None if t.get("date") is None else str(t["date"]), str(t.get("task", SHARED_TASK)),
                             str(t.get("sex", s.get("sex", "unknown"))),
                             str(t.get("affected_side", s.get("affected_side", "none"))), bool(t.get("muscles", True))))
    return jobs


def jobs_from(spec: str | Path, *, muscles: bool = True) -> list[TrialJob]:
    """A manifest file (.yaml/.yml/.json), a folder holding ``manifest.yaml``, or the shared data folder."""
    p = Path(spec)
    if p.is_file():
        return jobs_from_manifest(p)
    if p.is_dir():
        if (p / "manifest.yaml").is_file():
            return jobs_from_manifest(p / "manifest.yaml")
        try:
            return jobs_from_shared(p, muscles=muscles)
        except FileNotFoundError:
            raise FileNotFoundError(f"--trials {spec}: a folder needs a manifest.yaml or the shared data layout "
                                    "(GC5_PS/, GC6_DM/)") from None
    raise FileNotFoundError(f"--trials {spec}: no such file or folder")


# ------------------------------------------------------------------------------------------ the job

def run_job(job: TrialJob) -> dict[str, Any]:
    """Analyse one trial; a plain, picklable dict: metrics, stances, notes, versions, model hashes, seconds."""
    t0 = time.perf_counter()
    if job.mass_kg is None:
        raise ValueError(f"trial {job.name}: subject {job.subject} has no mass_kg")
    if job.height_m is None:
        raise ValueError(f"trial {job.name}: subject {job.subject} has no height_m")
    from models.io.lab_files import read_trial

    for role, path in (("trc", job.trc), ("markerset", job.markerset), ("grf", job.grf),
                       ("external_loads", job.external_loads)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"trial {job.name}: {role} = {path!r}: no such file")
    read_trial(job.trc)                     # a corrupt marker file fails here, before the model is built
    if job.grf:
        read_trial(job.grf)

    from models.muscles.knee_contact import knee_contact_from_analysis
    from models.body.registry import load_model
    from models.trial_analysis import AnalyzeParams, analyze_trial, trial_kinematics
    from models.confidence import flags_dict, implausible_notes
    from runtime.clinic.metrics import analysis_metrics, envelope_flags, model_hash, software_version
    params = AnalyzeParams(float(job.mass_kg), float(job.height_m), job.side, muscles=job.muscles, backend=job.backend)  # type: ignore[arg-type]
    kin = trial_kinematics(job.trc, job.markerset, params)
    result = analyze_trial(job.trc, job.markerset, params, grf_path=job.grf, kin=kin, external_loads=job.external_loads)
    kcf = knee_contact_from_analysis(kin, result) if result.muscles is not None else None
    metrics, n_stances = analysis_metrics(result, kcf)
    flags = envelope_flags(result, kcf)
    outputs = _write_outputs(job, result, kcf) if job.output_dir else []
    return {
        "trial": job.name, "metrics": metrics, "stances": n_stances, "frames": int(result.time_s.size),
        "grf_source": result.grf_source, "notes": list(result.notes) + implausible_notes(flags),
        "envelopes": flags_dict(flags),
        "analysis": {"chain": "exo analyze", "model": params.model, "cutoff_hz": params.cutoff_hz,
                     "grf_threshold_n": params.grf_threshold_n, "muscles": params.muscles, "backend": result.backend,
                     "grf_source": result.grf_source, "stance_s": [list(s) for s in result.stance]},
        "software_version": software_version(),
        "model_hashes": {f"{params.model}_template": model_hash(load_model(params.model).model),
                         "subject_model": model_hash(kin.model)},
        "outputs": outputs, "seconds": time.perf_counter() - t0, "pid": os.getpid(),
    }


def _write_outputs(job: TrialJob, result: Any, kcf: Any) -> list[tuple[str, str, bool]]:
    """The analysis CSVs (``models.trial_analysis.write_csvs`` and ``knee_contact_force.csv``) under
    ``<output_dir>/<name>/``, encrypted (``*.csv.enc``) when the job has a key; (role, path, encrypted) each."""
    import numpy as np

    from models.trial_analysis import write_csvs
    from runtime.clinic.files import encrypt_file

    out = Path(job.output_dir) / job.name
    files = write_csvs(result, out)
    if kcf is not None:
        p = out / "knee_contact_force.csv"
        np.savetxt(p, np.column_stack([kcf.time_s, kcf.medial_n, kcf.lateral_n, kcf.total_n, kcf.medial_bw,
                                       kcf.lateral_bw, kcf.total_bw]), delimiter=",", fmt="%.6g", comments="",
                   header="time_s,medial_N,lateral_N,total_N,medial_BW,lateral_BW,total_BW")
        files.append(p)
    if job.encrypt_key:
        return [("analysis_csv", str(encrypt_file(f, job.encrypt_key)), True) for f in files]
    return [("analysis_csv", str(f), False) for f in files]


def run_job_safe(job: TrialJob) -> dict[str, Any]:
    """:func:`run_job`, with any exception returned as ``{"error": ..., "traceback": ...}`` (same on every backend)."""
    try:
        return run_job(job)
    except Exception as exc:  # reported and retried by run_batch, never dropped
        return {"trial": job.name, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=6)}


def _single_thread_init() -> None:
    os.environ.update(SINGLE_THREAD_ENV)


# ------------------------------------------------------------------------------------------ backends

class LocalBackend:
    """Spawned worker processes on this machine (``concurrent.futures.ProcessPoolExecutor``)."""

    name = "local"

    def __init__(self, workers: int) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                         initializer=_single_thread_init)

    def run(self, jobs: list[TrialJob]) -> list[dict[str, Any]]:
        from concurrent.futures.process import BrokenProcessPool

        futures = [self._pool.submit(run_job_safe, j) for j in jobs]
        out = []
        for j, f in zip(jobs, futures):
            try:
                out.append(f.result())
            except BrokenProcessPool as exc:   # a worker died (killed, out of memory): report, pool is rebuilt
                out.append({"trial": j.name, "error": f"worker process died: {exc}"})
        if any("worker process died" in str(r.get("error", "")) for r in out):
            self.close()
            self.__init__(self.workers)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayBackend:
    """``ray.remote`` tasks: on the cluster at ``address``, or a private local instance for ``"local"``."""

    name = "ray"

    def __init__(self, address: str, workers: int) -> None:
        if address == "local":
            from firmware_bridge.netns import in_private_netns, wrap_command

            if not in_private_netns():     # Ray's GCS, raylet and workers listen on every interface
                raise RuntimeError("a private local Ray instance listens on every network interface; run it in a "
                                   f"private network namespace ({' '.join(wrap_command(['<cmd>']))}; 'exo batch "
                                   "--ray local' does this itself) or give the address of a Ray cluster")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        self._ray = ray
        self._owns = not ray.is_initialized()
        env = {"env_vars": dict(SINGLE_THREAD_ENV)}
        if self._owns:
            if address == "local":
                ray.init(num_cpus=workers, include_dashboard=False, runtime_env=env, log_to_driver=False,
                         configure_logging=False, _node_ip_address="127.0.0.1")
            else:
                ray.init(address=address, runtime_env=env, log_to_driver=False, configure_logging=False)
        self.workers = int(ray.cluster_resources().get("CPU", workers))
        self._task = ray.remote(num_cpus=1, max_retries=0)(run_job_safe)

    def run(self, jobs: list[TrialJob]) -> list[dict[str, Any]]:
        refs = [self._task.remote(j) for j in jobs]
        out = []
        for j, r in zip(jobs, refs):
            try:
                out.append(self._ray.get(r))
            except Exception as exc:   # ray.exceptions.RayError: worker crash, node lost
                out.append({"trial": j.name, "error": f"ray task failed: {type(exc).__name__}: {exc}"})
        return out

    def close(self) -> None:
        if self._owns:
            self._ray.shutdown()


def make_backend(ray_address: str | None, workers: int):
    return LocalBackend(workers) if ray_address is None else RayBackend(ray_address, workers)


def run_batch(jobs: list[TrialJob], *, ray_address: str | None = None, workers: int | None = None, retries: int = 2,
              progress: Callable[[str], None] = print, backend=None) -> BatchReport:
    """Analyse ``jobs`` in parallel; each failing job is retried up to ``retries`` more times. Results keep the
    jobs' order. ``ray_address`` None: local processes; ``"local"``: a private Ray instance; else a Ray address."""
    if retries < 0:
        raise ValueError(f"--retries = {retries}: must be >= 0")
    workers = workers or max(1, min(len(jobs), os.cpu_count() or 1))
    owned = backend is None
    backend = backend or make_backend(ray_address, workers)
    outcomes = [JobOutcome(j) for j in jobs]
    t0 = time.perf_counter()
    try:
        pending = list(range(len(jobs)))
        for attempt in range(retries + 1):
            if not pending:
                break
            results = backend.run([jobs[i] for i in pending])
            still = []
            for i, r in zip(pending, results):
                if "error" in r:
                    outcomes[i].errors.append(r["error"])
                    progress(f"  {jobs[i].name}: attempt {attempt + 1} failed: {r['error']}")
                    still.append(i)
                else:
                    outcomes[i].result = r
                    progress(f"  {jobs[i].name}: ok in {r['seconds']:.1f} s")
            pending = still
    finally:
        if owned:
            backend.close()
    return BatchReport(outcomes, time.perf_counter() - t0, backend.name, backend.workers)


# ------------------------------------------------------------------------------------------ into the store

def session_record(job: TrialJob, result: dict[str, Any]):
    """The :class:`runtime.clinic.store.SessionRecord` of an analysed trial."""
    from runtime.clinic.store import FileRef, SessionRecord, SubjectInfo, parse_date

    refs = [FileRef("markers", job.trc), FileRef("markerset", job.markerset)]
    if job.grf:
        refs.append(FileRef("grf", job.grf))
    if job.external_loads:
        refs.append(FileRef("external_loads", job.external_loads))
    refs += [FileRef(role, path) for role, path in job.extra_files]
    refs += [FileRef(role, path, encrypted) for role, path, encrypted in result.get("outputs", [])]
    return SessionRecord(
        subject=SubjectInfo(job.subject, job.mass_kg, job.height_m, job.sex, job.affected_side),
        task=job.task, source="lab_trial", trial_name=job.name, side=job.side, source_file=job.trc,
        session_date=parse_date(job.session_date, f"trial {job.name} date"), metrics=dict(result["metrics"]),
        stances=result["stances"], raw_files=refs, analysis=result["analysis"],
        software_version=result["software_version"], model_hashes=result["model_hashes"], notes=result["notes"])


def store_results(store, report: BatchReport, progress: Callable[[str], None] = print) -> dict[str, list[str]]:
    """Record every successful trial; returns ``{"stored": [...], "rejected": ["name: reason", ...]}``."""
    from runtime.clinic.store import StoreError

    stored, rejected = [], []
    for o in report.succeeded:
        try:
            store.add_session(session_record(o.job, o.result))
            stored.append(o.job.name)
        except StoreError as exc:
            rejected.append(f"{o.job.name}: {exc}")
            progress(f"  {o.job.name}: not stored: {exc}")
    return {"stored": stored, "rejected": rejected}


def summary_table(report: BatchReport) -> list[dict[str, Any]]:
    """Per trial: name and metrics (successes) or the errors of every attempt (failures), in job order."""
    rows = []
    for o in report.outcomes:
        if o.ok:
            rows.append({"trial": o.job.name, "subject": o.job.subject, **o.result["metrics"],
                         "implausible": implausible_fractions(o.result)})
        else:
            rows.append({"trial": o.job.name, "subject": o.job.subject, "errors": o.errors})
    return rows


def implausible_fractions(result: dict[str, Any]) -> dict[str, float]:
    """``{envelope: fraction of frames outside}`` of a job's result, only the envelopes with frames outside."""
    return {k: float(v["fraction_outside"]) for k, v in result.get("envelopes", {}).items() if v["fraction_outside"] > 0}


def report_json(report: BatchReport) -> str:
    return json.dumps({"backend": report.backend, "workers": report.workers, "seconds": report.seconds,
                       "trials_per_minute": report.trials_per_minute, "trials": summary_table(report),
                       "jobs": [asdict(o.job) for o in report.outcomes],
                       "results": [o.result for o in report.succeeded]}, indent=2, default=str)

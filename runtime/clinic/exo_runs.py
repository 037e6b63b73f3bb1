"""Exoskeleton runs (``exo run`` / ``exo hil`` folders) as sessions: the assistance delivered, from the log.

Assistance delivered is read from ``/exo/torque/command`` (the torque the safety supervisor let through to
the drives, N*m at the joint, every torque cycle): the time integral of |commanded torque| summed over the
joints (N*m*s, trapezoidal over the log times) and the peak |commanded torque| (N*m). Knee-loading metrics of a
run stay NULL here: the run's own estimation streams are not summarised into the store yet.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def assistance_metrics(run_dir: str | Path) -> tuple[dict[str, float | None], Path, dict[str, Any]]:
    """(metrics, MCAP path, facts) of a run folder; ``ValueError`` when its log holds no torque commands."""
    from runtime.report.summary import load_series

    s = load_series(run_dir)
    c = s["command"]
    if not c["commanded"]:
        raise ValueError(f"exo run {run_dir}: the log has no /exo/torque/command messages")
    t = np.asarray(c["log_ns"], dtype=np.int64)
    order = np.argsort(t, kind="stable")
    t_s = (t[order] - t[order][0]) * 1e-9
    tau = np.abs(np.vstack(c["commanded"])[order])
    metrics = {"assistance_impulse_nm_s": float(np.trapezoid(tau.sum(axis=1), t_s)),
               "assistance_peak_nm": float(tau.max())}
    facts = {"joints": list(s["joint_names"]), "commands": int(t.size), "duration_s": float(t_s[-1]),
             "log_complete": bool(s["complete"]),
             "active_fraction": float(np.mean([st == "ACTIVE" for st in c["state"]]))}
    return metrics, Path(s["mcap"]), facts


def exo_run_record(run_dir: str | Path, subject, *, side: str, task: str, session_date=None,
                   device_config: str | Path | None = None):
    """The :class:`runtime.clinic.store.SessionRecord` of an exoskeleton run (source ``exo_run``)."""
    import json

    from runtime.clinic.files import FileRef
    from runtime.clinic.metrics import software_version
    from runtime.clinic.schema import METRICS
    from runtime.clinic.store import SessionRecord

    run_dir = Path(run_dir)
    metrics, mcap, facts = assistance_metrics(run_dir)
    settings: dict[str, Any] = {}
    summary = run_dir / "summary.json"
    refs = [FileRef("telemetry", str(mcap))]
    if summary.is_file():
        doc = json.loads(summary.read_text())
        settings.update({k: doc[k] for k in ("pipeline", "exit_reason") if k in doc})
        refs.append(FileRef("run_summary", str(summary)))
    if device_config is not None:
        from runtime.core.config import load_device

        settings["device"] = load_device(device_config).model_dump()
        refs.append(FileRef("device_config", str(device_config)))
    return SessionRecord(subject=subject, task=task, source="exo_run", trial_name=run_dir.name, side=side,
                         source_file=str(mcap), session_date=session_date,
                         metrics={k: metrics.get(k) for k in METRICS}, stances=None, raw_files=refs,
                         analysis={"assistance_from": "/exo/torque/command", **facts}, device_settings=settings or None,
                         software_version=software_version(), notes=[])

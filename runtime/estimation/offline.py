"""Offline mode: the live pipeline's estimation chain and assistance controller over a whole recording, as fast as
possible, with a progress bar.

The frames are the ones the live loop would see (a marker recording held to the loop rate, or the vision front
end's landmarks held to it), the objects are the same classes with the same parameters, and the controller's
clock is the recording's own time instead of the wall clock; so for the same input the numbers equal the live
run's (``tests/test_estimation.py`` proves it for the chain through the MCAP log of a live run).
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from runtime.estimation.chain import KinematicsToLoads, MarkerRecording, run_offline

if TYPE_CHECKING:  # annotations only: neither imports anything of this module
    from runtime.pipeline.stages import ControllerAssistanceStage
    from runtime.vision.front_end import LandmarkTrack


def landmark_recording(track: LandmarkTrack, marker_names: tuple[str, ...], rate_hz: float,
                       min_visibility: float = 0.5) -> MarkerRecording:
    """A :class:`runtime.vision.front_end.LandmarkTrack` as the markers the loop sees at ``rate_hz``: each tick holds
    the newest camera frame at or before it; landmarks below ``min_visibility`` and invalid frames are NaN (the rules
    of :class:`runtime.vision.process.LandmarkCapture`); the frame's reprojection error (px) is held with it."""
    from runtime.vision.pose_types import BLAZEPOSE_LANDMARKS

    idx = [BLAZEPOSE_LANDMARKS.index(n) for n in marker_names]
    t = track.t_s[0] + np.arange(int(np.floor((track.t_s[-1] - track.t_s[0]) * rate_hz)) + 1) / rate_hz
    k = np.clip(np.searchsorted(track.t_s, t + 1e-9, side="right") - 1, 0, track.t_s.size - 1)
    m = np.array(track.world_m[k][:, idx], dtype=float)
    m[np.asarray(track.visibility)[k][:, idx] < min_visibility] = np.nan
    m[~np.asarray(track.valid, bool)[k]] = np.nan
    rep = None if track.reprojection_px is None else np.asarray(track.reprojection_px, dtype=float)[k]
    return MarkerRecording(Path(str(track.source)).stem, t, m, rate_hz, rep)


def progress_bar(label: str) -> Callable[[int, int], None]:
    """A one-line text progress bar on stderr (``progress(i, n)``)."""
    def show(i: int, n: int) -> None:
        w = 40
        k = int(w * i / max(n, 1))
        sys.stderr.write(f"\r{label} [{'#' * k}{'.' * (w - k)}] {i}/{n}")
        if i >= n:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return show


def run_pipeline_offline(estimator: KinematicsToLoads, recording: MarkerRecording,
                         make_assistance: Callable[[Callable[[], int]], ControllerAssistanceStage],
                         n_joints: int, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Estimation chain over ``recording`` (``run_offline``), then the assistance stage over its estimates with the
    recording's time as the clock. Returns arrays and the throughput."""
    from runtime.pipeline.stages import PipelineFrame

    t0 = time.perf_counter()
    est = run_offline(estimator, recording, progress)
    clock = {"ns": 0}
    stage = make_assistance(lambda: clock["ns"])
    frame = PipelineFrame(assistance_nm=[0.0] * n_joints)
    torque = np.zeros((recording.time_s.size, n_joints))
    for i, t in enumerate(recording.time_s):
        clock["ns"] = int(round(t * 1e9))
        frame.estimate = est.frame(i)
        frame.stale = False
        stage.step(frame)
        torque[i] = frame.assistance_nm
    seconds = time.perf_counter() - t0
    n = recording.time_s.size
    return {"result": est, "torque_nm": torque, "frames": n, "seconds": seconds, "fps": n / seconds,
            "chain_seconds": est.seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


#: Feet of ``grf_n``'s second axis (``models.grf.contact.FEET`` order) as named in offline.csv.
FOOT_NAMES = ("right", "left")


def write_offline(out_dir: Path, run: dict[str, Any], joint_names: list[str], meta: dict[str, Any],
                  mass_kg: float | None = None) -> list[Path]:
    """``offline.csv`` (per frame: time, reported angles in deg, each foot's GRF ``grf_<foot>_<x|y|z>_n`` (N, world z
    up), KAM/KEM, KCF, torque per joint, valid, ``confidence`` and each part ``confidence_<part>``) and
    ``offline.json`` (frames, seconds, frames per second, peak memory, the confidence summary, with ``mass_kg``
    each estimate against its envelope (``models.confidence``), ``meta``)."""
    from models.confidence import summarize

    out_dir.mkdir(parents=True, exist_ok=True)
    r = run["result"]
    grf_cols = [f"grf_{foot}_{ax}_n" for foot in FOOT_NAMES for ax in "xyz"]
    cols = (["time_s"] + [f"{c}_deg" for c in r.coordinate_names] + grf_cols + ["kam_pct_bw_ht", "kem_pct_bw_ht",
            "kcf_medial_n", "kcf_lateral_n", "kcf_total_n"] + [f"torque_{j}_nm" for j in joint_names] + ["valid"]
            + ["confidence"] + [f"confidence_{p}" for p in r.confidence_names])
    data = np.column_stack([r.time_s, np.degrees(r.coordinates_rad), r.grf_n.reshape(r.time_s.size, 6),
                            r.kam_pct_bw_ht, r.kem_pct_bw_ht, r.kcf_n, run["torque_nm"], r.valid.astype(float),
                            r.confidence, r.confidence_parts])
    csv = out_dir / "offline.csv"
    np.savetxt(csv, data, delimiter=",", header=",".join(cols), comments="", fmt="%.6g")
    info: dict[str, Any] = {"frames": run["frames"], "seconds": run["seconds"], "frames_per_s": run["fps"],
                            "chain_seconds": run["chain_seconds"], "peak_rss_mb": run["peak_rss_mb"],
                            "confidence": summarize(r.confidence, r.confidence_parts, r.confidence_names).as_dict()}
    if mass_kg is not None:
        info["envelopes"] = envelope_flags(r, mass_kg)
    js = out_dir / "offline.json"
    js.write_text(json.dumps({**info, **meta}, indent=2, default=str))
    return [csv, js]


def envelope_flags(result: Any, mass_kg: float) -> dict[str, dict[str, Any]]:
    """Each estimate of a :class:`runtime.estimation.chain.OfflineResult` against its physiological envelope: the
    fraction of frames outside (``models.confidence.estimate_flags``), by envelope name."""
    from models.confidence import estimate_flags, flags_dict

    rate = (result.time_s.size - 1) / float(result.time_s[-1] - result.time_s[0]) if result.time_s.size > 1 else None
    act = result.activation if result.activation.size else None
    kcf = result.kcf_n if np.isfinite(result.kcf_n).any() else None
    return flags_dict(estimate_flags(mass_kg, foot_vgrf_n=result.grf_n[:, :, 2], kam_pct_bw_ht=result.kam_pct_bw_ht,
                                     kem_pct_bw_ht=result.kem_pct_bw_ht, kcf_n=kcf, activation=act, rate_hz=rate))

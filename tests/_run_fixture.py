"""TEST FIXTURE: a small synthetic run folder carrying every topic the report reads.

Not a simulation and not used by the runtime: it writes, with the project's own
:class:`runtime.telemetry.log.TelemetryLog`, a ``<dir>/telemetry`` rosbag2 folder and a
``<dir>/summary.json`` shaped like what ``exo run`` writes, plus the 60 Hz estimation
topics of the pipeline contract (joint angles, GRF/CoP per foot, KAM/KEM, activations,
synergies, KCF, per-stage latency). Every value is generated from a known formula so a
test can compare the report's figures with the truth returned in :class:`RunTruth`.

Timing model: frame k is captured at ``k / 60`` s; the estimation stages take known
durations (seeded RNG); the command becomes available to the 500 Hz torque loop at
capture + sum(stages); each torque cycle logs the age of the command it writes.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runtime.telemetry import schema
from runtime.telemetry.log import TelemetryLog

EST_RATE_HZ = 60.0
TQ_RATE_HZ = 500.0
STRIDE_S = 1.1
#: Estimation stages and their (mean, spread) durations in seconds.
STAGES: dict[str, tuple[float, float]] = {
    "capture": (0.0004, 0.0001), "anonymise": (0.0010, 0.0002), "pose": (0.0090, 0.0015),
    "kinematics": (0.0008, 0.0002), "grf": (0.0003, 0.0001), "inverse_dynamics": (0.0006, 0.0001),
    "activations": (0.0009, 0.0002), "kcf": (0.0002, 0.00005), "assistance": (0.0001, 0.00003),
}
JOINTS = ["hip_flexion_r", "knee_angle_r", "ankle_angle_r", "hip_flexion_l", "knee_angle_l", "ankle_angle_l"]
MUSCLES = ["vasmed_r", "vaslat_r", "recfem_r", "bflh_r", "gasmed_r", "gaslat_r", "soleus_r", "tibant_r"]
N_SYN = 3
MASS_KG = 70.0
T0_WALL_NS = 1_700_000_000_000_000_000
T0_MONO_NS = 5_000_000_000_000


@dataclass
class RunTruth:
    """What the fixture wrote, for comparison with the report."""

    run_dir: Path
    seconds: float
    stage_durations_s: dict[str, np.ndarray]
    pipeline_latency_s: np.ndarray  # capture -> command available, per frame (s)
    kam_peak_pct: float             # peak KAM of the right knee (%BW*ht)
    kcf_medial_peak_n: float
    fault_t_s: float                # time of the latched fault from the first estimation cycle (s)
    fault_kind: str
    commanded_peak_nm: float
    t_est_s: np.ndarray             # estimation frame times from the first frame (s)
    kam_r: np.ndarray               # right-knee KAM per frame (%BW*ht)
    topics: list[str] = field(default_factory=list)


def _kam_waveform(phase: np.ndarray, peak: float) -> np.ndarray:
    """Double-humped stance KAM (%BW*ht) over phase 0..1 (stance 0..0.6, mid-stance trough, swing zero)."""
    s = np.clip(phase / 0.6, 0.0, 1.0)
    stance = phase < 0.6
    w = (0.9 * np.exp(-((s - 0.25) / 0.12) ** 2) + 0.75 * np.exp(-((s - 0.75) / 0.12) ** 2)
         + 0.45 * np.sin(np.pi * s))
    return np.where(stance, peak * w / 1.23, 0.0)


def write_run(run_dir: Path, seconds: float = 3.0, seed: int = 0, kam_peak_pct: float = 2.8,
              with_estimation_topics: bool = True) -> RunTruth:
    """Write the synthetic run into ``run_dir`` (created) and return the truth."""
    rng = np.random.default_rng(seed)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    n_est = int(round(seconds * EST_RATE_HZ))
    n_tq = int(round(seconds * TQ_RATE_HZ))
    t_est = np.arange(n_est) / EST_RATE_HZ
    t_tq = np.arange(n_tq) / TQ_RATE_HZ
    durations = {k: np.clip(rng.normal(m, s, n_est), m * 0.2, None) for k, (m, s) in STAGES.items()}
    latency = np.sum(np.vstack(list(durations.values())), axis=0)
    ready = t_est + latency
    phase = (t_est / STRIDE_S) % 1.0
    phase_l = (t_est / STRIDE_S + 0.5) % 1.0
    kam_r = _kam_waveform(phase, kam_peak_pct)
    kam_l = _kam_waveform(phase_l, kam_peak_pct * 0.8)
    kem_r = 1.5 * np.sin(2 * np.pi * phase) * (phase < 0.6)
    kem_l = 1.5 * np.sin(2 * np.pi * phase_l) * (phase_l < 0.6)
    kcf_med = 1800.0 * kam_r / kam_peak_pct + 400.0
    kcf_lat = 900.0 + 200.0 * np.cos(2 * np.pi * phase)
    assist = 8.0 * np.sin(2 * np.pi * phase) * (phase < 0.6)
    fault_idx = int(0.75 * n_tq)
    fault_t = t_tq[fault_idx]

    log = TelemetryLog(run_dir / "telemetry", chunk_period_s=0.5, queue_capacity=200_000)

    def header(t_ns: int, frame: str):
        return schema.make("std_msgs/msg/Header", stamp=t_ns, frame_id=frame)

    def js(r):
        t, names, pos, eff = r
        return schema.make("sensor_msgs/msg/JointState", header=header(t, "model"), name=names, position=pos,
                           velocity=[], effort=eff)

    def wrench(r):
        t, f = r
        v3 = "geometry_msgs/msg/Vector3"
        return schema.make("geometry_msgs/msg/WrenchStamped", header=header(t, "world"),
                           wrench=schema.make("geometry_msgs/msg/Wrench", force=schema.make(v3, x=f[0], y=f[1], z=f[2]),
                                              torque=schema.make(v3, x=0.0, y=0.0, z=0.0)))

    def point(r):
        t, p = r
        return schema.make("geometry_msgs/msg/PointStamped", header=header(t, "world"),
                           point=schema.make("geometry_msgs/msg/Point", x=p[0], y=p[1], z=p[2]))

    def timing(r):
        loop, cyc, sched, start, end, missed, names, durs = r
        return schema.make("exo_runtime/msg/CycleTiming", stamp=start - T0_MONO_NS + T0_WALL_NS, loop_name=loop,
                           cycle=cyc, scheduled_ns=sched, start_ns=start, end_ns=end, lateness_s=(start - sched) * 1e-9,
                           duration_s=(end - start) * 1e-9, missed_total=missed, stage_names=names,
                           stage_durations_s=durs)

    def command(r):
        t, req, com, age, gain, state = r
        return schema.make("exo_runtime/msg/TorqueCommand", stamp=t, joint_names=["knee_r"], requested_torque_nm=[req],
                           commanded_torque_nm=[com], command_age_s=age, fade_gain=gain, state=state, stale=False)

    def fault(r):
        t_mono, kind = r
        return schema.make("exo_runtime/msg/Fault", stamp=t_mono - T0_MONO_NS + T0_WALL_NS, source="safety", kind=kind,
                           value=25.0, t_ns=t_mono, latched=True, detail="ACTIVE: synthetic fixture fault")

    topics = {"/exo/estimation/timing": ("exo_runtime/msg/CycleTiming", timing),
              "/exo/torque/timing": ("exo_runtime/msg/CycleTiming", timing),
              "/exo/estimation/stage_latency": ("exo_runtime/msg/CycleTiming", timing),
              "/exo/estimation/assistance": ("sensor_msgs/msg/JointState", js),
              "/exo/torque/command": ("exo_runtime/msg/TorqueCommand", command),
              "/exo/joint_states": ("sensor_msgs/msg/JointState", js),
              "/exo/faults": ("exo_runtime/msg/Fault", fault)}
    if with_estimation_topics:
        topics.update({"/exo/estimation/joint_angles": ("sensor_msgs/msg/JointState", js),
                       "/exo/estimation/knee_moments": ("sensor_msgs/msg/JointState", js),
                       "/exo/estimation/activations": ("sensor_msgs/msg/JointState", js),
                       "/exo/estimation/synergies": ("sensor_msgs/msg/JointState", js),
                       "/exo/estimation/kcf": ("sensor_msgs/msg/JointState", js)})
        for s in ("r", "l"):
            topics[f"/exo/estimation/grf/{s}"] = ("geometry_msgs/msg/WrenchStamped", wrench)
            topics[f"/exo/estimation/cop/{s}"] = ("geometry_msgs/msg/PointStamped", point)
    for name, (mt, fn) in topics.items():
        log.register(name, mt, fn)

    stage_names = list(STAGES)
    est_period_ns = int(round(1e9 / EST_RATE_HZ))
    with log.open():
        for k in range(n_est):
            sched = T0_MONO_NS + k * est_period_ns
            start = sched + int(rng.integers(20_000, 80_000))
            end = start + int(latency[k] * 1e9)
            wall = start - T0_MONO_NS + T0_WALL_NS
            durs = [float(durations[n][k]) for n in stage_names]
            log.write("/exo/estimation/timing", wall, ("estimation", k, sched, start, end, 0, stage_names, durs))
            log.write("/exo/estimation/stage_latency", wall, ("estimation", k, sched, start, end, 0, stage_names, durs))
            log.write("/exo/estimation/assistance", wall, (wall, ["knee_r"], [], [float(assist[k])]))
            if not with_estimation_topics:
                continue
            ph = 2 * np.pi * phase[k]
            angles = [0.4 * math.sin(ph), 0.6 * max(0.0, math.sin(ph - 2.5)) + 0.1, 0.2 * math.sin(ph + 1.0),
                      0.4 * math.sin(ph + math.pi), 0.6 * max(0.0, math.sin(ph + math.pi - 2.5)) + 0.1,
                      0.2 * math.sin(ph + math.pi + 1.0)]
            log.write("/exo/estimation/joint_angles", wall, (wall, JOINTS, angles, []))
            log.write("/exo/estimation/knee_moments", wall,
                      (wall, ["kam_r", "kem_r", "kam_l", "kem_l"], [], [kam_r[k], kem_r[k], kam_l[k], kem_l[k]]))
            act = [0.5 + 0.45 * math.sin(ph + i) for i in range(len(MUSCLES))]
            log.write("/exo/estimation/activations", wall, (wall, MUSCLES, [], act))
            log.write("/exo/estimation/synergies", wall,
                      (wall, [f"syn_{i + 1}" for i in range(N_SYN)], [], [1 + math.cos(ph + 2 * i) for i in range(N_SYN)]))
            log.write("/exo/estimation/kcf", wall, (wall, ["medial", "lateral", "total"], [],
                                                    [kcf_med[k], kcf_lat[k], kcf_med[k] + kcf_lat[k]]))
            for side, ph_s in (("r", phase[k]), ("l", phase_l[k])):
                stance = ph_s < 0.6
                fz = MASS_KG * 9.81 * (1.1 * math.sin(math.pi * ph_s / 0.6)) if stance else 0.0
                log.write(f"/exo/estimation/grf/{side}", wall, (wall, (0.1 * fz, 0.02 * fz, fz)))
                if stance:
                    log.write(f"/exo/estimation/cop/{side}", wall,
                              (wall, (0.25 * ph_s / 0.6 - 0.05, -0.1 if side == "r" else 0.1, 0.0)))
        tq_period_ns = int(round(1e9 / TQ_RATE_HZ))
        k_latest = -1
        peak = 0.0
        prev_com = 0.0
        for i in range(n_tq):
            sched = T0_MONO_NS + i * tq_period_ns
            start = sched + 30_000
            t_write = t_tq[i] + 60e-6
            while k_latest + 1 < n_est and ready[k_latest + 1] <= t_write:
                k_latest += 1
            wall = start - T0_MONO_NS + T0_WALL_NS
            log.write("/exo/torque/timing", wall, ("torque", i, sched, start, start + 90_000, 0,
                                                  ["read", "safety", "write"], [3e-5, 5e-6, 3e-5]))
            age = t_write - t_est[k_latest] if k_latest >= 0 else -1.0
            req = float(assist[k_latest]) if k_latest >= 0 else 0.0
            if i < fault_idx:
                gain, state = 1.0, "ACTIVE"
            else:
                gain = max(0.0, 1.0 - (i - fault_idx) / (0.1 * TQ_RATE_HZ))
                state = "FADING" if gain > 0 else "SAFE"
            com = req * gain
            peak = max(peak, abs(com))
            log.write("/exo/torque/command", wall, (wall, req, com, age, gain, state))
            # the drive's reply read in cycle i answers the command written in cycle i - 1 (half a torque quantum off)
            log.write("/exo/joint_states", wall, (wall, ["knee_r"], [0.3 * math.sin(2 * math.pi * t_tq[i] / STRIDE_S)],
                                                  [prev_com + 0.0044]))
            prev_com = com
            if i == fault_idx:
                log.write("/exo/faults", wall, (start, "overtorque"))
    if log.dropped or log.conversion_errors:
        raise RuntimeError(f"fixture log: {log.dropped} dropped, {log.conversion_errors} conversion errors")
    summary = {
        "out_dir": str(run_dir), "pipeline": "TEST FIXTURE: synthetic run (tests/_run_fixture.py)",
        "exit_reason": "completed",
        "estimation": {"name": "estimation", "rate_hz": EST_RATE_HZ, "cycles": n_est, "missed": 0},
        "torque": {"name": "torque", "rate_hz": TQ_RATE_HZ, "cycles": n_tq, "missed": 0},
        "realtime": {"estimation": {"sched_fifo": False, "priority": 0, "cpus": [0], "memory_locked": False, "notes": []}},
        "telemetry": log.stats(), "faults": [], "errors": [], "plant": None,
        "peak_rss_mb": {"estimation_process": 412.5, "largest_child_process": 96.2},
        "versions": {"python": "3.11", "fixture": "1"},
        "providers": ["CPUExecutionProvider"],
        "fallbacks": ["pose: TensorRT not available, CPU provider used (fixture text)"],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return RunTruth(run_dir=run_dir, seconds=seconds, stage_durations_s=durations, pipeline_latency_s=latency,
                    kam_peak_pct=float(np.max(kam_r)), kcf_medial_peak_n=float(np.max(kcf_med)),
                    fault_t_s=float(fault_t), fault_kind="overtorque", commanded_peak_nm=peak,
                    t_est_s=t_est, kam_r=kam_r,
                    topics=sorted(topics))

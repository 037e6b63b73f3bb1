"""Turn a run's telemetry log into figures an engineer can check: latency, jitter, misses, faults.

``summarize_log(path)`` reads the MCAP log (complete, or truncated by a crash:
then it is read sequentially up to the last complete chunk and the summary says
``recovered: true``) and returns a JSON-friendly dict:

* per loop (``estimation``, ``torque``): cycles, missed deadlines, expected cycles from
  the logged time span, wake-up lateness (|actual - scheduled| start) p50/p99/max,
  cycle duration p50/p99/max, per-stage durations;
* command age from capture to bus write, p50/p99/max;
* torque: peak requested and commanded per joint, state time line;
* faults and safety events, in time order;
* ``performance``: per-stage latency of the 60 Hz pipeline against the 16.7 ms frame budget (from
  ``/exo/estimation/stage_latency`` when recorded, else the estimation loop's stage timing), the budget split,
  and end-to-end latency from frame capture to CAN write (recorded, or derived from the command ages: see
  :func:`first_write_ages`), frames over budget and missed deadlines.

``load_series`` also collects every JointState/WrenchStamped/PointStamped topic under ``/exo/estimation/`` and
``/analysis/`` (``series["streams"]``) for the HTML report (:mod:`runtime.report.html`).
``write_plots`` saves PNGs beside the log; ``format_text`` prints the table.
Times in the output are seconds unless the key says otherwise.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from runtime.telemetry.read import is_complete, iter_messages, resolve_log
from runtime.telemetry.schema import time_to_ns

_SPECIAL_PREFIX = b"\xff" * 7


def _pct(values: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return {"count": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    p50, p99 = np.percentile(a, [50, 99])
    return {"count": int(a.size), "p50": float(p50), "p99": float(p99), "max": float(a.max())}


#: Topic of the per-stage latency record of the 60 Hz pipeline: ``exo_runtime/msg/CycleTiming`` (stage_names,
#: stage_durations_s) or ``sensor_msgs/msg/JointState`` (name = stage, effort = seconds). A stage named
#: :data:`E2E_STAGE` is the measured capture -> CAN-write latency of that frame (s).
STAGE_LATENCY_TOPIC = "/exo/estimation/stage_latency"
E2E_STAGE = "capture_to_can_write"
#: Topic prefixes whose JointState/Wrench/Point messages are collected as plain series (live and offline).
STREAM_PREFIXES = ("/exo/estimation/", "/analysis/")
_STREAM_TYPES = ("sensor_msgs/msg/JointState", "geometry_msgs/msg/WrenchStamped", "geometry_msgs/msg/PointStamped")
#: Frame budget of the 60 Hz estimation loop (s).
FRAME_BUDGET_S = 1.0 / 60.0


def _collect_stream(streams: dict[str, dict[str, Any]], topic: str, msgtype: str, log_ns: int, msg: Any) -> None:
    st = streams.setdefault(topic, {"type": msgtype, "log_ns": [], "names": [], "position": [], "effort": [], "xyz": [],
                                    "torque": []})
    st["log_ns"].append(log_ns)
    if msgtype == "sensor_msgs/msg/JointState":
        st["names"].append(tuple(msg.name))
        st["position"].append(np.asarray(msg.position, dtype=float))
        st["effort"].append(np.asarray(msg.effort, dtype=float))
    elif msgtype == "geometry_msgs/msg/WrenchStamped":
        f, m = msg.wrench.force, msg.wrench.torque
        st["xyz"].append((f.x, f.y, f.z))
        st["torque"].append((m.x, m.y, m.z))
    else:
        st["xyz"].append((msg.point.x, msg.point.y, msg.point.z))


def _collect_stage_latency(acc: dict[str, list], msgtype: str, log_ns: int, msg: Any) -> None:
    if msgtype == "exo_runtime/msg/CycleTiming":
        pairs = zip(msg.stage_names, msg.stage_durations_s)
        acc["cycle_s"].append(float(msg.duration_s))
        acc["missed_total"].append(int(msg.missed_total))
    elif msgtype == "sensor_msgs/msg/JointState":
        pairs = zip(msg.name, msg.effort)
    else:
        return
    acc["log_ns"].append(log_ns)
    for name, d in pairs:
        acc["stage:" + name].append(float(d))


def joint_series(stream: dict[str, Any], field: str = "position") -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, log_ns, values[n, len(names)]) of a JointState stream, keeping the messages whose name list equals
    the last one (a pipeline that changes names mid-run is shown with its final names)."""
    if not stream["names"]:
        return [], np.zeros(0, dtype=np.int64), np.zeros((0, 0))
    names = stream["names"][-1]
    keep = [i for i, n in enumerate(stream["names"]) if n == names and stream[field][i].size == len(names)]
    if not keep:
        return list(names), np.zeros(0, dtype=np.int64), np.zeros((0, len(names)))
    t = np.asarray([stream["log_ns"][i] for i in keep], dtype=np.int64)
    return list(names), t, np.vstack([stream[field][i] for i in keep])


def first_write_ages(ages_s: list[float] | np.ndarray) -> np.ndarray:
    """Capture -> first CAN write latency of each new command (s), from the per-torque-cycle command age.

    The age of a held command grows with every torque cycle; it drops exactly when a newer frame's command
    is written. So the age at every drop (and at the first valid cycle) is that frame's end-to-end latency:
    capture -> estimation stages -> shared buffer -> torque loop -> bus write. Negative ages (no command yet)
    are skipped."""
    a = np.asarray(ages_s, dtype=float)
    valid = np.isfinite(a) & (a >= 0)
    out: list[float] = []
    prev = np.inf
    for v, ok in zip(a, valid):
        if not ok:
            prev = np.inf
            continue
        if v < prev:
            out.append(float(v))
        prev = v
    return np.asarray(out, dtype=float)


def performance(series: dict[str, Any], budget_s: float = FRAME_BUDGET_S) -> dict[str, Any]:
    """Per-stage latency of the estimation pipeline against the frame budget, and end-to-end latency.

    Stages come from :data:`STAGE_LATENCY_TOPIC` when recorded, else from the estimation loop's own cycle
    timing. End to end (capture -> CAN write) is the recorded :data:`E2E_STAGE` when present, else derived from
    the torque commands' age with :func:`first_write_ages`. ``frames_over_budget`` counts frames whose end-to-end
    latency exceeded *budget_s*; ``missed_deadlines`` is the estimation loop's own count. ``largest_stage_target_s``
    is what the slowest stage (by p99) must reach for the p99 sum of all stages to fit the budget (a conservative
    bound: p99s do not add exactly)."""
    sl = series.get("stage_latency") or {}
    source = STAGE_LATENCY_TOPIC
    stages = {k[6:]: v for k, v in sl.items() if k.startswith("stage:")}
    if not stages:
        source = "/exo/estimation/timing"
        stages = {k[6:]: v for k, v in series["timing"].get("estimation", {}).items() if k.startswith("stage:")}
    e2e_recorded = stages.pop(E2E_STAGE, None)
    if e2e_recorded is not None:
        e2e = np.asarray(e2e_recorded, dtype=float)
        e2e_source = f"{STAGE_LATENCY_TOPIC} ({E2E_STAGE})"
    else:
        e2e = first_write_ages(series["command"].get("age_s", []))
        e2e_source = "/exo/torque/command: command age at the first bus write of each new command"
    est = series["timing"].get("estimation", {})
    out: dict[str, Any] = {"budget_s": budget_s, "stage_source": source if stages else None,
                           "stages_s": {}, "end_to_end_s": _pct(e2e), "end_to_end_source": e2e_source if e2e.size else None,
                           "frames_over_budget": int(np.sum(e2e > budget_s)),
                           "missed_deadlines": int(max(est["missed_total"])) if est.get("missed_total") else None,
                           "cycle_s": _pct(est.get("duration_s", []))}
    for name, v in stages.items():
        st = _pct(v)
        st["p50_share"] = st["p50"] / budget_s
        st["p99_share"] = st["p99"] / budget_s
        out["stages_s"][name] = st
    if out["stages_s"]:
        p99 = {k: v["p99"] for k, v in out["stages_s"].items()}
        worst = max(p99, key=p99.get)
        others = sum(v for k, v in p99.items() if k != worst)
        out["stage_p99_sum_s"] = sum(p99.values())
        out["largest_stage"] = worst
        out["largest_stage_target_s"] = budget_s - others
    return out


def find_log(path: str | Path) -> Path:
    """Accept a run directory (with ``telemetry/``), a rosbag2 directory, or an ``.mcap`` file."""
    p = Path(path)
    if (p / "telemetry").is_dir():
        return p / "telemetry"
    if p.exists():
        return p
    raise FileNotFoundError(f"no telemetry log at {p} (expected a run directory, a rosbag2 directory or an .mcap file)")


def load_series(path: str | Path) -> dict[str, Any]:
    """Collect the logged topics into arrays (reads truncated logs too)."""
    log = find_log(path)
    _, mcap_path = resolve_log(log)
    timing: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    cmd: dict[str, list] = defaultdict(list)
    js: dict[str, list] = defaultdict(list)
    events: list[dict[str, Any]] = []
    can: dict[str, list] = defaultdict(list)
    summaries: list[dict[str, Any]] = []
    joint_names: list[str] = []
    streams: dict[str, dict[str, Any]] = {}
    stage_latency: dict[str, list] = defaultdict(list)
    first_log_ns: int | None = None
    topic_counts: dict[str, int] = defaultdict(int)
    for topic, msgtype, log_ns, msg in iter_messages(log):
        topic_counts[topic] += 1
        if first_log_ns is None or log_ns < first_log_ns:
            first_log_ns = log_ns
        if topic == STAGE_LATENCY_TOPIC:
            _collect_stage_latency(stage_latency, msgtype, log_ns, msg)
        elif topic.startswith(STREAM_PREFIXES) and msgtype in _STREAM_TYPES:
            _collect_stream(streams, topic, msgtype, log_ns, msg)
        elif msgtype == "exo_runtime/msg/CycleTiming":
            t = timing[msg.loop_name]
            t["start_ns"].append(msg.start_ns)
            t["scheduled_ns"].append(msg.scheduled_ns)
            t["lateness_s"].append(msg.lateness_s)
            t["duration_s"].append(msg.duration_s)
            t["missed_total"].append(msg.missed_total)
            for name, d in zip(msg.stage_names, msg.stage_durations_s):
                t["stage:" + name].append(float(d))
        elif msgtype == "exo_runtime/msg/TorqueCommand":
            joint_names = list(msg.joint_names)
            cmd["log_ns"].append(log_ns)
            cmd["requested"].append(np.asarray(msg.requested_torque_nm, dtype=float))
            cmd["commanded"].append(np.asarray(msg.commanded_torque_nm, dtype=float))
            cmd["age_s"].append(msg.command_age_s)
            cmd["state"].append(msg.state)
            cmd["fade_gain"].append(msg.fade_gain)
            cmd["stale"].append(bool(msg.stale))
        elif topic == "/exo/joint_states":
            js["log_ns"].append(log_ns)
            js["position"].append(np.asarray(msg.position, dtype=float))
            js["effort"].append(np.asarray(msg.effort, dtype=float))
            js["names"] = list(msg.name)
        elif msgtype == "exo_runtime/msg/Fault":
            events.append({"log_ns": log_ns, "t_ns": msg.t_ns, "source": msg.source, "kind": msg.kind,
                           "value": msg.value, "latched": msg.latched, "detail": msg.detail})
        elif msgtype == "exo_runtime/msg/CanFrame":
            can["t_ns"].append(time_to_ns(msg.stamp))
            can["id"].append(msg.arbitration_id)
            can["rx"].append(msg.is_rx)
            can["err"].append(msg.is_error)
            can["data"].append(bytes(msg.data))
        elif msgtype == "exo_runtime/msg/LoopSummary":
            summaries.append({k: getattr(msg, k) for k in ("loop_name", "rate_hz", "cycles", "missed", "lateness_p50_s",
                                                            "lateness_p99_s", "lateness_max_s")})
    return {"log": log, "mcap": mcap_path, "complete": is_complete(mcap_path), "timing": timing, "command": cmd,
            "joint_states": js, "events": events, "can": can, "summaries": summaries, "joint_names": joint_names,
            "streams": streams, "stage_latency": stage_latency, "first_log_ns": first_log_ns,
            "topic_counts": dict(topic_counts)}


#: The estimation chain's confidence topic (``runtime.estimation.topics.T_CONFIDENCE``): effort = confidence, parts.
CONFIDENCE_TOPIC = "/exo/estimation/confidence"


def confidence_summary(streams: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The run's confidence (``models.confidence.summarize``: mean, fraction below 0.5, which part was lowest how
    often) and, per envelope part, the fraction of frames outside that envelope (part < 1: the estimate was outside
    its physiological range, or missing); None when the run logged no :data:`CONFIDENCE_TOPIC`."""
    from models.confidence import summarize

    st = streams.get(CONFIDENCE_TOPIC)
    if st is None:
        return None
    names, _t, vals = joint_series(st, "effort")
    if vals.size == 0 or not names or names[0] != "confidence":
        return None
    parts = tuple(names[1:])
    out: dict[str, Any] = summarize(vals[:, 0], vals[:, 1:], parts).as_dict()
    env = {}
    for i, p in enumerate(parts):
        if p.startswith("envelope_"):
            frac = float(np.mean(vals[:, 1 + i] < 1.0))
            env[p[len("envelope_"):]] = {"fraction_outside": frac, "frames": int(vals.shape[0]), "implausible": frac > 0}
    out["envelopes"] = env
    return out


def record_confidence(run_dir: str | Path, series: dict[str, Any]) -> dict[str, Any] | None:
    """Add :func:`confidence_summary` of ``series`` to ``<run_dir>/summary.json`` as ``confidence`` (atomically; no
    summary.json or no confidence topic: nothing written). Returns the section."""
    import json
    import os

    conf = confidence_summary(series["streams"])
    path = Path(run_dir) / "summary.json"
    if conf is None or not path.is_file():
        return conf
    doc = json.loads(path.read_text())
    doc["confidence"] = conf
    tmp = path.with_name("summary.json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, path)
    return conf


def summarize_log(path: str | Path, series: dict[str, Any] | None = None) -> dict[str, Any]:
    s = series or load_series(path)
    out: dict[str, Any] = {"log": str(s["log"]), "recovered": not s["complete"], "loops": {}}
    rates = {m["loop_name"]: m["rate_hz"] for m in s["summaries"]}
    for name, t in s["timing"].items():
        start = np.asarray(t["start_ns"], dtype=np.int64)
        sched = np.asarray(t["scheduled_ns"], dtype=np.int64)
        period_ns = float(np.median(np.diff(sched))) if sched.size > 2 else float("nan")
        rate = rates.get(name, 1e9 / period_ns if period_ns == period_ns and period_ns > 0 else float("nan"))
        span_s = (sched[-1] - sched[0]) * 1e-9 + 1.0 / rate if sched.size > 1 else 0.0
        missed = int(max(t["missed_total"])) if t["missed_total"] else 0
        loop = {
            "rate_hz": rate, "cycles": int(start.size), "missed": missed,
            "expected_cycles": int(round(span_s * rate)) if rate == rate else None,
            "span_s": span_s,
            "lateness_s": _pct(np.abs(np.asarray(t["lateness_s"]))),
            "duration_s": _pct(t["duration_s"]),
            "stages_s": {k[6:]: _pct(v) for k, v in t.items() if k.startswith("stage:")},
        }
        out["loops"][name] = loop
    c = s["command"]
    if c["age_s"]:
        ages = np.asarray(c["age_s"], dtype=float)
        req = np.vstack(c["requested"])
        com = np.vstack(c["commanded"])
        states = c["state"]
        out["command_age_s"] = _pct(ages[ages >= 0])
        out["torque"] = {
            "joints": s["joint_names"],
            "peak_requested_nm": [float(x) for x in np.nanmax(np.abs(req), axis=0)],
            "peak_commanded_nm": [float(x) for x in np.max(np.abs(com), axis=0)],
            "final_commanded_nm": [float(x) for x in com[-1]],
            "active_fraction": float(np.mean([st == "ACTIVE" for st in states])),
        }
    can_stats = _can_summary(s["can"])
    if can_stats:
        out["can"] = can_stats
    js = s["joint_states"]
    if c["commanded"] and js["effort"] and len(js["effort"]) == len(c["commanded"]):
        # the reply read in cycle k+1 answers the command written in cycle k
        com_all = np.vstack(c["commanded"])[:-1]
        meas = np.vstack(js["effort"])[1:]
        active = np.array([st == "ACTIVE" for st in c["state"][:-1]])
        if active.any():
            err = np.abs(meas[active] - com_all[active])
            out["torque_tracking_nm"] = {**_pct(err.ravel()), "rms": float(np.sqrt(np.mean(err ** 2)))}
    t0 = min((min(t["start_ns"]) for t in s["timing"].values() if t["start_ns"]), default=0)
    for e in s["events"]:
        e["t_s"] = (e["t_ns"] - t0) * 1e-9
    out["faults"] = [e for e in s["events"] if e["latched"]]
    out["events"] = s["events"]
    # the assistance stage's events (runtime.pipeline.stages.T_ASSISTANCE_EVENTS): confidence fades and strategy switches
    assist = [e for e in s["events"] if e["source"] == "assistance"]
    out["assistance_events"] = assist
    out["assistance_fades"] = sum(1 for e in assist if e["kind"] == "CONFIDENCE_FADE")
    out["performance"] = performance(s)
    conf = confidence_summary(s["streams"])
    if conf is not None:
        out["confidence"] = conf
    return out


def _can_summary(can: dict[str, list]) -> dict[str, Any]:
    """Frame counts and command-to-reply latency.

    The frames are taken in time order (the log's writers are the drive's send and receive paths, whose records
    need not arrive in time order).  A command frame to motor m (8 bytes, not a special frame) is pending until the
    next received reply whose first byte is m (paired: one latency) or the next command to m (the first one then
    counts as unanswered).  Replies with no pending command (answers to special frames, or to a command the log
    lost) are counted, not paired.
    """
    if not can.get("t_ns"):
        return {}
    rows = sorted(zip(can["t_ns"], can["id"], can["rx"], can["err"], can["data"]), key=lambda r: r[0])
    pending: dict[int, int] = {}
    lat: list[float] = []
    tx = rx = err = unanswered = unpaired = 0
    for t, cid, is_rx, is_err, data in rows:
        if is_err:
            err += 1
            continue
        if not is_rx:
            tx += 1
            if len(data) == 8 and not data.startswith(_SPECIAL_PREFIX):
                if cid in pending:
                    unanswered += 1
                pending[cid] = t
        else:
            rx += 1
            if data and data[0] in pending:
                lat.append((t - pending.pop(data[0])) * 1e-9)
            else:
                unpaired += 1
    unanswered += len(pending)
    return {"frames_tx": tx, "frames_rx": rx, "error_frames": err, "command_to_reply_s": _pct(lat),
            "commands_unanswered": unanswered, "replies_unpaired": unpaired}


def format_text(summary: dict[str, Any]) -> str:
    """A plain-text table of the summary."""
    lines = [f"log: {summary['log']}" + ("   (recovered from a truncated file)" if summary["recovered"] else "")]
    lines.append(f"{'loop':<12}{'rate Hz':>8}{'cycles':>9}{'expect':>9}{'missed':>8}"
                 f"{'late p50 ms':>13}{'p99 ms':>9}{'max ms':>9}{'dur p99 ms':>12}")
    for name, lp in summary["loops"].items():
        lat, dur = lp["lateness_s"], lp["duration_s"]
        lines.append(f"{name:<12}{lp['rate_hz']:>8.1f}{lp['cycles']:>9d}{lp['expected_cycles'] or 0:>9d}{lp['missed']:>8d}"
                     f"{lat['p50'] * 1e3:>13.3f}{lat['p99'] * 1e3:>9.3f}{lat['max'] * 1e3:>9.3f}{dur['p99'] * 1e3:>12.3f}")
    for name, lp in summary["loops"].items():
        if lp["stages_s"]:
            parts = ", ".join(f"{k} {v['p50'] * 1e6:.0f}/{v['p99'] * 1e6:.0f}/{v['max'] * 1e6:.0f}"
                              for k, v in lp["stages_s"].items())
            lines.append(f"  {name} stages p50/p99/max us: {parts}")
    if "command_age_s" in summary:
        a = summary["command_age_s"]
        lines.append(f"command age, capture -> bus write: p50 {a['p50'] * 1e3:.2f} ms, p99 {a['p99'] * 1e3:.2f} ms, "
                     f"max {a['max'] * 1e3:.2f} ms")
    if "torque" in summary:
        tq = summary["torque"]
        lines.append(f"torque ({', '.join(tq['joints'])}): peak requested {tq['peak_requested_nm']} N*m, peak commanded "
                     f"{[round(x, 3) for x in tq['peak_commanded_nm']]} N*m, final {tq['final_commanded_nm']} N*m, "
                     f"ACTIVE {tq['active_fraction'] * 100:.1f} % of cycles")
    if "can" in summary:
        cs = summary["can"]
        lat = cs["command_to_reply_s"]
        lines.append(f"CAN: {cs['frames_tx']} frames sent, {cs['frames_rx']} received, {cs['error_frames']} error frames; "
                     f"command -> reply p50 {lat['p50'] * 1e3:.3f} ms, p99 {lat['p99'] * 1e3:.3f} ms, "
                     f"max {lat['max'] * 1e3:.3f} ms ({lat['count']} pairs, {cs.get('commands_unanswered', 0)} commands "
                     f"unanswered, {cs.get('replies_unpaired', 0)} replies unpaired)")
    if "torque_tracking_nm" in summary:
        tt = summary["torque_tracking_nm"]
        lines.append(f"measured vs commanded torque while ACTIVE: |error| p50 {tt['p50']:.4f}, p99 {tt['p99']:.4f}, "
                     f"max {tt['max']:.4f} N*m, rms {tt['rms']:.4f} N*m")
    perf = summary.get("performance")
    if perf and perf["stages_s"]:
        b = perf["budget_s"]
        lines.append(f"pipeline stages vs the {b * 1e3:.1f} ms frame budget (p50/p99/max ms, p99 share), from "
                     f"{perf['stage_source']}:")
        for k, v in perf["stages_s"].items():
            lines.append(f"  {k:<20}{v['p50'] * 1e3:>8.2f}{v['p99'] * 1e3:>8.2f}{v['max'] * 1e3:>8.2f}"
                         f"{v['p99_share'] * 100:>7.1f} %")
        if perf["stage_p99_sum_s"] > b and perf["largest_stage_target_s"] > 0:
            lines.append(f"  sum of stage p99s {perf['stage_p99_sum_s'] * 1e3:.2f} ms; to fit the budget "
                         f"'{perf['largest_stage']}' must reach p99 <= {perf['largest_stage_target_s'] * 1e3:.2f} ms")
        elif perf["stage_p99_sum_s"] > b:
            lines.append(f"  sum of stage p99s {perf['stage_p99_sum_s'] * 1e3:.2f} ms: over the budget even without "
                         f"'{perf['largest_stage']}'; the stages together must lose "
                         f"{(perf['stage_p99_sum_s'] - b) * 1e3:.2f} ms (or run in parallel, as the vision process does)")
        else:
            lines.append(f"  sum of stage p99s {perf['stage_p99_sum_s'] * 1e3:.2f} ms: fits the budget, "
                         f"{(b - perf['stage_p99_sum_s']) * 1e3:.2f} ms to spare")
    if perf and perf["end_to_end_s"]["count"]:
        e = perf["end_to_end_s"]
        lines.append(f"end to end, capture -> CAN write: p50 {e['p50'] * 1e3:.2f} ms, p99 {e['p99'] * 1e3:.2f} ms, "
                     f"max {e['max'] * 1e3:.2f} ms over {e['count']} frames; {perf['frames_over_budget']} over the "
                     f"{perf['budget_s'] * 1e3:.1f} ms budget ({perf['end_to_end_source']})")
    if summary["faults"]:
        lines.append("faults (latched):")
        for f in summary["faults"]:
            lines.append(f"  t={f['t_s']:.3f} s  {f['source']}  {f['kind']}  value={f['value']:.4g}  {f['detail']}")
    else:
        lines.append("faults: none")
    return "\n".join(lines)


#: caption of each PNG of :func:`write_plots` (shown under it in the HTML report)
PLOT_CAPTIONS: dict[str, str] = {
    "latency": "Wake-up lateness of each loop, |actual - scheduled| start of every cycle (ms).",
    "torque": "Torque requested and commanded per joint (N*m), and the joint angles (deg).",
    "command_age": "Age of the command at every bus write, from frame capture (ms): grows while a command is held, "
                   "drops when a newer frame's command is written.",
}


def _save(fig, path: Path) -> Path:
    """Lay out, write the PNG and free the figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(series: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """PNG plots: wake-up lateness per loop, torque requested/commanded with knee angle, command age."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    timing = series["timing"]
    if timing:
        fig, axes = plt.subplots(len(timing), 1, figsize=(9, 2.8 * len(timing)), squeeze=False)
        for ax, (name, t) in zip(axes[:, 0], timing.items()):
            start = np.asarray(t["start_ns"], dtype=np.int64)
            ax.plot((start - start[0]) * 1e-9, np.abs(np.asarray(t["lateness_s"])) * 1e3, ".", ms=2)
            ax.set_ylabel("wake-up lateness [ms]")
            ax.set_title(f"{name} loop")
            ax.grid(True, alpha=0.3)
        axes[-1, 0].set_xlabel("time [s]")
        paths.append(_save(fig, out_dir / "latency.png"))
    c = series["command"]
    if c["log_ns"]:
        t = (np.asarray(c["log_ns"], dtype=np.int64) - c["log_ns"][0]) * 1e-9
        req, com = np.vstack(c["requested"]), np.vstack(c["commanded"])
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
        for j, name in enumerate(series["joint_names"]):
            ax1.plot(t, req[:, j], label=f"{name} requested", lw=1)
            ax1.plot(t, com[:, j], label=f"{name} commanded", lw=1)
        ax1.set_ylabel("torque [N*m]")
        ax1.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8)  # beside the data
        ax1.grid(True, alpha=0.3)
        js = series["joint_states"]
        if js["log_ns"]:
            tj = (np.asarray(js["log_ns"], dtype=np.int64) - c["log_ns"][0]) * 1e-9
            ax2.plot(tj, np.degrees(np.vstack(js["position"])), lw=1)
        ax2.set_ylabel("joint angle [deg]")
        ax2.set_xlabel("time [s]")
        ax2.grid(True, alpha=0.3)
        paths.append(_save(fig, out_dir / "torque.png"))
        ages = np.asarray(c["age_s"], dtype=float)
        fig, ax = plt.subplots(figsize=(9, 2.8))
        ax.plot(t[ages >= 0], ages[ages >= 0] * 1e3, ".", ms=2)
        ax.set_ylabel("command age [ms]")
        ax.set_xlabel("time [s]")
        ax.set_title("age of the command from capture to bus write")
        ax.grid(True, alpha=0.3)
        paths.append(_save(fig, out_dir / "command_age.png"))
    return paths

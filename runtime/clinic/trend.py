"""Longitudinal views: one patient's metrics over sessions, the normal range beside each, and flags.

Sessions are ordered by date (unknown dates last), then trial name. Flags (``clinic.yaml`` ``flags:``):

* ``above`` / ``below``: the session's value beyond the threshold;
* ``rise_fraction``: the value exceeds the patient's first available value (baseline) by that fraction;
* ``affected_limb_only``: only sessions whose analysed side is the subject's affected side.

A metric with no value in any session is listed as "no data" (NULL is never plotted as 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.clinic.config import ClinicConfig
from runtime.clinic.schema import METRICS


@dataclass(frozen=True)
class Flag:
    session_id: int
    trial_name: str
    rule: str
    metric: str
    value: float
    threshold: float
    text: str


@dataclass
class Trend:
    subject: dict[str, Any]
    sessions: list[dict[str, Any]]
    flags: list[Flag]

    def series(self, metric: str) -> list[float | None]:
        return [s["metrics"][metric] for s in self.sessions]


def _label(s: dict[str, Any]) -> str:
    return f"{s['trial_name']} ({s['session_date'] or 'date unknown'})"


def subject_trend(store, pseudonym: str, cfg: ClinicConfig) -> Trend:
    """All sessions of ``pseudonym`` with their metrics, and the flags ``cfg`` raises on them."""
    subjects = {s["pseudonym"]: s for s in store.subjects()}
    if pseudonym not in subjects:
        raise LookupError(f"--subject {pseudonym!r}: not in the store (subjects: {', '.join(sorted(subjects)) or 'none'})")
    subject = subjects[pseudonym]
    sessions = store.sessions(pseudonym)
    flags: list[Flag] = []
    for name, rule in cfg.flags.items():
        baseline = None
        for s in sessions:
            v = s["metrics"][rule.metric]
            if v is None or not math.isfinite(v):
                continue
            if rule.affected_limb_only and s["side"] != subject["affected_side"] and subject["affected_side"] != "both":
                continue
            unit = METRICS[rule.metric][0]
            if rule.above is not None and v > rule.above:
                flags.append(Flag(s["id"], s["trial_name"], name, rule.metric, v, rule.above,
                                  f"{rule.metric} = {v:.3g} {unit} > {rule.above:g}"))
            elif rule.below is not None and v < rule.below:
                flags.append(Flag(s["id"], s["trial_name"], name, rule.metric, v, rule.below,
                                  f"{rule.metric} = {v:.3g} {unit} < {rule.below:g}"))
            elif rule.rise_fraction is not None:
                if baseline is None:
                    baseline = (s["trial_name"], v)
                elif baseline[1] > 0 and v > baseline[1] * (1.0 + rule.rise_fraction):
                    thr = baseline[1] * (1.0 + rule.rise_fraction)
                    flags.append(Flag(s["id"], s["trial_name"], name, rule.metric, v, thr,
                                      f"{rule.metric} = {v:.3g} {unit}, {100 * (v / baseline[1] - 1):+.0f} % over the "
                                      f"baseline {baseline[1]:.3g} ({baseline[0]}); rule +{100 * rule.rise_fraction:g} %"))
    return Trend(subject, sessions, flags)


def _range_text(cfg: ClinicConfig, metric: str) -> str:
    r = cfg.metrics.get(metric)
    if r is None or (r.normal_low is None and r.normal_high is None):
        return "-"
    lo = "" if r.normal_low is None else f"{r.normal_low:g}"
    hi = "" if r.normal_high is None else f"{r.normal_high:g}"
    return f"{lo}-{hi}" + ("" if r.verified else "*")


def format_table(trend: Trend, cfg: ClinicConfig) -> str:
    """Text table: one row per metric, one column per session, the normal range in the last column."""
    sub = trend.subject
    lines = [f"subject {sub['pseudonym']}: {sub['mass_kg']:g} kg, {sub['height_m']:g} m, sex {sub['sex']}, "
             f"affected side {sub['affected_side']}; {len(trend.sessions)} session(s)"]
    for i, s in enumerate(trend.sessions, 1):
        lines.append(f"  [{i}] {_label(s)}  source {s['source']}, {s['side']} knee, task {s['task']!r}")
    if not trend.sessions:
        return "\n".join(lines)
    w = max(len(m) for m in METRICS) + 10
    head = f"{'metric (unit)':<{w}}" + "".join(f"{'[' + str(i) + ']':>9}" for i in range(1, len(trend.sessions) + 1))
    lines += ["", head + f"  {'normal':>11}"]
    for m, (unit, _) in METRICS.items():
        vals = trend.series(m)
        cells = "".join(f"{'-' if v is None else format(v, '.3g'):>9}" for v in vals)
        lines.append(f"{m + ' (' + unit + ')':<{w}}{cells}  {_range_text(cfg, m):>11}")
    lines.append("(- = not available from that session's source; * = range not re-checked against its source, "
                 "see clinic.yaml)")
    if trend.flags:
        lines.append("flags:")
        lines += [f"  {f.rule}: {f.trial_name}: {f.text}" for f in trend.flags]
        for rule in dict.fromkeys(f.rule for f in trend.flags):
            lines.append(f"  [{rule}] source: {cfg.flags[rule].source}")
    else:
        lines.append("flags: none")
    return "\n".join(lines)


def write_plots(trend: Trend, cfg: ClinicConfig, out_dir: str | Path) -> tuple[list[Path], list[str]]:
    """One PNG per metric with data (value per session, normal band, flagged sessions ringed); returns
    (written files, metrics without data)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, empty = [], []
    labels = [_label(s) for s in trend.sessions]
    flagged = {(f.session_id, f.metric) for f in trend.flags}
    markers = {"lab_trial": "o", "import": "s", "exo_run": "^"}
    for m, (unit, what) in METRICS.items():
        vals = trend.series(m)
        idx = [i for i, v in enumerate(vals) if v is not None and math.isfinite(v)]
        if not idx:
            empty.append(m)
            continue
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(vals) + 2), 4.0))
        r = cfg.metrics.get(m)
        if r is not None and (r.normal_low is not None or r.normal_high is not None):
            lo = r.normal_low if r.normal_low is not None else min(vals[i] for i in idx)
            hi = r.normal_high if r.normal_high is not None else max(vals[i] for i in idx)
            ax.axhspan(lo, hi, color="tab:green", alpha=0.15,
                       label="normal range" + ("" if r.verified else " (not re-checked)"))
        for src, mk in markers.items():          # one line per source: lab, import and exo values are not joined
            pts = [i for i in idx if trend.sessions[i]["source"] == src]
            if pts:
                ax.plot(pts, [vals[i] for i in pts], marker=mk, lw=1, zorder=2, label=src.replace("_", " "))
        fl = [i for i in idx if (trend.sessions[i]["id"], m) in flagged]
        if fl:
            ax.scatter(fl, [vals[i] for i in fl], s=180, facecolors="none", edgecolors="tab:red", lw=2, zorder=3,
                       label="flagged")
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(f"{m} ({unit})")
        ax.set_title(f"{trend.subject['pseudonym']}: {what}", fontsize=9)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        p = out / f"{trend.subject['pseudonym']}_{m}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    return written, empty

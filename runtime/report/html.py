"""One self-contained HTML page per run: ``<run>/report.html``, with the PNGs beside it in ``<run>/plots/``.

Reads the run's telemetry (``runtime.report.summary.load_series``) and ``summary.json`` and shows: run metadata
(pipeline, exit, versions, providers, fallbacks, real-time settings, peak memory per process, each labelled with
what it is), the per-stage latency
table against the 16.7 ms frame budget and the end-to-end (capture -> CAN write) latency, the loop table,
joint angles, GRF and CoP per foot, KAM/KEM, muscle activations and synergy coefficients, medial/lateral
knee contact force, commanded versus delivered torque, the faults with their timeline, and every other PNG in the
run's ``plots/`` folder (``exo run``/``demo``: latency, torque, command age), each with a caption. A topic that the
run did not record is named as "not recorded in this run". The live pipeline's ``/exo/estimation/...``
topics and the offline analysis' ``/analysis/...`` equivalents are both accepted.

The page uses no script, no external URL and no web font: plots are embedded as base64 PNG.
Units: angles in degrees on the plots (logged in rad), forces N, moments %BW*ht, torque N*m, times s or ms.
"""
from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from runtime.report.memory import memory_lines
from runtime.report.summary import FRAME_BUDGET_S, PLOT_CAPTIONS, find_log, joint_series, load_series, summarize_log

NOT_RECORDED = "not recorded in this run"

ANGLE_TOPICS = ("/exo/estimation/joint_angles", "/analysis/joint_angles")
KNEE_MOMENT_TOPICS = ("/exo/estimation/knee_moments", "/analysis/knee_moments")
ACTIVATION_TOPICS = ("/exo/estimation/activations", "/analysis/activations")
SYNERGY_TOPICS = ("/exo/estimation/synergies", "/analysis/synergies")
KCF_TOPICS = ("/exo/estimation/kcf", "/analysis/kcf")
SIDES = {"r": ("r", "right"), "l": ("l", "left")}
#: where legends go: beside the data, right of the axes (never over the curves)
LEGEND_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0}
#: caption of each plot the page draws (the PNG's stem -> what it shows); the plots of
#: :func:`runtime.report.summary.write_plots` have theirs in ``PLOT_CAPTIONS``
CAPTIONS: dict[str, str] = {
    "stage_latency": "Budget split of the 60 Hz pipeline (stacked stage p50 and p99 against the 16.7 ms frame "
                     "budget) and the end-to-end latency, capture to CAN write, of every frame.",
    "joint_angles": "Joint angles of the estimation chain (deg).",
    "grf_cop": "Ground reaction force per foot (N, world frame, z up) and centre of pressure per foot: CoP x and "
               "CoP y on their own axes (m, world frame).",
    "knee_moments": "Knee adduction and extension moments (%BW*ht).",
    "activations": "Muscle activations from static optimisation (0..1), one row per muscle.",
    "synergies": "Synergy coefficients over time.",
    "kcf": "Medial and lateral knee contact force (N).",
    "confidence": "Confidence of the estimate (black, 0..1) = the minimum of its parts (thin lines: visibility, "
                  "freshness, reprojection, dynamic residual and each estimate's physiological envelope; "
                  "models.confidence).",
    "torque_tracking": "Torque per joint: requested by the controller, commanded after the safety supervisor, and "
                       "delivered (measured by the drive), N*m.",
    "faults_timeline": "Safety state, fade gain and every fault event (red: latched).",
}


def grf_topics(kind: str, side: str) -> tuple[str, ...]:
    """Live and offline topic names of *kind* ("grf" or "cop") for *side* ("r" or "l"), in order of preference."""
    return tuple(f"{prefix}/{kind}/{s}" for prefix in ("/exo/estimation", "/analysis") for s in SIDES[side])


def run_dir_of(path: str | Path) -> Path:
    """The run folder of a run folder, its ``telemetry/`` folder or its ``.mcap`` file."""
    log = find_log(path)
    if log.is_file():
        log = log.parent
    return log.parent if (log.parent / "summary.json").exists() or log.name == "telemetry" else log


def first_stream(streams: dict[str, Any], topics: tuple[str, ...]) -> tuple[str | None, dict[str, Any] | None]:
    """(topic, stream) of the first of *topics* recorded with at least one message, else (None, None)."""
    for t in topics:
        if t in streams and streams[t]["log_ns"]:
            return t, streams[t]
    return None, None


class _Page:
    """Collects sections and PNGs; each plot is saved beside the page and embedded."""

    def __init__(self, plot_dir: Path) -> None:
        self.plot_dir = plot_dir
        self.sections: list[str] = []
        self.pngs: list[Path] = []          # drawn by the page
        self.other_pngs: list[Path] = []    # found in the run's plots/ folder and embedded as they are

    def figure(self, name: str, draw: Callable[[Any], None], size: tuple[float, float]) -> str:
        """Draw, save ``<plot_dir>/<name>.png`` and return it embedded with its caption (:data:`CAPTIONS`)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=size)
        try:
            draw(fig)
            fig.tight_layout()
            path = self.plot_dir / f"{name}.png"
            fig.savefig(path, dpi=90)
        finally:
            plt.close(fig)
        self.pngs.append(path)
        return embed_png(path, CAPTIONS.get(name, name))

    def section(self, title: str, body: str, anchor: str) -> None:
        self.sections.append(f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{body}\n</section>')


def embed_png(path: Path, caption: str) -> str:
    """A ``<figure>`` with the PNG at *path* embedded as base64 and *caption* under it."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)} <code>{html.escape(path.name)}</code></figcaption></figure>")


def plot_caption(path: Path) -> str:
    """Caption of a plot found in the run's ``plots/`` folder: known names have theirs, others say what file."""
    return CAPTIONS.get(path.stem) or PLOT_CAPTIONS.get(path.stem) or f"plot written by this run: {path.stem}"


def _other_plots_section(page: _Page, folders: list[Path]) -> str:
    """Every PNG in *folders* (the run's ``plots/`` and the page's) not already on the page, with its caption."""
    shown = {p.resolve() for p in page.pngs}
    found: dict[Path, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for p in sorted(folder.glob("*.png")):
                if p.resolve() not in shown:
                    found.setdefault(p.resolve(), p)
    if not found:
        return '<p class="missing">no other plots in this run\'s plots/ folder</p>'
    page.other_pngs.extend(found.values())
    return "".join(embed_png(p, plot_caption(p)) for p in found.values())


def _missing(topics: tuple[str, ...] | list[str]) -> str:
    return f'<p class="missing">{NOT_RECORDED}: {html.escape(" / ".join(topics))}</p>'


def _table(header: list[str], rows: list[list[Any]], cls: str = "") -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "n/a" if not math.isfinite(v) else f"{v:.3f}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _t(log_ns: np.ndarray | list[int], t0_ns: int) -> np.ndarray:
    return (np.asarray(log_ns, dtype=np.int64) - t0_ns) * 1e-9


def _joint_plot(page: _Page, name: str, title: str, topics: tuple[str, ...], streams: dict[str, Any], t0: int,
                field: str, scale: float, ylabel: str, size=(9.5, 3.4)) -> str:
    topic, st = first_stream(streams, topics)
    if st is None:
        return _missing(topics)
    names, tns, vals = joint_series(st, field)
    if vals.size == 0:
        return _missing(topics)
    t = _t(tns, t0)

    def draw(fig):
        ax = fig.add_subplot(1, 1, 1)
        for j, n in enumerate(names):
            ax.plot(t, vals[:, j] * scale, lw=1, label=n)
        ax.set_xlabel("time [s]")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title} ({topic})")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, ncol=1 if len(names) <= 12 else 2, **LEGEND_OUTSIDE)

    finite = np.where(np.isfinite(vals), np.abs(vals), 0.0)
    rows = [[n, float(np.nanmin(vals[:, j]) * scale), float(np.nanmax(vals[:, j]) * scale),
             float(finite[:, j].max() * scale)] for j, n in enumerate(names)]
    return (page.figure(name, draw, size) +
            _table(["name", f"min {ylabel}", f"max {ylabel}", f"peak |x| {ylabel}"], rows, "small"))


def draw_grf_cop(fig: Any, grf: dict[str, tuple[str | None, dict[str, Any] | None]],
                 cop: dict[str, tuple[str | None, dict[str, Any] | None]], t0: int) -> dict[str, Any]:
    """Draw GRF per foot (N) and the CoP per foot on *fig*: three axes sharing time, ``{"grf", "cop_x",
    "cop_y"}``. CoP x and y have their own axes because they differ by metres (walking direction) against
    centimetres (across): on one axis the smaller one reads flat. World frame, z up; *t0* in ns."""
    ax_f = fig.add_subplot(3, 1, 1)
    ax_x = fig.add_subplot(3, 1, 2, sharex=ax_f)
    ax_y = fig.add_subplot(3, 1, 3, sharex=ax_f)
    for side, (_topic, st) in grf.items():
        if st is None:
            continue
        f = np.asarray(st["xyz"], dtype=float)
        t = _t(st["log_ns"], t0)
        for k, axis in enumerate("xyz"):
            ax_f.plot(t, f[:, k], lw=1, label=f"{side} F{axis}")
    ax_f.set_ylabel("GRF [N]")
    ax_f.set_title("ground reaction force and centre of pressure per foot (world frame, z up)")
    for side, (_topic, st) in cop.items():
        if st is None:
            continue
        p = np.asarray(st["xyz"], dtype=float)
        t = _t(st["log_ns"], t0)
        ax_x.plot(t, p[:, 0], ".", ms=2, label=f"{side} CoP x")
        ax_y.plot(t, p[:, 1], ".", ms=2, label=f"{side} CoP y")
    ax_x.set_ylabel("CoP x [m]")
    ax_y.set_ylabel("CoP y [m]")
    ax_y.set_xlabel("time [s]")
    for ax, what in ((ax_f, "GRF"), (ax_x, "CoP x"), (ax_y, "CoP y")):
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, **LEGEND_OUTSIDE)
        else:
            ax.text(0.5, 0.5, f"{what} {NOT_RECORDED}", transform=ax.transAxes, ha="center")
    return {"grf": ax_f, "cop_x": ax_x, "cop_y": ax_y}


def _grf_section(page: _Page, streams: dict[str, Any], t0: int) -> str:
    grf = {s: first_stream(streams, grf_topics("grf", s)) for s in SIDES}
    cop = {s: first_stream(streams, grf_topics("cop", s)) for s in SIDES}
    parts = []
    for s in SIDES:
        if grf[s][1] is None:
            parts.append(_missing(grf_topics("grf", s)))
        if cop[s][1] is None:
            parts.append(_missing(grf_topics("cop", s)))
    if all(g[1] is None for g in grf.values()) and all(c[1] is None for c in cop.values()):
        return "".join(parts)

    def draw(fig):
        draw_grf_cop(fig, grf, cop, t0)

    rows = []
    for s, (topic, st) in grf.items():
        if st is not None:
            f = np.asarray(st["xyz"], dtype=float)
            rows.append([topic, f"{np.nanmax(f[:, 2]):.1f}", f"{np.nanmin(f[:, 2]):.1f}", len(st["log_ns"])])
    return page.figure("grf_cop", draw, (9.5, 7.0)) + _table(["topic", "max Fz [N]", "min Fz [N]", "messages"], rows,
                                                             "small") + "".join(parts)


def _activation_section(page: _Page, streams: dict[str, Any], t0: int) -> str:
    out = []
    topic, st = first_stream(streams, ACTIVATION_TOPICS)
    if st is None:
        out.append(_missing(ACTIVATION_TOPICS))
    else:
        names, tns, a = joint_series(st, "effort")
        t = _t(tns, t0)

        def draw(fig):
            ax = fig.add_subplot(1, 1, 1)
            im = ax.imshow(a.T, aspect="auto", origin="lower", vmin=0.0, vmax=1.0, cmap="viridis",
                           extent=(t[0], t[-1] if t.size > 1 else t[0] + 1e-3, -0.5, len(names) - 0.5))
            ax.set_yticks(range(len(names)))
            ax.set_yticklabels(names, fontsize=7)
            ax.set_xlabel("time [s]")
            ax.set_title(f"muscle activation 0..1 ({topic})")
            fig.colorbar(im, ax=ax, label="activation")

        out.append(page.figure("activations", draw, (9.5, min(12.0, 0.9 + 0.22 * max(4, len(names))))))
    topic, st = first_stream(streams, SYNERGY_TOPICS)
    if st is None:
        out.append(_missing(SYNERGY_TOPICS))
    else:
        out.append(_joint_plot(page, "synergies", "synergy coefficients", SYNERGY_TOPICS, streams, t0, "effort", 1.0,
                               "coefficient"))
    return "".join(out)


def _torque_section(page: _Page, series: dict[str, Any], summary: dict[str, Any], t0: int) -> str:
    c, js = series["command"], series["joint_states"]
    if not c["log_ns"]:
        return _missing(["/exo/torque/command"])
    t = _t(c["log_ns"], t0)
    req, com = np.vstack(c["requested"]), np.vstack(c["commanded"])
    names = series["joint_names"]
    have_js = bool(js["log_ns"]) and len(js["effort"][0]) == com.shape[1]

    def draw(fig):
        axes = [fig.add_subplot(len(names), 1, j + 1) for j in range(len(names))]
        for j, (ax, n) in enumerate(zip(axes, names)):
            ax.plot(t, req[:, j], lw=0.8, color="0.6", label="requested")
            ax.plot(t, com[:, j], lw=1, label="commanded")
            if have_js:
                ax.plot(_t(js["log_ns"], t0), np.vstack(js["effort"])[:, j], lw=1, ls="--", label="delivered (measured)")
            ax.set_ylabel(f"{n} [N*m]")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7, **LEGEND_OUTSIDE)
        axes[-1].set_xlabel("time [s]")
        axes[0].set_title("torque: requested, commanded after safety, delivered by the drive")

    body = page.figure("torque_tracking", draw, (9.5, 2.6 * len(names) + 0.6))
    rows = []
    tq = summary.get("torque", {})
    for j, n in enumerate(names):
        rows.append([n, tq["peak_requested_nm"][j], tq["peak_commanded_nm"][j], tq["final_commanded_nm"][j]])
    body += _table(["joint", "peak requested [N*m]", "peak commanded [N*m]", "final commanded [N*m]"], rows, "small")
    if not have_js:
        body += _missing(["/exo/joint_states"])
    tt = summary.get("torque_tracking_nm")
    if tt:
        body += (f"<p>delivered versus commanded while ACTIVE (reply of cycle k+1 against the command of cycle k): "
                 f"|error| p50 {tt['p50']:.4f}, p99 {tt['p99']:.4f}, max {tt['max']:.4f} N*m, rms {tt['rms']:.4f} N*m</p>")
    return body


def _memory_text(rs: dict[str, Any]) -> str:
    """Peak memory from summary.json: ``peak_rss_mb`` (what the session writes: MB per process, each labelled with
    what it is, :mod:`runtime.report.memory`) or ``memory``."""
    mem = rs.get("peak_rss_mb")
    if isinstance(mem, dict) and mem:
        return "; ".join(memory_lines(mem))
    mem = rs.get("memory")
    if isinstance(mem, dict) and mem:
        return ", ".join(f"{k} {v}" for k, v in mem.items())
    return NOT_RECORDED


def _resources(run_summary: dict[str, Any] | None) -> str:
    """Peak memory and offline throughput, as the session recorded them in summary.json."""
    rs = run_summary or {}
    mem_text = html.escape(_memory_text(rs))
    off = rs.get("offline")
    if isinstance(off, dict) and off.get("fps") is not None:
        off_text = (f"{float(off['fps']):.1f} frames/s" +
                    (f" ({off['frames']} frames in {float(off['wall_s']):.2f} s)" if "frames" in off and "wall_s" in off
                     else ""))
    else:
        off_text = NOT_RECORDED
    return f"<p>peak memory: {mem_text}</p><p>offline throughput: {html.escape(off_text)}</p>"


def _latency_section(page: _Page, series: dict[str, Any], summary: dict[str, Any],
                     run_summary: dict[str, Any] | None = None) -> str:
    perf = summary["performance"]
    b = perf["budget_s"]
    body = []
    if perf["stages_s"]:
        rows = [[k, v["p50"] * 1e3, v["p99"] * 1e3, v["max"] * 1e3, f"{v['p99_share'] * 100:.1f} %", v["count"]]
                for k, v in perf["stages_s"].items()]
        rows.append(["sum of p99s", "", perf["stage_p99_sum_s"] * 1e3, "", f"{perf['stage_p99_sum_s'] / b * 100:.1f} %", ""])
        body.append(f"<p>stages from <code>{html.escape(perf['stage_source'])}</code>; frame budget "
                    f"{b * 1e3:.1f} ms (60 Hz)</p>")
        body.append(_table(["stage", "p50 [ms]", "p99 [ms]", "max [ms]", "p99 share of budget", "samples"], rows,
                           "latency"))
        if not any("pose" in k for k in perf["stages_s"]):
            body.append("<p class=\"missing\">no pose stage in this run's loop timing (pose computed ahead or in its "
                        "own process): the budget split below covers only the stages listed; the pose model's own "
                        "time per frame must be added to it.</p>")
        if perf["stage_p99_sum_s"] > b and perf["largest_stage_target_s"] <= 0:
            body.append(f"<p>budget split: the sum of stage p99s, {perf['stage_p99_sum_s'] * 1e3:.2f} ms, exceeds "
                        f"{b * 1e3:.1f} ms even without <b>{html.escape(perf['largest_stage'])}</b>: the stages "
                        f"together must lose {(perf['stage_p99_sum_s'] - b) * 1e3:.2f} ms, or run in parallel "
                        "(the vision front end has its own process).</p>")
        elif perf["stage_p99_sum_s"] > b:
            body.append(f"<p>budget split: the sum of stage p99s exceeds {b * 1e3:.1f} ms; with the other stages as "
                        f"measured, <b>{html.escape(perf['largest_stage'])}</b> must reach p99 &le; "
                        f"{perf['largest_stage_target_s'] * 1e3:.2f} ms (sum of p99s, a conservative bound).</p>")
        else:
            body.append(f"<p>budget split: the sum of stage p99s, {perf['stage_p99_sum_s'] * 1e3:.2f} ms, fits the "
                        f"{b * 1e3:.1f} ms budget with {(b - perf['stage_p99_sum_s']) * 1e3:.2f} ms to spare.</p>")
    else:
        body.append(_missing(["/exo/estimation/stage_latency", "/exo/estimation/timing stages"]))
    e = perf["end_to_end_s"]
    if e["count"]:
        body.append(f"<p class=\"e2e\">end to end, capture &rarr; CAN write: p50 {e['p50'] * 1e3:.2f} ms, "
                    f"p99 {e['p99'] * 1e3:.2f} ms, max {e['max'] * 1e3:.2f} ms over {e['count']} frames; "
                    f"<b>{perf['frames_over_budget']}</b> frames over budget; estimation loop missed deadlines: "
                    f"<b>{perf['missed_deadlines']}</b> (source: {html.escape(perf['end_to_end_source'])})</p>")
    else:
        body.append(_missing(["end-to-end latency (/exo/torque/command ages)"]))
    vision = (run_summary or {}).get("vision_live")
    if vision:
        from runtime.report.vision_live import format_live_vision

        body.append("<p class=\"vision\">" + "<br>".join(html.escape(x.strip()) for x in format_live_vision(vision))
                    + "</p>")
    if perf["stages_s"] or e["count"]:
        from runtime.report.summary import first_write_ages

        def draw(fig):
            ax1 = fig.add_subplot(1, 2, 1)
            names = list(perf["stages_s"])
            p50 = [perf["stages_s"][k]["p50"] * 1e3 for k in names]
            p99 = [perf["stages_s"][k]["p99"] * 1e3 for k in names]
            left50 = np.concatenate([[0.0], np.cumsum(p50)[:-1]]) if names else []
            left99 = np.concatenate([[0.0], np.cumsum(p99)[:-1]]) if names else []
            for i, k in enumerate(names):
                ax1.barh(1, p50[i], left=left50[i], label=k)
                ax1.barh(0, p99[i], left=left99[i], color=ax1.patches[-1].get_facecolor())
            ax1.axvline(b * 1e3, color="r", ls="--", label=f"budget {b * 1e3:.1f} ms")
            ax1.set_yticks([0, 1])
            ax1.set_yticklabels(["p99", "p50"])
            ax1.set_xlabel("stage time, stacked [ms]")
            ax1.set_title("budget split")
            ax1.legend(fontsize=6, **LEGEND_OUTSIDE)
            ax2 = fig.add_subplot(1, 2, 2)
            ages = series["command"].get("age_s", [])
            e2e = np.asarray(series.get("stage_latency", {}).get("stage:capture_to_can_write", []) or
                             first_write_ages(ages), dtype=float)
            if e2e.size:
                ax2.plot(np.arange(e2e.size), e2e * 1e3, ".", ms=2)
            ax2.axhline(b * 1e3, color="r", ls="--")
            ax2.set_xlabel("frame")
            ax2.set_ylabel("capture -> CAN write [ms]")
            ax2.set_title("end-to-end latency per frame")
            ax2.grid(True, alpha=0.3)

        body.append(page.figure("stage_latency", draw, (10, 3.4)))
    body.append(_resources(run_summary))
    loops = summary["loops"]
    rows = [[n, lp["rate_hz"], lp["cycles"], lp["expected_cycles"], lp["missed"], lp["lateness_s"]["p50"] * 1e3,
             lp["lateness_s"]["p99"] * 1e3, lp["lateness_s"]["max"] * 1e3, lp["duration_s"]["p99"] * 1e3]
            for n, lp in loops.items()]
    body.append("<h3>loops</h3>" + _table(["loop", "rate [Hz]", "cycles", "expected", "missed", "late p50 [ms]",
                                          "late p99 [ms]", "late max [ms]", "duration p99 [ms]"], rows, "small"))
    if "command_age_s" in summary:
        a = summary["command_age_s"]
        body.append(f"<p>command age at every bus write (held between frames): p50 {a['p50'] * 1e3:.2f} ms, "
                    f"p99 {a['p99'] * 1e3:.2f} ms, max {a['max'] * 1e3:.2f} ms</p>")
    if "can" in summary:
        cs = summary["can"]
        lat = cs["command_to_reply_s"]
        body.append(f"<p>CAN: {cs['frames_tx']} frames sent, {cs['frames_rx']} received, {cs['error_frames']} error "
                    f"frames; command &rarr; reply p50 {lat['p50'] * 1e3:.3f} ms, p99 {lat['p99'] * 1e3:.3f} ms</p>")
    return "".join(body)


_STATE_LEVEL = {"ACTIVE": 2, "FADING": 1, "SAFE": 0}


def _confidence_section(page: _Page, streams: dict[str, Any], summary: dict[str, Any], t0: int) -> str:
    """The confidence trace with its parts, and a table of each envelope with the fraction of frames outside it
    (``summary["confidence"]``, :func:`runtime.report.summary.confidence_summary`)."""
    from runtime.report.summary import CONFIDENCE_TOPIC

    conf = summary.get("confidence")
    st = streams.get(CONFIDENCE_TOPIC)
    if conf is None or st is None:
        return _missing([CONFIDENCE_TOPIC])
    names, tns, vals = joint_series(st, "effort")
    t = _t(tns, t0)

    def draw(fig):
        ax = fig.add_subplot(1, 1, 1)
        for j, n in enumerate(names[1:], start=1):
            ax.plot(t, vals[:, j], lw=0.8, alpha=0.7, label=n)
        ax.plot(t, vals[:, 0], color="black", lw=2.0, label="confidence")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("time [s]")
        ax.set_ylabel("confidence [0..1]")
        ax.set_title(f"confidence and its parts ({CONFIDENCE_TOPIC})")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, **LEGEND_OUTSIDE)

    from models.confidence import ENVELOPES

    body = [page.figure("confidence", draw, (9.5, 3.6)),
            f"<p>mean confidence {conf['mean']:.3f}; {100 * conf['fraction_below']:.1f} % of {conf['frames']} frames "
            f"below {conf['threshold']:g}</p>"]
    rows = []
    for name, e in conf["envelopes"].items():
        env = ENVELOPES.get(name)
        bound = f"{env.lower:g} .. {env.upper:g} {env.unit}" if env is not None else "n/a"
        rows.append([name, bound, f"{100 * e['fraction_outside']:.1f} %",
                     "IMPLAUSIBLE" if e["implausible"] else "inside", env.source if env is not None else ""])
    body.append(_table(["envelope", "range", "frames outside", "flag", "source"], rows, "small"))
    low = [[k, f"{100 * v:.1f} %", f"{conf['part_mean'][k]:.3f}"] for k, v in conf["lowest_part_fraction"].items()]
    body.append(_table(["part", "lowest on (frames with confidence < 1)", "mean"], low, "small"))
    return "".join(body)


def _assistance_fades_section(summary: dict[str, Any], run_summary: dict[str, Any] | None) -> str:
    """The assistance stage's confidence fades (with the part that fell), restorations and strategy fallbacks (with
    the reason, e.g. the gait phase did not lock), from ``/exo/assistance/events``; the counts from summary.json."""
    events = summary.get("assistance_events", [])
    stage = ((run_summary or {}).get("stages") or {}).get("assistance")
    body = []
    if isinstance(stage, dict) and "confidence_fades" in stage:
        body.append(f"<p>strategy {html.escape(str(stage.get('strategy')))}, fallback "
                    f"{html.escape(str(stage.get('fallback')))}, running at the end "
                    f"{html.escape(str(stage.get('running_at_end')))}; {stage['confidence_fades']} confidence fades "
                    f"(by part: {html.escape(json.dumps(stage.get('confidence_fades_by_part', {})))}), "
                    f"{stage.get('confidence_restored', 0)} restorations</p>")
        for why in stage.get("strategy_fallbacks", []):
            body.append(f"<p>fallback: {html.escape(str(why))}</p>")
        gate = stage.get("gate") or {}
        if gate and gate.get("cycles"):
            held = f"the confidence did not hold at or above {gate['full_above']:g} for {gate['hold_s']:g} s"
            closed = f"gate closed on {100.0 * gate['closed_fraction']:.0f} % of {gate['cycles']} cycles"
            if gate["closed_fraction"] == 1.0:
                body.append(f"<p>the confidence gate never opened: {held}; no assistance was commanded ({closed})</p>")
            elif not stage.get("confidence_restored"):
                body.append(f"<p>the confidence gate never reached full scale: every ramp up was cut by a fade "
                            f"({closed})</p>")
            else:
                body.append(f"<p>{closed}</p>")
    if events:
        rows = [[f"{e['t_s']:.3f}", e["kind"], f"{e['value']:.3g}", e["detail"]] for e in events]
        body.append(_table(["t [s]", "event", "value", "part: reason"], rows, "fades"))
    elif stage is not None:
        body.append('<p class="ok">no assistance fades: the confidence held</p>')
    else:
        body.append(_missing(["/exo/assistance/events"]))
    return "".join(body)


def _fault_section(page: _Page, series: dict[str, Any], summary: dict[str, Any], t0: int) -> str:
    events = [e for e in summary["events"] if e["source"] != "assistance"]   # those are in "Assistance fades"
    c = series["command"]
    body = []
    if c["log_ns"]:
        t = _t(c["log_ns"], t0)
        levels = np.asarray([_STATE_LEVEL.get(str(s).upper(), -1) for s in c["state"]], dtype=float)
        ev_t = [(e["log_ns"] - t0) * 1e-9 for e in events]

        def draw(fig):
            ax = fig.add_subplot(1, 1, 1)
            ax.step(t, levels, where="post", lw=1.2, label="safety state")
            gain_ax = ax.twinx()
            gain_ax.plot(t, np.asarray(c["fade_gain"], dtype=float), lw=0.8, color="tab:green", label="fade gain")
            gain_ax.set_ylim(-0.65, 1.8)
            gain_ax.set_ylabel("fade gain", color="tab:green")
            for e, te in zip(events, ev_t):
                ax.axvline(te, color="r" if e["latched"] else "orange", lw=1)
                ax.annotate(f"{e['source']}: {e['kind']}", (te, 2.1), fontsize=7, rotation=90, va="bottom")
            ax.set_yticks([-1, 0, 1, 2])
            ax.set_yticklabels(["other", "SAFE", "FADING", "ACTIVE"])
            ax.set_ylim(-1.3, 3.6)
            ax.set_xlabel("time [s]")
            ax.set_title("safety state, fade gain and faults (red: latched)")
            ax.grid(True, alpha=0.3)
            handles = ax.get_legend_handles_labels()[0] + gain_ax.get_legend_handles_labels()[0]
            ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.08, 1.0), borderaxespad=0.0)

        body.append(page.figure("faults_timeline", draw, (9.5, 3.0)))
    if events:
        rows = [[f"{e['t_s']:.3f}", e["source"], e["kind"], f"{e['value']:.4g}", "yes" if e["latched"] else "no",
                 e["detail"]] for e in events]
        body.append(_table(["t [s]", "source", "kind", "value", "latched", "detail"], rows, "faults"))
    else:
        body.append('<p class="ok">faults: none recorded</p>')
    return "".join(body)


def _metadata_section(series: dict[str, Any], summary: dict[str, Any], run_summary: dict[str, Any] | None) -> str:
    rows: list[list[Any]] = [["log", summary["log"]], ["log complete", "no (recovered)" if summary["recovered"] else "yes"]]
    if run_summary is None:
        rows.append(["summary.json", NOT_RECORDED])
    else:
        for key in ("pipeline", "exit_reason", "config", "versions", "providers", "fallbacks", "stages", "realtime",
                    "telemetry", "plant", "errors", "offline"):
            v = run_summary.get(key)
            rows.append([key, NOT_RECORDED if v is None and key != "plant" else v])
    rows.append(["peak memory", _memory_text(run_summary or {})])

    def value_cell(v: Any) -> str:
        text = v if isinstance(v, str) else json.dumps(v, default=str)
        if len(text) <= 160:
            return html.escape(text)
        pretty = text if isinstance(v, str) else json.dumps(v, default=str, indent=1)
        return f"<details><summary>{html.escape(text[:120])} ...</summary><pre>{html.escape(pretty)}</pre></details>"

    body = ('<table class="meta"><thead><tr><th>item</th><th>value</th></tr></thead><tbody>' +
            "".join(f"<tr><td>{html.escape(str(k))}</td><td>{value_cell(v)}</td></tr>" for k, v in rows) +
            "</tbody></table>")
    counts = series.get("topic_counts", {})
    body += "<h3>topics</h3>" + _table(["topic", "messages"], [[k, v] for k, v in sorted(counts.items())], "small")
    return body


_CSS = """
body{font-family:sans-serif;margin:1.5em auto;max-width:1100px;color:#222;background:#fff}
h1{font-size:1.5em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em} td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;overflow-wrap:anywhere}
th{background:#f0f0f0} img{max-width:100%;display:block;margin:.4em 0} .missing{color:#a60;font-style:italic}
figure{margin:.6em 0} figcaption{font-size:.85em;color:#444}
.ok{color:#070} code{background:#f4f4f4} nav a{margin-right:.8em} td:first-child{white-space:nowrap}
pre{white-space:pre-wrap;font-size:.9em;max-height:30em;overflow:auto}
"""


def build_html(run: str | Path, plot_dir: Path | None = None,
               series: dict[str, Any] | None = None,
               trend_dir: str | Path | None = None) -> tuple[str, list[Path], dict[str, Any]]:
    """(page text, PNG paths, summary dict) for the run at *run*; PNGs go to *plot_dir* (default ``<run>/plots``).
    *series*: the run's ``load_series`` result when the caller already has it (read once). *trend_dir*: the folder
    ``exo trend --out`` wrote for this subject; the page links its plots (relative links, not embedded)."""
    run_dir = run_dir_of(run)
    series = series if series is not None else load_series(run)
    summary = summarize_log(run, series)
    plot_dir = Path(plot_dir) if plot_dir is not None else run_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    summary_path = run_dir / "summary.json"
    run_summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    t0 = series["first_log_ns"] or 0
    streams = series["streams"]
    page = _Page(plot_dir)
    page.section("Run", _metadata_section(series, summary, run_summary), "run")
    page.section("Latency and performance", _latency_section(page, series, summary, run_summary),
                 "latency")
    page.section("Joint angles", _joint_plot(page, "joint_angles", "joint angles", ANGLE_TOPICS, streams, t0,
                                             "position", 180.0 / math.pi, "angle [deg]"), "angles")
    page.section("Ground reaction force and centre of pressure", _grf_section(page, streams, t0), "grf")
    page.section("Knee adduction and extension moments", _joint_plot(
        page, "knee_moments", "KAM / KEM", KNEE_MOMENT_TOPICS, streams, t0, "effort", 1.0, "moment [%BW*ht]"), "kam")
    page.section("Muscle activations and synergies", _activation_section(page, streams, t0), "muscles")
    page.section("Knee contact force", _joint_plot(page, "kcf", "medial / lateral knee contact force", KCF_TOPICS,
                                                   streams, t0, "effort", 1.0, "force [N]"), "kcf")
    page.section("Confidence and physiological envelopes", _confidence_section(page, streams, summary, t0),
                 "confidence")
    page.section("Torque: commanded and delivered", _torque_section(page, series, summary, t0), "torque")
    page.section("Faults and their timeline", _fault_section(page, series, summary, t0), "faults")
    page.section("Assistance fades", _assistance_fades_section(summary, run_summary), "fades")
    # whatever else the run wrote into plots/ (exo run/demo: latency, torque, command age): every PNG is shown
    page.section("Other plots of this run", _other_plots_section(page, [run_dir / "plots", plot_dir]), "plots")
    anchors = ["run", "latency", "angles", "grf", "kam", "muscles", "kcf", "confidence", "torque", "faults", "fades",
               "plots"]
    if trend_dir is not None:
        page.section("Clinical trends of this subject", _trend_links(Path(trend_dir), plot_dir.parent), "trends")
        anchors.append("trends")
    nav = " ".join(f'<a href="#{a}">{a}</a>' for a in anchors)
    title = f"exo run report: {html.escape(run_dir.name)}"
    doc = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
           f"<style>{_CSS}</style></head>\n<body><h1>{title}</h1><nav>{nav}</nav>\n" + "\n".join(page.sections) +
           f"\n<p class=\"foot\">frame budget {FRAME_BUDGET_S * 1e3:.1f} ms; written by runtime/report/html.py</p>"
           "</body></html>\n")
    return doc, page.pngs + page.other_pngs, summary


def _trend_links(trend_dir: Path, page_dir: Path) -> str:
    """Links to the per-metric trend plots of ``exo trend --out trend_dir`` (relative to the page's folder)."""
    import os

    if not trend_dir.is_dir():
        raise FileNotFoundError(f"trend_dir = {str(trend_dir)!r}: no such folder (write it with exo trend --out)")
    pngs = sorted(trend_dir.glob("*.png"))
    if not pngs:
        return f"<p class=\"missing\">no trend plots in {html.escape(str(trend_dir))}</p>"
    items = "".join(f'<li><a href="{html.escape(os.path.relpath(p, page_dir))}">{html.escape(p.stem)}</a></li>'
                    for p in pngs)
    return (f"<p>Each metric of this subject over sessions, with its normal range and flags "
            f"(<code>exo trend</code>, {len(pngs)} plots):</p><ul>{items}</ul>")


def write_html_report(run: str | Path, out: str | Path | None = None, series: dict[str, Any] | None = None,
                      trend_dir: str | Path | None = None) -> Path:
    """Write ``<run>/report.html`` (or *out*) and its PNGs in ``plots/`` beside it; returns the page's path.
    *trend_dir*: link the subject's ``exo trend`` plots (see :func:`build_html`)."""
    run_dir = run_dir_of(run)
    out_path = Path(out) if out is not None else run_dir / "report.html"
    doc, _pngs, _summary = build_html(run, out_path.parent / "plots", series, trend_dir)
    tmp = out_path.with_suffix(".html.tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(out_path)
    return out_path

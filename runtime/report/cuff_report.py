"""The side-by-side HTML page of an ``exo hil`` comparison (``hil/scenarios/cuff.yaml``, :mod:`runtime.hil_compare`).

One self-contained page (no script, no external URL; the plot embedded as a base64 PNG): a table with one column per
leg (plant model, tissue compensation, delivered-versus-desired RMSE and r, tissue energy per stride, missed 500 Hz
deadlines and lateness, CAN command-to-reply latency, the plant's missed 1 kHz ticks), the scenario's checks, and
desired versus delivered torque over the last 3 s of each leg.
"""
from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

_ROWS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("plant", ("plant_model",), "{}"),
    ("tissue compensation", ("tissue_compensation",), "{}"),
    ("delivered vs desired RMSE (N*m)", ("tracking", "rmse_nm"), "{:.4f}"),
    ("delivered vs desired r", ("tracking", "r"), "{:.5f}"),
    ("max |error| (N*m)", ("tracking", "max_abs_error_nm"), "{:.3f}"),
    ("desired RMS (N*m)", ("tracking", "desired_rms_nm"), "{:.3f}"),
    ("tissue energy absorbed per stride (J)", ("tracking", "energy_absorbed_j_per_stride"), "{:.4f}"),
    ("scored (s)", ("tracking", "scored_s"), "{:.1f}"),
    ("torque loop 500 Hz: cycles", ("torque_loop", "cycles"), "{}"),
    ("torque loop 500 Hz: missed deadlines", ("torque_loop", "missed"), "{}"),
    ("torque loop wake-up lateness p99 (ms)", ("torque_loop", "lateness_p99_ms"), "{:.3f}"),
    ("CAN command -> reply p50 (ms)", ("can_command_to_reply_ms", "p50"), "{:.3f}"),
    ("CAN command -> reply p99 (ms)", ("can_command_to_reply_ms", "p99"), "{:.3f}"),
    ("plant 1 kHz: ticks", ("plant", "ticks"), "{}"),
    ("plant 1 kHz: missed ticks", ("plant", "missed_ticks"), "{}"),
    ("plant 1 kHz: missed ticks (%)", ("plant", "missed_ticks_pct"), "{:.3f}"),
    ("plant tick lateness p99 (us)", ("plant", "lateness_p99_us"), "{:.0f}"),
    ("plant tick cost p99 (us)", ("plant", "step_cost_p99_us"), "{:.0f}"),
    ("compensator knee source (cycles)", ("knee_source_cycles",), "{}"),
    ("latched faults", ("faults",), "{}"),
)


def _get(d: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "&ndash;"
    if isinstance(value, dict):
        return html.escape(", ".join(f"{k} {v}" for k, v in value.items()))
    if isinstance(value, list):
        return html.escape("; ".join(map(str, value)) or "none")
    try:
        return html.escape(fmt.format(value))
    except (ValueError, TypeError):
        return html.escape(str(value))


def _plot_png(plots: Mapping[str, Mapping[str, np.ndarray]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(plots), 1, figsize=(10, 2.6 * len(plots)), sharex=False, squeeze=False)
    for ax, (name, p) in zip(axes[:, 0], plots.items()):
        ax.plot(p["t_s"], p["desired_nm"], "k", lw=1.4, label="desired (torque-loop input)")
        ax.plot(p["t_s"], p["delivered_nm"], "C3", lw=0.9, label="delivered to the leg")
        ax.set_title(name, fontsize=10)
        ax.set_ylabel("N*m")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("s (scored time)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_cuff_report(doc: Mapping[str, Any], plots: Mapping[str, Mapping[str, np.ndarray]], path: Path) -> Path:
    """Write the page to ``path``; ``doc``: :func:`runtime.hil_compare.run_legs`' document, ``plots``: per leg
    ``t_s``, ``desired_nm``, ``delivered_nm`` arrays."""
    legs = doc["legs"]
    names = list(legs)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for label, key, fmt in _ROWS:
        cells = "".join(f"<td>{_cell(_get(legs[n], key), fmt)}</td>" for n in names)
        rows.append(f"<tr><th scope='row'>{html.escape(label)}</th>{cells}</tr>")
    for n in names:
        if "error" in legs[n]:
            rows.append(f"<tr><th scope='row'>error ({html.escape(n)})</th><td colspan='{len(names)}'>"
                        f"{html.escape(legs[n]['error'])}</td></tr>")
    checks = []
    for k, v in doc.get("checks", {}).items():
        if isinstance(v, dict):
            val = v["value"]
            shown = f"{val:.4g}" if isinstance(val, float) else str(val)
            checks.append(f"<li class='{'ok' if v['ok'] else 'fail'}'>{html.escape(k)}: {html.escape(shown)} "
                          f"(limit {html.escape(str(v['limit']))}) &mdash; {'pass' if v['ok'] else 'FAIL'}</li>")
    sc = doc.get("scenario", {})
    figure = (f"<figure><img alt='tracking' src='data:image/png;base64,{_plot_png(plots)}'><figcaption>Desired "
              "versus delivered knee torque, last 3 s of each leg.</figcaption></figure>") if plots else ""
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>HIL comparison: {html.escape(str(sc.get('name', '')))}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:.3em .6em;text-align:right}}th[scope=row]{{text-align:left}}
.ok{{color:#075}}.fail{{color:#b00;font-weight:bold}}img{{max-width:100%}}</style></head><body>
<h1>HIL comparison: {html.escape(str(sc.get('name', '')))}</h1>
<p>{html.escape(str(sc.get('duration_s')))} s per leg, first {html.escape(str(sc.get('discard_s')))} s not scored;
estimation input {html.escape(str(sc.get('replay') or 'synthetic'))}; compensator knee angle from the
{html.escape(str(sc.get('compensator_knee')))}. Real time: the plant process at
{html.escape(str(_get(sc, ('plant', 'rate_hz'))))} Hz beside the 500 Hz torque process, over CAN frames.</p>
<table><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>
<h2>Checks</h2><ul>{''.join(checks)}</ul>
{figure}
</body></html>
"""
    path = Path(path)
    path.write_text(page)
    return path

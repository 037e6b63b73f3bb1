"""``exo neuro --out DIR``: muscle synergies, activations against EMG, and knee contact force against the implant.

For each GC5 PS trial (measured plates, left knee): our chain's static optimisation (``analyze_trial`` with
``muscles=True``), the synergy-constrained solve with the versioned W (``models/artifacts/synergies_myoleg_v2``),
the 16 EMG channels of the trial's ``.c3d`` (``models.muscles.emg``), and the knee contact force against the eTibia implant.
Writes into ``DIR``:

* ``vaf_table.csv``: k = 1..10, VAF of the stored W's build (its provenance) and VAF recomputed on this run's
  activations of the analysed trials;
* ``plots/activation_vs_emg_<trial>.png``: per EMG channel the normalised envelope with the unconstrained and the
  synergy-constrained activation of the mapped muscles, over the trial window (% of the gait cycle);
* ``plots/kcf_<trial>.png``: medial, lateral and total contact force (BW) against the in-vivo curves;
* ``neuro.json``: every figure with its anchor (KCF: OpenSim SO + JR and the Grand Challenge; VAF: the literature).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from runtime.cli.exit_codes import EXIT_OK, EXIT_USAGE

PS_TRIALS = ("PS_ss1", "PS_ss3", "PS_ss8")
VAF_ANCHORS = {"issue_literature": "K = 5-8 synergies explain > 90 % of EMG variance",
               "clark_2010": "4-5 synergies at VAF >= 0.90 in healthy walking, from EMG (J Neurophysiol 103:844)"}
EMG_NOTE = ("EMG leads force by the electromechanical delay (about 50-100 ms), which static optimisation ignores: "
            "a positive lag of that size (activation later than EMG) is expected")


def _plot_emg(path: Path, name: str, emg: dict, flat: list, act101: dict, threshold: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = list(emg)
    fig, axes = plt.subplots(4, 4, figsize=(16, 12), sharex=True)
    x = np.linspace(0, 100, len(emg[labels[0]]))
    for ax, label in zip(axes.ravel(), labels):
        ax.plot(x, emg[label], color="k", lw=1.5, label="EMG envelope (peak = 1)")
        for key, style in (("so", "-"), ("synergy", "--")):
            if label in act101[key]:
                a = act101[key][label]
                peak = float(a.max())
                ax.plot(x, a / peak if peak > 0 else a, style, lw=1.2,
                        label=f"activation, {key} (/ its peak)")
                if peak > 0:
                    ax.text(0.99, 0.97 - 0.08 * (key == "synergy"), f"{key} peak a = {peak:.2f}",
                            transform=ax.transAxes, ha="right", va="top", fontsize=7)
        ax.set_title(label + ("  (no signal)" if label in flat else ""), fontsize=9)
        ax.set_ylim(0, 1.05)
    for ax in axes[-1]:
        ax.set_xlabel("% of trial (one left gait cycle)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{name}: EMG envelopes (20-450 Hz band-pass, rectified, 6 Hz low-pass) vs model activations; "
                 f"on/off threshold {threshold:g} of each curve's range")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_kcf(path: Path, name: str, kc, ref: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    t = kc.time_s
    pct = (t - t[0]) / (t[-1] - t[0]) * 100.0
    bw = kc.body_weight_n
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    for ax, (key, ours, col) in zip(axes, (("medial", kc.medial_n, "F_medial"), ("lateral", kc.lateral_n, "F_lateral"),
                                           ("total", kc.total_n, "F_total_magnitude"))):
        ax.plot(pct, ours / bw, label="ours (measured plates, our SO)")
        ax.plot(ref["gait_cycle_pct"], np.asarray(ref[col]) / bw, "k", label="in vivo (eTibia)")
        ax.set_title(f"{key} contact force")
        ax.set_xlabel("% of trial (one left gait cycle)")
    axes[0].set_ylabel("force (body weights)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{name}: tibiofemoral contact force, left knee")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _one_trial(trial, syn, out: Path, threshold: float) -> tuple[dict, object]:
    import numpy as np

    from models.muscles.emg import compare_activations_with_emg, emg_window_101, model_activation_for, resample_window
    from models.muscles.knee_contact import (knee_contact_from_analysis, quadriceps_hamstrings_cocontraction, read_in_vivo,
                                     validate_against_in_vivo)
    from models.muscles.static_optimization import SOParams, StaticOptimization
    from models.muscles.synergies import block_synergy_matrix, leg_activations, synergy_activations
    from models.trial_analysis import AnalyzeParams, analyze_trial, trial_kinematics

    t0 = time.perf_counter()
    params = AnalyzeParams(trial.mass_kg, trial.height_m, trial.side, muscles=True)  # type: ignore[arg-type]
    kin = trial_kinematics(trial.trc, trial.markerset, params)
    res = analyze_trial(trial.trc, trial.markerset, params, grf_path=trial.grf, kin=kin)
    so_tr = res.muscles
    so = StaticOptimization(kin.model, SOParams())
    Wb = block_synergy_matrix(syn.W, syn.muscle_names, so.muscle_names)
    act_syn = synergy_activations(so, kin.mapped.qpos, kin.mapped.qvel, res.moments_nm, Wb)[0]
    t = res.time_s
    c3d = Path(trial.trc).parents[1] / "c3d" / (Path(trial.trc).stem + ".c3d")
    emg, flat = emg_window_101(c3d, trial.trc, float(t[-1] - t[0]))
    acts = {"so": so_tr.activation, "synergy": act_syn}
    timing = compare_activations_with_emg(emg, flat, t, acts, so.muscle_names, trial.side, threshold)
    act101 = {k: {lab: resample_window(t, model_activation_for(lab, A, so.muscle_names, trial.side), t[0], t[-1], 101)
                  for lab in emg} for k, A in acts.items()}
    kc = knee_contact_from_analysis(kin, res)
    kcf = validate_against_in_vivo(kc, trial.kcf_ref)
    cci = quadriceps_hamstrings_cocontraction(so_tr.activation, so.muscle_names, trial.side)
    cci_syn = quadriceps_hamstrings_cocontraction(act_syn, so.muscle_names, trial.side)
    plots = out / "plots"
    _plot_emg(plots / f"activation_vs_emg_{trial.name}.png", trial.name, emg, flat, act101, threshold)
    _plot_kcf(plots / f"kcf_{trial.name}.png", trial.name, kc, read_in_vivo(trial.kcf_ref))
    leg, _ = leg_activations(so_tr.activation, so.muscle_names, trial.side)
    fig = {"trial": trial.name, "frames": int(t.size), "window_s": float(t[-1] - t[0]),
           "knee_contact_force_vs_in_vivo": kcf, "emg_flat_channels": flat,
           "emg_timing": timing, "cocontraction_index_mean": {"so": float(np.mean(cci)), "synergy": float(np.mean(cci_syn))},
           "notes": res.notes, "seconds": time.perf_counter() - t0}
    return fig, leg


def cmd_neuro(args) -> int:
    import numpy as np

    from models.muscles.synergies import ARTIFACT_PATH, load_synergies, vaf_table
    from runtime.cli.doctor import shared_data_dir
    from models.io.shared_trials import shared_trials
    from runtime.estimation.validate import ANCHORS

    if not 0 < args.threshold < 1:
        print(f"exo neuro: --threshold = {args.threshold}: allowed (0, 1)", file=sys.stderr)
        return EXIT_USAGE
    data = Path(args.data) if args.data else shared_data_dir()
    names = [s.strip() for s in args.trials.split(",") if s.strip()]
    known = {t.name: t for t in shared_trials(data)}
    for n in names:
        if n not in PS_TRIALS:
            print(f"exo neuro: --trials: {n!r} is not a trial with EMG and in-vivo forces; allowed {list(PS_TRIALS)}",
                  file=sys.stderr)
            return EXIT_USAGE
        if not Path(known[n].trc).exists():
            print(f"exo neuro: --data = {str(data)!r}: {known[n].trc} not found", file=sys.stderr)
            return EXIT_USAGE
    out = Path(args.out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    syn = load_synergies(Path(args.synergies) if args.synergies else ARTIFACT_PATH)
    figures, legs = [], []
    for n in names:
        print(f"{n} ...", flush=True)
        f, leg = _one_trial(known[n], syn, out, args.threshold)
        figures.append(f)
        legs.append(leg)
        k = f["knee_contact_force_vs_in_vivo"]
        m = f["emg_timing"]
        print(f"  KCF RMSE total/medial/lateral {k['total']['rmse_bw']:.2f}/{k['medial']['rmse_bw']:.2f}/"
              f"{k['lateral']['rmse_bw']:.2f} BW, R2 {k['total']['r2']:.2f}/{k['medial']['r2']:.2f}/{k['lateral']['r2']:.2f}; "
              f"EMG on/off agreement SO {m['so']['mean']['agreement_pct']:.0f} %, synergy "
              f"{m['synergy']['mean']['agreement_pct']:.0f} %", flush=True)
    stored = {int(k): float(v) for k, v in (syn.provenance.get("vaf_table") or {}).items()}
    recomputed = vaf_table(legs, ks=tuple(range(1, 11)), restarts=3) if len(legs) else {}
    with open(out / "vaf_table.csv", "w", encoding="utf-8") as fh:
        fh.write("k,vaf_stored_w_build,vaf_this_run\n")
        for k in range(1, 11):
            fh.write(f"{k},{stored.get(k, float('nan')):.4f},{recomputed.get(k, float('nan')):.4f}\n")

    def mean(path):
        vals = []
        for f in figures:
            x = f
            for p in path:
                x = x[p]
            vals.append(x)
        return float(np.mean(vals))

    doc = {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "data": str(data),
           "synergies": {"artifact": str(Path(args.synergies) if args.synergies else ARTIFACT_PATH), "k": syn.k,
                         "vaf_stored": stored, "vaf_this_run": recomputed,
                         "vaf_this_run_trials": names, "anchors": VAF_ANCHORS},
           "mean": {"knee_contact_force_vs_in_vivo": {f"{c}_{s}": mean(("knee_contact_force_vs_in_vivo", c, s))
                                                      for c in ("total", "medial", "lateral") for s in ("rmse_bw", "r2")},
                    "emg_agreement_pct": {k: mean(("emg_timing", k, "mean", "agreement_pct")) for k in ("so", "synergy")},
                    "emg_lag_ms": {k: mean(("emg_timing", k, "mean", "lag_ms")) for k in ("so", "synergy")},
                    "emg_abs_lag_ms": {k: mean(("emg_timing", k, "mean", "abs_lag_ms")) for k in ("so", "synergy")},
                    "emg_xcorr_r": {k: mean(("emg_timing", k, "mean", "xcorr_r")) for k in ("so", "synergy")}},
           "anchors": {"knee_contact_force": ANCHORS["knee_contact_force"], "emg_timing": EMG_NOTE},
           "trials": figures}
    tmp = out / "neuro.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, default=float))
    tmp.replace(out / "neuro.json")
    print("VAF k=1..10 (stored W build): " + " ".join(f"{stored.get(k, float('nan')):.2f}" for k in range(1, 11)))
    print("VAF k=1..10 (this run):       " + " ".join(f"{recomputed.get(k, float('nan')):.2f}" for k in range(1, 11)))
    print(json.dumps(doc["mean"], indent=2))
    print(f"wrote {out / 'neuro.json'}, {out / 'vaf_table.csv'}, {out / 'plots'}/*.png")
    return EXIT_OK


def register(subparsers) -> None:
    p = subparsers.add_parser("neuro", help="synergy VAF table, activations vs EMG, knee contact force vs the implant",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="example (one trial; the default is all three):\n  exo neuro --trials PS_ss1 --out runs/neuro")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--data", default=None, help="shared data folder (default $EXO_SHARED_DATA or ../shared/data)")
    p.add_argument("--trials", default=",".join(PS_TRIALS), help=f"comma list from {', '.join(PS_TRIALS)}")
    p.add_argument("--threshold", type=float, default=0.25,
                   help="on/off threshold, fraction of each curve's range over the window (default 0.25)")
    p.add_argument("--synergies", default=None, help="synergy artifact .npz (default the versioned MyoLeg W)")
    p.set_defaults(fn=cmd_neuro)

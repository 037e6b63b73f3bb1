"""``exo tissue``: the soft-tissue cuff model, its compensator artifact and the HIL validation.

* ``exo tissue calibrate [--out PATH] [--quick]``: runs the flexcomp bench (``models.tissue.soft_tissue``) over the
  default gait frequencies and loads, fits the interface surrogate and writes the versioned artifact
  (default ``models/artifacts/tissue_compensator_v1.json``) with its provenance.
* ``exo tissue validate --out DIR [--scenario YAML] [--artifact PATH] [--quick]``: the HIL cuff scenario
  (``hil.cuff_validation``) without and with compensation; writes ``DIR/tissue_validation.json``,
  ``DIR/plots/tracking.png``, ``DIR/plots/pressure_map.png`` (bench statics at the run's peak torque, fine
  mesh: the hotspots) and ``DIR/plots/pressure_map_hil.png`` (in the run, at the mesh's resolution) and
  prints the figures.

* ``exo tissue fit-plant [--out PATH] [--quick] [--seconds S]``: flexcomp runs of the seated knee under open-loop
  torques, the reduced-order cuff plant fitted to them (``hil.cuff_rom``: polynomial backbone, viscous, Maxwell
  branch) and its error on a held-out run; writes the real-time HIL plant's artefact (default
  ``hil/artifacts/cuff_rom_v1.json``).

``--quick`` uses a coarse tissue grid (3 x 3 x 2 vertices per block): minutes become seconds, figures move.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runtime.cli.arguments import positive_seconds
from runtime.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

DEFAULT_SCENARIO = Path(__file__).resolve().parents[3] / "hil" / "scenarios" / "cuff_gait.yaml"


def _tissue(quick: bool):
    from models.tissue.soft_tissue import CuffTissueParams

    return CuffTissueParams(count_posterior=(3, 3, 2), count_anterior=(3, 3, 2)) if quick else CuffTissueParams()


def cmd_calibrate(args) -> int:
    from controllers.tissue_compensator import ARTIFACT_PATH, calibrate, save_artifact

    if not (0.2 <= args.seconds_per_case <= 60.0):
        raise ValueError(f"--seconds-per-case = {args.seconds_per_case!r}: allowed 0.2..60 s")
    sur, prov = calibrate(_tissue(args.quick), seconds_per_case=args.seconds_per_case)
    prov["quick"] = bool(args.quick)
    out = Path(args.out) if args.out else ARTIFACT_PATH
    save_artifact(sur, prov, out)
    print(json.dumps({"surrogate": sur.to_dict(), "fit": prov["fit"],
                      "cases": prov["cases"], "bench_seconds": prov["bench_seconds"]}, indent=2, default=float))
    print(f"wrote {out}", file=sys.stderr)
    return EXIT_OK


def cmd_fit_plant(args) -> int:
    from hil.cuff_rom import ROM_ARTIFACT_PATH, build_rom, save_rom

    if not (1.0 <= args.seconds <= 60.0):
        raise ValueError(f"--seconds = {args.seconds!r}: allowed 1..60 s")
    rom, prov = build_rom(_tissue(args.quick), seconds=args.seconds)
    prov["quick"] = bool(args.quick)
    out = Path(args.out) if args.out else ROM_ARTIFACT_PATH
    save_rom(rom, prov, out)
    print(json.dumps({"rom": rom.to_dict(), "fit": prov["fit"], "heldout_vs_flexcomp": prov["heldout_vs_flexcomp"],
                      "fit_runs_vs_flexcomp": prov["fit_runs_vs_flexcomp"]}, indent=2, default=float))
    print(f"wrote {out}", file=sys.stderr)
    return EXIT_OK


def _plot_tracking(path: Path, doc: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    base = doc["runs"]["uncompensated"]["trace"]
    comp = doc["runs"]["compensated"]["trace"]
    t = base["t_s"]
    sel = (t > t[-1] - 3.0)
    fig, ax = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    ax[0].plot(t[sel], base["desired_nm"][sel], "k", lw=1.5, label="desired (torque-loop input)")
    ax[0].plot(t[sel], base["delivered_nm"][sel], lw=1, label="delivered, no compensation")
    ax[0].plot(t[sel], comp["delivered_nm"][sel], lw=1, label="delivered, compensated")
    ax[0].set_ylabel("knee torque N*m (flexion +)")
    ax[0].legend(fontsize=8)
    ax[1].plot(t[sel], (base["delivered_nm"] - base["desired_nm"])[sel], lw=1,
               label=f"no compensation, RMSE {doc['uncompensated']['rmse_nm']:.3f} N*m")
    ax[1].plot(t[sel], (comp["delivered_nm"] - comp["desired_nm"])[sel], lw=1,
               label=f"compensated, RMSE {doc['compensated']['rmse_nm']:.3f} N*m")
    ax[1].axhline(0, color="k", lw=0.5)
    ax[1].set_ylabel("delivered - desired N*m")
    ax[1].set_xlabel("time s (simulated)")
    ax[1].legend(fontsize=8)
    fig.suptitle("HIL cuff: torque delivered to the leg through flexcomp tissue (last 3 s)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    del np


def _plot_pressure(path: Path, pressure: dict, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import numpy as np

    maps = pressure["map_pa"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    vmax = max(float(m.max()) for m in maps.values()) / 1e3 or 1.0
    for ax, side in zip(axes, ("posterior", "anterior")):
        ex, ey = (np.asarray(e) * 100 for e in pressure["edges_m"][side])
        im = ax.pcolormesh(ex, ey, maps[side].T / 1e3, vmin=0, vmax=vmax, cmap="inferno")
        ax.set_aspect("equal")
        ax.set_title(f"{side} plate: peak {maps[side].max() / 1e3:.1f} kPa")
        ax.set_xlabel("along the shank, cm (knee <- -> ankle)")
        ax.set_ylabel("across, cm")
    fig.colorbar(im, ax=axes, label="contact pressure kPa")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _jsonable(obj):
    import numpy as np

    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def cmd_validate(args) -> int:
    import numpy as np

    from controllers.tissue_compensator import ARTIFACT_PATH, CompensatorParams, calibrate, load_artifact
    from hil.cuff_validation import CuffScenario, validate

    scenario = CuffScenario.from_yaml(args.scenario)
    if args.duration is not None:
        from dataclasses import replace

        if not (args.duration > scenario.discard_s):
            raise ValueError(f"--duration = {args.duration!r}: must exceed the scenario's discard_s = {scenario.discard_s}")
        scenario = replace(scenario, duration_s=args.duration)
    tissue = _tissue(args.quick)
    if args.quick:
        # the artifact describes the default tissue; a coarse grid is a different plant: fit it here
        surrogate, prov = calibrate(tissue, seconds_per_case=1.0)
        source = "fitted now on the coarse grid (--quick)"
    else:
        surrogate, art = load_artifact(args.artifact or ARTIFACT_PATH)
        prov = art["provenance"]
        source = str(args.artifact or ARTIFACT_PATH)
    comp = CompensatorParams(feedback_gain=args.feedback_gain)
    doc = validate(scenario, tissue, surrogate, comp)
    out = Path(args.out)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    _plot_tracking(out / "plots" / "tracking.png", doc)
    # pressure: in the HIL run at its peak delivered torque (the mesh's resolution), and the same torque and
    # knee angle on the bench with a finer mesh (statics) to locate the hotspots
    from dataclasses import replace as _replace

    from models.tissue.soft_tissue import static_pressure_map

    hil_p = doc["runs"]["compensated"]["pressure"]
    knee_at_peak = float(np.interp(hil_p["t_s"], doc["runs"]["compensated"]["trace"]["t_s"],
                                   doc["runs"]["compensated"]["trace"]["knee_rad"]))
    fine = _replace(tissue, count_posterior=(11, 9, 3), count_anterior=(11, 9, 2))
    static = static_pressure_map(fine, float(hil_p["delivered_nm"]), knee_at_peak)
    _plot_pressure(out / "plots" / "pressure_map_hil.png", hil_p,
                   f"HIL run: contact pressure at the peak delivered torque ({hil_p['delivered_nm']:.1f} N*m, "
                   f"t = {hil_p['t_s']:.2f} s), mesh {tissue.count_posterior}: one cell per vertex spacing")
    _plot_pressure(out / "plots" / "pressure_map.png", static,
                   f"Bench statics, fine mesh {fine.count_posterior}: {static['delivered_nm']:.1f} N*m at knee "
                   f"{knee_at_peak:.2f} rad; hotspot {static['hotspots']['posterior']['peak_kpa']:.1f} kPa, mean "
                   f"{static['hotspots']['posterior']['mean_kpa']:.1f} kPa over the plate")
    summary = {"surrogate_source": source, "plant": "hil.cuff_plant.CuffKneePlant: full flexcomp tissue, "
               "simulated time (not real time)", "uncompensated": doc["uncompensated"],
               "compensated": doc["compensated"], "faults": doc["faults"],
               "improvement_rmse_pct": 100.0 * (1 - doc["compensated"]["rmse_nm"] / doc["uncompensated"]["rmse_nm"])}
    full = {k: v for k, v in doc.items() if k != "runs"}
    full.update(summary)
    full["pressure_at_peak_hil"] = {k: v for k, v in hil_p.items()}
    full["pressure_static_fine_mesh"] = static
    full["bench_rigid_assumption"] = {"note": "flexcomp bench, knee swinging 0.6 +- 0.4 rad at 1 Hz, motor torque "
                                      "offset + amplitude sin(2 pi f t): delivered vs motor torque",
                                      "cases": prov["cases"], "surrogate_fit": prov["fit"]}
    summary["pressure_hotspots_kpa"] = static["hotspots"]
    (out / "tissue_validation.json").write_text(json.dumps(_jsonable(full), indent=2, default=float) + "\n")
    print(json.dumps(_jsonable(summary), indent=2, default=float))
    print(f"wrote {out / 'tissue_validation.json'}, {out / 'plots'}", file=sys.stderr)
    return EXIT_OK if doc["compensated"]["rmse_nm"] < doc["uncompensated"]["rmse_nm"] else EXIT_FAILED


def register(subparsers) -> None:
    p = subparsers.add_parser("tissue", help="soft-tissue cuff: flexcomp bench, compensator artifact, HIL validation",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="example (quick bench, artifact written beside, not over, the versioned one):\n"
                                     "  exo tissue calibrate --quick --seconds-per-case 0.2 --out runs/tissue_compensator.json")
    sub = p.add_subparsers(dest="tissue_command")
    pc = sub.add_parser("calibrate", help="flexcomp bench over gait frequencies and loads -> surrogate artifact")
    pc.add_argument("--out", default=None, help="artifact path (default models/artifacts/tissue_compensator_v1.json)")
    pc.add_argument("--quick", action="store_true", help="coarse tissue grid (seconds, not minutes)")
    pc.add_argument("--seconds-per-case", type=positive_seconds, default=2.0, help="simulated s per bench case (default 2)")
    pc.set_defaults(fn=cmd_calibrate)
    pf = sub.add_parser("fit-plant", help="flexcomp runs -> the real-time HIL cuff plant (reduced order) artefact")
    pf.add_argument("--out", default=None, help="artefact path (default hil/artifacts/cuff_rom_v1.json)")
    pf.add_argument("--quick", action="store_true", help="coarse tissue grid (seconds, not minutes)")
    pf.add_argument("--seconds", type=positive_seconds, default=4.0, help="simulated s per flexcomp run (default 4)")
    pf.set_defaults(fn=cmd_fit_plant)
    pv = sub.add_parser("validate", help="HIL cuff scenario with and without compensation -> JSON and PNGs")
    pv.add_argument("--out", required=True, help="output folder")
    pv.add_argument("--scenario", default=str(DEFAULT_SCENARIO), help="cuff scenario YAML (default hil/scenarios/cuff_gait.yaml)")
    pv.add_argument("--artifact", default=None, help="compensator artifact (default the versioned one)")
    pv.add_argument("--duration", type=positive_seconds, default=None, help="override the scenario's duration_s")
    pv.add_argument("--feedback-gain", type=float, default=0.0, help="interface-torque feedback gain (default 0)")
    pv.add_argument("--quick", action="store_true", help="coarse tissue grid, surrogate fitted on it")
    pv.set_defaults(fn=cmd_validate)

    def _no_sub(args) -> int:
        p.print_help()
        return EXIT_USAGE

    p.set_defaults(fn=_no_sub)

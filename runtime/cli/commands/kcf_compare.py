"""``exo kcf-compare --out DIR``: where the knee contact force's excess comes from, part by part (issue 19 Part A.1).

For each Grand Challenge trial (default PS ss1, ss3, ss8; measured plates, our marker IK on MyoLeg scaled to
``GC5.osim``, left knee, 75 kg): per knee-crossing muscle (and soleus, psoas, iliacus) F0, optimal fibre and tendon
lengths, the knee (hip, ankle) flexion moment arm over the trial against OpenSim 4.6's ``computeMomentArm`` on
``GC5.osim`` at the same poses, our SO forces against the lab's OpenSim SO (mean, peak, at our two KCF peaks); our
ID knee moment against the lab's SO muscle moment; the contact against the implant (ours, the lab's SO forces
through our contact step, our axial component, the lab's JointReaction).  Run twice: MyoLeg as scaled
(``before``) and calibrated to ``GC5.osim`` (``after``: path sites, operating lengths and force-length curves,
:mod:`models.muscles.moment_arm_calibration`; ``--no-calibrate`` skips it).  Writes ``DIR/kcf_compare.json``
and ``DIR/kcf_compare.md`` (the tables) and prints the contact summary.  Needs ``opensim`` (the *bench* extra).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from runtime.cli.arguments import add_command
from runtime.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

PS_TRIALS = ("PS_ss1", "PS_ss3", "PS_ss8")


def _contact_lines(name: str, label: str, d: dict) -> list[str]:
    rows = []
    for source, parts in d["contact"].items():
        t = parts["total"]
        med = parts.get("medial", {}).get("rmse_bw")
        lat = parts.get("lateral", {}).get("rmse_bw")
        rows.append(f"| {name} | {label} | {source} | {t['rmse_bw']:.3f} | "
                    f"{'' if med is None else f'{med:.3f}'} | {'' if lat is None else f'{lat:.3f}'} | "
                    f"{t['peak_bw']:.2f} | {t['peak_ref_bw']:.2f} |")
    return rows


def _muscle_lines(name: str, label: str, d: dict) -> list[str]:
    rows = []
    for r in d["muscles"]:
        rows.append(f"| {name} | {label} | {r['muscle']} | {r['f0_n']:.0f} / {r['f0_osim_n']:.0f} | "
                    f"{r['l_opt_m'] * 1e3:.0f} / {r['l_opt_osim_m'] * 1e3:.0f} | "
                    f"{r['l_tendon_m'] * 1e3:.0f} / {r['l_slack_osim_m'] * 1e3:.0f} | {r['arm_coordinate']} | "
                    f"{r['arm_mean_m'] * 1e3:+.1f} / {r['arm_osim_mean_m'] * 1e3:+.1f} ({r['arm_rms_diff_m'] * 1e3:.1f}) | "
                    f"{r['force_mean_n']:.0f} / {r['force_osim_mean_n']:.0f} | {r['force_peak_n']:.0f} / "
                    f"{r['force_osim_peak_n']:.0f} | {r['force_at_peak1_n']:.0f} / {r['force_osim_at_peak1_n']:.0f} | "
                    f"{r['force_at_peak2_n']:.0f} / {r['force_osim_at_peak2_n']:.0f} |")
    return rows


def markdown(results: dict) -> str:
    """The tables of ``results`` (``{trial: {"before": ..., "after": ...}}``) as Markdown."""
    out = ["# Knee contact force, part by part (ours / OpenSim)", "",
           "## Contact against the eTibia implant (BW)", "",
           "| trial | model | source | total RMSE | medial RMSE | lateral RMSE | peak | implant peak |",
           "|---|---|---|---|---|---|---|---|"]
    for name, runs in results.items():
        for label, d in runs.items():
            out += _contact_lines(name, label, d)
    out += ["", "## Knee flexion moment: our ID against the lab's SO muscle moment (sum F r, OpenSim arms)", "",
            ("| trial | model | ours peak ext / flex N m | OpenSim SO peak ext / flex N m | RMSE N m | "
             "knee-muscle force RMSE vs OpenSim SO N |"), "|---|---|---|---|---|---|"]
    for name, runs in results.items():
        for label, d in runs.items():
            k = d["knee_moment"]
            out.append(f"| {name} | {label} | {k['ours_id_peak_ext_nm']:.1f} / {k['ours_id_peak_flex_nm']:.1f} | "
                       f"{k['opensim_so_peak_ext_nm']:.1f} / {k['opensim_so_peak_flex_nm']:.1f} | {k['rmse_nm']:.1f} | "
                       f"{d['knee_muscle_force_rmse_vs_osim_n']:.0f} |")
    out += ["", ("## Muscles (ours / OpenSim; lengths in mm, moment arms in mm, forces in N; KCF peaks at "
                 "the frames of our largest total force in 5-35 % and 35-65 % of the trial)"), "",
            ("| trial | model | muscle | F0 | l_opt | tendon | arm about | arm mean (RMS diff) | force mean | "
             "force peak | at KCF peak 1 | at KCF peak 2 |"), "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, runs in results.items():
        for label, d in runs.items():
            out += _muscle_lines(name, label, d)
    return "\n".join(out) + "\n"


def cmd_kcf_compare(args) -> int:
    from models.io.lab_files import shared_data_dir
    from models.io.opensim_reference import opensim_available
    from models.muscles.kcf_comparison import compare_trial, gc5_trial
    from models.trial_analysis import AnalyzeParams

    trials = [t.strip() for t in args.trials.split(",") if t.strip()]
    bad = [t for t in trials if t not in PS_TRIALS]
    if bad or not trials:
        print(f"kcf-compare: --trials = {args.trials!r}: allowed a comma list from {', '.join(PS_TRIALS)}",
              file=sys.stderr)
        return EXIT_USAGE
    if not opensim_available():
        print("kcf-compare: needs opensim for OpenSim's moment arms (pip install opensim==4.6, the bench extra)",
              file=sys.stderr)
        return EXIT_FAILED
    data = Path(args.data) if args.data else shared_data_dir()
    params = AnalyzeParams(75.0, 1.80, "left", muscles=True, subject_calibration=False)
    results: dict[str, dict] = {}
    for name in trials:
        try:
            trial = gc5_trial(data, name)
        except FileNotFoundError as exc:
            print(f"kcf-compare: {exc}", file=sys.stderr)
            return EXIT_FAILED
        runs = {"before": compare_trial(trial, params)}
        if not args.no_calibrate:
            runs["after"] = compare_trial(trial, params, calibrate=True, lengths=True, curves=True,
                                          passive=args.passive)
        results[name] = runs
        for label, d in runs.items():
            c = d["contact"]["ours"]
            print(f"{name} {label:6s}: total {c['total']['rmse_bw']:.3f} BW, medial {c['medial']['rmse_bw']:.3f}, "
                  f"lateral {c['lateral']['rmse_bw']:.3f}; peak {c['total']['peak_bw']:.2f} vs implant "
                  f"{c['total']['peak_ref_bw']:.2f} BW; OpenSim JR {d['contact']['opensim_joint_reaction']['total']['rmse_bw']:.3f}",
                  flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "kcf_compare.json").write_text(json.dumps(results, indent=1, default=float))
    (out / "kcf_compare.md").write_text(markdown(results))
    print(f"wrote {out / 'kcf_compare.json'} and {out / 'kcf_compare.md'}", file=sys.stderr)
    return EXIT_OK


def register(subparsers) -> None:
    p = add_command(subparsers, "kcf-compare", help="knee contact force part by part against OpenSim and the implant",
                    description=__doc__, examples=["exo kcf-compare --trials PS_ss1 --out runs/kcf_compare"])
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--data", default=None, help="shared data folder (default $EXO_SHARED_DATA or ../shared/data)")
    p.add_argument("--trials", default=",".join(PS_TRIALS), help=f"comma list from {', '.join(PS_TRIALS)}")
    p.add_argument("--no-calibrate", action="store_true", help="only MyoLeg as scaled (no 'after' run)")
    p.add_argument("--passive", action="store_true",
                   help="calibrated muscles keep a passive force-length curve fitted to OpenSim's (default: none, "
                        "as OpenSim's static optimisation reports muscle forces)")
    p.set_defaults(fn=cmd_kcf_compare)



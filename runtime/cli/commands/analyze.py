"""``exo analyze``: a recorded trial through IK, GRF, inverse dynamics and KAM/KEM into CSVs, a video or 2-D
keypoints already detected through the monocular chain, or trial files read and checked."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from runtime.cli.arguments import add_command
from runtime.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def cmd_analyze(args: argparse.Namespace) -> int:
    if args.keypoints2d:
        return _analyze_keypoints(args)
    if args.video:
        return _analyze_video(args)
    if args.trc or args.c3d:
        return _analyze_chain(args)
    if not args.trials:
        print("analyze: give --trc/--c3d (with --markerset, --mass-kg, --height-m, --side) for the full chain, "
              "--video or --keypoints2d (with --mass-kg, --height-m, --side) for the monocular chain, "
              "or trial files to read and check", file=sys.stderr)
        return EXIT_USAGE
    from models.io.lab_files import summarize

    results = []
    failed = 0
    for path in args.trials:
        try:
            results.append(summarize(path))
        except (OSError, ValueError) as exc:
            failed += 1
            results.append({"path": str(path), "error": str(exc)})
    if args.json_stdout:
        print(json.dumps(results, indent=2, default=str))
    else:
        for r in results:
            print(f"{r['path']}: ERROR {r['error']}" if "error" in r else json.dumps(r, default=str))
    return EXIT_FAILED if failed else EXIT_OK


def _analyze_video(args: argparse.Namespace) -> int:
    """The offline path from a video (``runtime.vision.video_analysis.analyze_video``)."""
    from runtime.vision.video_analysis import analyze_video

    frames = None
    if args.frames:
        try:
            a, b = args.frames.split(":")
            frames = (int(a) if a else 0, int(b) if b else None)
        except ValueError:
            raise ValueError(f"--frames = {args.frames!r}: use START:STOP (frame indices)") from None
    res = analyze_video(args.video, bbox=args.bbox, mask=args.mask, describe=args.describe, out_dir=args.output,
                        height_m=args.height_m, mass_kg=args.mass_kg, side=args.side or "left",
                        calibration=args.calibration, hfov_deg=args.hfov_deg, frames=frames, model=args.model)
    return _print_summary(res.summary(), args.json)


def _image_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise ValueError(f"--image-size = {text!r}: use WIDTHxHEIGHT in pixels, e.g. 1920x1080") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"--image-size = {text!r}: width and height must be positive")
    return w, h


def _analyze_keypoints(args: argparse.Namespace) -> int:
    """The offline path from 2-D keypoints (``runtime.vision.keypoint_analysis.analyze_keypoints``); bad keypoint
    or calibration input: exit 2 with the reader's message (file, line, column), never a traceback."""
    from models.io.keypoints2d import KeypointsError
    from runtime.vision.keypoint_analysis import CalibrationError, analyze_keypoints

    if args.video or args.trc or args.c3d:
        print("analyze: --keypoints2d is its own input; do not combine it with --video/--trc/--c3d", file=sys.stderr)
        return EXIT_USAGE
    missing = [f"--{k.replace('_', '-')}" for k in ("mass_kg", "height_m", "side") if getattr(args, k) is None]
    if missing:
        print(f"analyze --keypoints2d: needs {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    if args.fps is not None and not (args.fps > 0 and args.fps < 10000):
        print(f"analyze --keypoints2d: --fps = {args.fps!r}: a positive frame rate below 10000 is needed", file=sys.stderr)
        return EXIT_USAGE
    try:
        res = analyze_keypoints(args.keypoints2d, out_dir=args.output, mass_kg=args.mass_kg, height_m=args.height_m,
                                side=args.side, fps=args.fps, calibration=args.calibration, camera_name=args.camera,
                                image_size=_image_size(args.image_size), hfov_deg=args.hfov_deg, model=args.model)
    except (KeypointsError, CalibrationError) as exc:
        print(f"analyze --keypoints2d: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _print_summary(res.summary(), args.json)


def _print_summary(summary: dict, json_path: str | None) -> int:
    """Print the analysis summary as JSON (and write it to ``json_path`` when given)."""
    text = json.dumps(summary, indent=2, default=str)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(text)
    print(text)
    return EXIT_OK


def _analyze_chain(args: argparse.Namespace) -> int:
    import numpy as np

    from models.trial_analysis import (
        AnalyzeParams,
        analyze_trial,
        grf_validation,
        ik_validation,
        moment_validation,
        trial_kinematics,
        write_results,
    )

    missing = [f"--{k.replace('_', '-')}" for k in ("markerset", "mass_kg", "height_m", "side") if getattr(args, k) is None]
    if missing:
        print(f"analyze: the full chain needs {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    params = AnalyzeParams(args.mass_kg, args.height_m, args.side, model=args.model, muscles=args.muscles,
                           backend=args.backend, device=args.device)
    trc = args.trc or args.c3d
    out = Path(args.output)
    print(f"analyze {Path(trc).name}: {params.model}, {args.mass_kg:g} kg, {args.height_m:g} m, {args.side} knee; "
          f"GRF from {'force plates ' + Path(args.grf).name if args.grf else 'kinematics alone'}", flush=True)
    kin = trial_kinematics(trc, args.markerset, params)
    print(f"  inverse kinematics: {kin.time_s.size} frames, marker RMS median "
          f"{float(np.nanmedian(kin.ik.residual_rms_m)) * 1e3:.1f} mm", flush=True)
    result = analyze_trial(trc, args.markerset, params, grf_path=args.grf, kin=kin, external_loads=args.external_loads)
    files = write_results(result, out)
    kcf = None
    if result.muscles is not None:
        from models.muscles.knee_contact import knee_contact_from_analysis

        kcf = knee_contact_from_analysis(kin, result)
        p_kcf = out / "knee_contact_force.csv"
        np.savetxt(p_kcf, np.column_stack([kcf.time_s, kcf.medial_n, kcf.lateral_n, kcf.total_n, kcf.medial_bw,
                                           kcf.lateral_bw, kcf.total_bw]), delimiter=",", fmt="%.6g", comments="",
                   header="time_s,medial_N,lateral_N,total_N,medial_BW,lateral_BW,total_BW")
        files.append(p_kcf)
    from runtime.telemetry.analysis_log import write_analysis_mcap

    mcap_dir = out / "analysis_mcap"
    if (mcap_dir / "metadata.yaml").exists() or mcap_dir.exists():
        import shutil

        shutil.rmtree(mcap_dir)
    files.append(write_analysis_mcap(result, mcap_dir))
    summary = result.summary()
    if kcf is not None:                     # the knee contact force against its envelope (models.confidence)
        from models.confidence import estimate_flags, flags_dict, implausible_notes

        kf = estimate_flags(params.mass_kg, kcf_n=np.column_stack([kcf.medial_n, kcf.lateral_n, kcf.total_n]))
        summary["envelopes"].update(flags_dict(kf))
        summary["notes"] = summary["notes"] + implausible_notes(kf)
    validation: dict = {}
    if args.ik_ref:
        validation["joint_angle_rmse_deg"] = ik_validation(result, args.ik_ref)
    if args.kcf_ref:
        if kcf is None:
            print("analyze: --kcf-ref needs --muscles (knee contact force comes from the muscle forces)", file=sys.stderr)
            return EXIT_USAGE
        from models.muscles.knee_contact import validate_against_in_vivo

        validation["knee_contact_force"] = validate_against_in_vivo(kcf, args.kcf_ref)
    if args.grf_ref:
        ref = analyze_trial(trc, args.markerset, params, grf_path=args.grf_ref, kin=kin, external_loads=args.external_loads)
        if result.grf_source == "kinematics":
            validation["grf_error_pct_bw"] = grf_validation(result, ref)
        validation["knee_moment_rmse_pct_bw_ht"] = moment_validation(result, ref)
    doc = {"summary": summary, "validation": validation, "files": [str(f) for f in files]}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str))
    print(json.dumps(doc, indent=2, default=str))
    return EXIT_OK



def register(subparsers: Any) -> None:
    """Add ``analyze``."""
    p = add_command(
        subparsers, "analyze", help="analyse a recorded trial: IK, GRF, inverse dynamics, KAM/KEM (or check files)",
        description="Full chain on a marker trial: inverse kinematics on the subject-scaled model, ground reaction "
                    "forces (measured plates with --grf, else estimated from kinematics alone), inverse dynamics, knee "
                    "adduction/extension moments in %BW*ht. Writes CSVs with a time_s column and unit-suffixed columns "
                    "to --output; references (--ik-ref, --grf-ref) are only used for validation figures.\n\n"
                    "Without --trc/--c3d: read and check the given trial files (.trc/.mot/.sto/.c3d).",
        examples=[("exo analyze --trc ../shared/data/GC5_PS/trc/PS_ngait_og_ss1.trc --markerset "
                   "../shared/data/GC5_PS/model/GC5.osim --mass-kg 75 --height-m 1.8 --side left --grf "
                   "../shared/data/GC5_PS/grf/PS_ngait_og_ss1_kinetics.mot --output runs/ps1"),
                  "exo analyze ../shared/data/GC5_PS/trc/PS_ngait_og_ss1.trc"])
    p.add_argument("trials", nargs="*", help="trial files to read and check (without --trc/--c3d)")
    p.add_argument("--trc", help="marker trajectories (.trc, mm or m, lab frame y up)")
    p.add_argument("--c3d", help="marker trajectories (.c3d)")
    p.add_argument("--markerset", help="OpenSim model or marker file placing the trial's markers on the model's bodies "
                                       "(e.g. GC5.osim, DM_markers.xml)")
    p.add_argument("--mass-kg", type=float, help="subject mass, kg")
    p.add_argument("--height-m", type=float, help="subject height, m")
    p.add_argument("--side", choices=["left", "right"], help="limb of interest (knee moments)")
    p.add_argument("--model", default="myoleg", help="musculoskeletal model (default: %(default)s)")
    p.add_argument("--grf", help="measured force plates (.mot/.sto): input to inverse dynamics")
    p.add_argument("--muscles", action="store_true",
                   help="also solve static optimisation (muscle activations, reserves) -> activations.csv")
    p.add_argument("--backend", choices=["cpu", "warp"], default="cpu",
                   help="inverse dynamics and static optimisation on MuJoCo (cpu, default) or batched on MuJoCo Warp "
                        "(warp: mujoco-warp, in the models and gpu extras); written in the summary")
    p.add_argument("--device", help="with --backend warp: Warp device (cpu, cuda, cuda:0; default CUDA when present)")
    p.add_argument("--external-loads", help="OpenSim ExternalLoads XML naming the foot on each plate (else detected)")
    p.add_argument("--ik-ref", help="reference IK (.mot) for validation only")
    p.add_argument("--kcf-ref", help="reference knee contact force CSV (percent of the trial window; medial, lateral, "
                                     "total in N), e.g. the PS in-vivo eTibia files; needs --muscles")
    p.add_argument("--grf-ref", help="reference force plates for validation only")
    p.add_argument("--output", default="runs/analyze", help="output folder for the CSVs (default: %(default)s)")
    p.add_argument("--json", help="write the summary and validation figures to this JSON file")
    p.add_argument("--json-stdout", action="store_true", help="file-check mode: JSON on stdout")
    p.add_argument("--video", help="a video of one walking person: pose (tracked), world grounding, landmark IK, then "
                   "the kinematics-only chain (GRF, ID, KAM/KEM); landmarks.csv beside the usual CSVs")
    p.add_argument("--bbox", help="with --video: the person to follow, x0,y0,x1,y1 in pixels of the first frame")
    p.add_argument("--mask", help="with --video: a mask image of the person (its box becomes the prompt)")
    p.add_argument("--describe", help="with --video: the subject in words, e.g. 'tall male, 1.85 m, 90 kg' "
                   "(height and mass; --height-m/--mass-kg override)")
    p.add_argument("--keypoints2d", help="2-D keypoints already detected: a CSV (time_s, then <landmark>_x_px, _y_px, "
                   "_score per BlazePose-33 name) or a folder of OpenPose-style JSON files (BODY_25, COCO-17, "
                   "HALPE-26; needs --fps); the model is fitted to them (reprojection, foot-floor contact), then the "
                   "kinematics-only chain; fit_quality.csv beside the usual CSVs. Needs --mass-kg, --height-m, --side")
    p.add_argument("--fps", type=float, help="with --keypoints2d and a JSON folder: frame rate (time_s = frame / fps)")
    p.add_argument("--calibration", help="with --video or --keypoints2d: camera calibration (Pose2Sim .toml or "
                   "Qualisys .qca.txt; world z up, floor z = 0); without it the intrinsics are guessed and the floor "
                   "is estimated")
    p.add_argument("--camera", help="with --keypoints2d: the camera of a calibration file that holds several")
    p.add_argument("--image-size", help="with --keypoints2d and no calibration: WIDTHxHEIGHT px when the keypoint "
                   "file does not declare it")
    p.add_argument("--hfov-deg", type=float, default=60.0, help="with --video/--keypoints2d and no calibration: "
                   "assumed horizontal field of view (default: %(default)s)")
    p.add_argument("--frames", help="with --video: START:STOP frame range")
    p.set_defaults(fn=cmd_analyze)

"""Vision front-end commands: ``footage``, ``anonymise``, ``track``.

* ``exo footage`` fetches the demo footage from the package registry into the cache
  (``$EXO_FOOTAGE_CACHE`` or ``~/.cache/exo_runtime/footage``) and lists it;
* ``exo anonymise SOURCE --out FILE.mp4`` writes only anonymised frames (every head blurred);
* ``exo track SOURCE --bbox x0,y0,x1,y1 --out DIR`` follows the person under the box and writes
  ``landmarks.csv`` (one row per processed frame), ``overlay.mp4`` (anonymised, skeleton drawn)
  and ``track.json`` (frames tracked and lost, the description read from ``--describe``).

SOURCE: a video file, a folder of images, ``camera:N`` or ``mcap:LOG#TOPIC``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runtime.cli.arguments import add_command
from runtime.cli.exit_codes import EXIT_FAILED, EXIT_OK


def _positive_int(name: str):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: not an integer: {text!r}") from None
        if v < 0 or (name == "--step" and v < 1):
            raise argparse.ArgumentTypeError(f"{name}: must be {'≥ 1' if name == '--step' else '≥ 0'}, got {v}")
        return v
    return parse


def cmd_footage(args) -> int:
    import cv2

    from runtime.vision.footage import FootageUnavailable, cache_dir, fetch_all

    try:
        sets = fetch_all()
    except FootageUnavailable as exc:
        print(f"exo footage: {exc}", file=sys.stderr)
        return EXIT_FAILED
    listing = {}
    for name, files in sets.items():
        rows = []
        for f in files:
            row = {"path": str(f), "bytes": f.stat().st_size}
            if f.suffix == ".mp4":
                cap = cv2.VideoCapture(str(f))
                row.update(width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                           fps=float(cap.get(cv2.CAP_PROP_FPS)), frames=int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
                cap.release()
            rows.append(row)
        listing[name] = rows
    if args.json:
        print(json.dumps({"cache": str(cache_dir()), "footage": listing}, indent=2))
        return EXIT_OK
    print(f"footage cache: {cache_dir()}")
    for name, rows in listing.items():
        print(f"{name}:")
        for r in rows:
            extra = (f"  {r['width']}x{r['height']} {r['fps']:g} fps {r['frames']} frames" if "fps" in r else "")
            print(f"  {r['path']}  ({r['bytes'] / 1e6:.2f} MB){extra}")
    return EXIT_OK


def _video_out(path: str) -> Path:
    out = Path(path)
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"--out: must be an .mp4 file, got {path!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def cmd_anonymise(args) -> int:
    from runtime.vision.anonymise import Anonymiser, AnonymizedVideoWriter
    from runtime.vision.frame_sources import VideoFileSource, open_source

    out = _video_out(args.out)
    src = (VideoFileSource(args.source, start=args.start, stop=args.stop, step=args.step)
           if Path(args.source).is_file() else open_source(args.source))
    anonymiser = Anonymiser(margin=args.margin, method=args.method)
    writer = None
    n = 0
    try:
        for frame in src:
            anon = anonymiser.anonymize(frame.image, frame.t_capture_ns)
            if writer is None:
                fps = (src.fps or 30.0) / (args.step if isinstance(src, VideoFileSource) else 1)
                writer = AnonymizedVideoWriter(out, fps, (anon.image.shape[1], anon.image.shape[0]))
            writer.write(anon)
            n += 1
    except KeyboardInterrupt:  # a live camera ends with Ctrl-C: keep what was written
        print(f"stopped after {n} frame(s)", file=sys.stderr)
    finally:
        if writer is not None:
            writer.close()
        src.close()
        anonymiser.close()
    if n == 0:
        print(f"exo anonymise: {args.source}: no frames read", file=sys.stderr)
        return EXIT_FAILED
    by = ", ".join(f"{k} {v}" for k, v in sorted(anonymiser.regions_by_source.items())) or "none"
    print(f"anonymised {n} frame(s) -> {out}; regions blurred: {by}")
    return EXIT_OK


def _csv_header() -> list[str]:
    from runtime.vision.pose_types import BLAZEPOSE_LANDMARKS

    cols = ["frame", "time_s", "status", "bbox_x0_px", "bbox_y0_px", "bbox_x1_px", "bbox_y1_px"]
    for name in BLAZEPOSE_LANDMARKS:
        cols += [f"{name}_x_px", f"{name}_y_px", f"{name}_visibility",
                 f"{name}_world_x_m", f"{name}_world_y_m", f"{name}_world_z_m"]
    return cols


def _csv_row(tf) -> list:
    from runtime.vision.pose_types import N_LANDMARKS

    row: list = [tf.index, f"{tf.t_capture_ns / 1e9:.6f}", tf.status]
    if tf.pose is None:
        return row + [""] * (4 + 6 * N_LANDMARKS)
    b = tf.bbox
    row += [f"{b.x0:.2f}", f"{b.y0:.2f}", f"{b.x1:.2f}", f"{b.y1:.2f}"]
    p = tf.pose
    for i in range(N_LANDMARKS):
        row += [f"{p.image_xy[i, 0]:.2f}", f"{p.image_xy[i, 1]:.2f}", f"{p.visibility[i]:.4f}",
                f"{p.world_xyz[i, 0]:.5f}", f"{p.world_xyz[i, 1]:.5f}", f"{p.world_xyz[i, 2]:.5f}"]
    return row


def cmd_track(args) -> int:
    import csv

    from runtime.vision.anonymise import Anonymiser, AnonymizedVideoWriter, annotate
    from runtime.vision.frame_sources import VideoFileSource, open_source
    from runtime.vision.prompts import parse_bbox, split_description
    from runtime.vision.tracking import track_video

    attrs, interaction = split_description(args.describe) if args.describe else (None, None)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"--out {out}: folder is not empty; choose another or delete it")
    if Path(args.source).is_file():
        src = VideoFileSource(args.source, start=args.start_frame, stop=args.stop, step=args.step)
    else:
        src = open_source(args.source)
    width = getattr(src, "width", None)
    height = getattr(src, "height", None)
    prompt = parse_bbox(args.bbox, width, height)
    out.mkdir(parents=True, exist_ok=True)
    anonymiser = Anonymiser(use_person_detector=False)  # the tracker's detector already found every head
    writer = None
    csv_file = open(out / "landmarks.csv", "w", newline="", encoding="utf-8")
    rows = csv.writer(csv_file)
    rows.writerow(_csv_header())

    def on_frame(frame, tf) -> None:
        nonlocal writer
        anon = anonymiser.anonymize(frame.image, frame.t_capture_ns, poses=[tf.pose] if tf.pose is not None else [],
                                    heads=tf.heads, people=tf.others)
        label = f"frame {tf.index}: {tf.status}"
        anon = annotate(anon, tf.pose, tf.bbox, label, (0, 255, 0) if tf.status == "tracked" else (255, 64, 64))
        if writer is None:
            fps = (src.fps or 30.0) / (args.step if isinstance(src, VideoFileSource) else 1)
            writer = AnonymizedVideoWriter(out / "overlay.mp4", fps, (anon.image.shape[1], anon.image.shape[0]))
        writer.write(anon)
        rows.writerow(_csv_row(tf))
        if args.verbose:
            print(f"{label}", flush=True)

    try:
        history = track_video(src, prompt, start_index=args.start_frame, interaction=interaction, on_frame=on_frame)
    finally:
        csv_file.close()
        if writer is not None:
            writer.close()
        src.close()
        anonymiser.close()
    lost = [f.index for f in history if f.status == "lost"]
    summary = {"source": args.source, "bbox": args.bbox, "start_frame": args.start_frame, "step": args.step,
               "frames": len(history), "tracked": len(history) - len(lost), "lost": len(lost), "lost_frames": lost,
               "subject": None if attrs is None else {"height_m": attrs.height_m, "mass_kg": attrs.mass_kg,
                                                      "sex": attrs.sex, "words": list(attrs.words)},
               "interaction": [] if interaction is None else list(interaction.labels)}
    (out / "track.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"tracked {summary['tracked']}/{summary['frames']} frame(s), lost {summary['lost']}"
          + (f" (frames {lost[0]}..{lost[-1]})" if lost else "") + f" -> {out}/landmarks.csv, overlay.mp4, track.json")
    return EXIT_OK


def register(subparsers) -> None:
    """Add ``footage``, ``anonymise`` and ``track`` to ``exo``."""
    p = add_command(subparsers, "footage", help="fetch the demo videos (sports2d, pose2sim) into the cache and list them",
                    description="Download the sports2d and pose2sim wheels (pip download --no-deps, pinned versions) "
                                "into $EXO_FOOTAGE_CACHE or ~/.cache/exo_runtime/footage and extract the demo videos and "
                                "calibrations. Nothing is committed.",
                    examples=["exo footage"])
    p.add_argument("--json", action="store_true", help="machine-readable listing")
    p.set_defaults(fn=cmd_footage)

    p = add_command(subparsers, "anonymise", help="blur every head of a video; writes only anonymised frames",
                    description="Face detectors + BlazePose person detector (tiled) + a hold of last frame's heads; "
                                "each region blurred with a safety margin. In the example demo.mp4 is a video of "
                                "people, e.g. the sports2d demo video listed by 'exo footage'.",
                    examples=["exo anonymise demo.mp4 --stop 5 --out runs/demo_anon.mp4"])
    p.add_argument("source", help="video file, image folder, camera:N or mcap:LOG#TOPIC")
    p.add_argument("--out", required=True, help="output .mp4")
    p.add_argument("--method", choices=("gaussian", "pixelate"), default="gaussian", help="blur (default: %(default)s)")
    p.add_argument("--margin", type=float, default=0.3, help="safety margin, fraction of a region's size (default: %(default)s)")
    p.add_argument("--start", type=_positive_int("--start"), default=0, help="first frame of a video (default: 0)")
    p.add_argument("--stop", type=_positive_int("--stop"), default=None, help="stop before this frame of a video")
    p.add_argument("--step", type=_positive_int("--step"), default=1, help="every STEP-th frame of a video (default: 1)")
    p.set_defaults(fn=cmd_anonymise)

    p = add_command(subparsers, "track", help="follow the prompted person; landmarks CSV and an anonymised overlay video",
                    description="Track the person inside --bbox (pixels, in frame --start-frame) through crossings and "
                                "occlusions without switching identity; frames where they are not found are reported "
                                "as lost. In the example demo.mp4 is the sports2d demo video (exo footage) and the box "
                                "the walking woman at frame 40.",
                    examples=["exo track demo.mp4 --bbox 1400,500,1700,990 --start-frame 40 --stop 46 "
                              "--describe 'woman 60kg 165cm' --out runs/track1"])
    p.add_argument("source", help="video file, image folder, camera:N or mcap:LOG#TOPIC")
    p.add_argument("--bbox", required=True, help="prompt box x0,y0,x1,y1 in pixels")
    p.add_argument("--start-frame", type=_positive_int("--start-frame"), default=0, help="frame the box refers to (default: 0)")
    p.add_argument("--stop", type=_positive_int("--stop"), default=None, help="stop before this frame of a video")
    p.add_argument("--step", type=_positive_int("--step"), default=1, help="every STEP-th frame of a video (default: 1)")
    p.add_argument("--describe", help="anthropometric text and interaction labels, e.g. 'woman 60kg 165cm, occlusion'")
    p.add_argument("--out", required=True, help="output folder (must be empty or new)")
    p.add_argument("--verbose", action="store_true", help="print every frame's status")
    p.set_defaults(fn=cmd_track)

"""Clinical backend commands: ``batch``, ``ingest``, ``import``, ``trend`` (session store, see runtime/clinic).

The store URL comes from ``--db`` (default ``$EXO_CLINIC_DB`` or ``sqlite:///runs/clinic.db``); PostgreSQL URLs
(``postgresql://user@/db?host=/run/postgresql``) use the same code.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from runtime.cli.arguments import add_command
from runtime.cli.exit_codes import EXIT_FAILED, EXIT_OK

_DEFAULT_DB = "sqlite:///runs/clinic.db"


def _db_default() -> str:
    return os.environ.get("EXO_CLINIC_DB", _DEFAULT_DB)


def _print_batch(report, stored: dict | None) -> None:
    from runtime.clinic.batch import summary_table
    from runtime.clinic.schema import METRICS

    cols = ["peak_kam_pct_bw_ht", "peak_kem_pct_bw_ht", "peak_kcf_total_bw", "medial_load_share",
            "cocontraction_index", "limb_symmetry_pct"]
    short = {"peak_kam_pct_bw_ht": "KAM", "peak_kem_pct_bw_ht": "KEM", "peak_kcf_total_bw": "KCF_BW",
             "medial_load_share": "med_share", "cocontraction_index": "CCI", "limb_symmetry_pct": "sym_%"}
    print(f"{'trial':<12}{'subject':<9}" + "".join(f"{short[c]:>10}" for c in cols))
    for row in summary_table(report):
        if "errors" in row:
            print(f"{row['trial']:<12}{row['subject']:<9}  FAILED after {len(row['errors'])} attempt(s): {row['errors'][-1]}")
        else:
            print(f"{row['trial']:<12}{row['subject']:<9}" +
                  "".join(f"{'-' if row[c] is None else format(row[c], '.3f'):>10}" for c in cols))
            if row.get("implausible"):
                print("  IMPLAUSIBLE (fraction of frames outside the envelope): " +
                      ", ".join(f"{k} {v:.1%}" for k, v in row["implausible"].items()))
    print(f"(KAM/KEM peak %BW*ht, KCF total peak BW; units of every metric: {', '.join(f'{k} {v[0]}' for k, v in METRICS.items() if k in cols)})")
    n_ok, n = len(report.succeeded), len(report.outcomes)
    print(f"{n_ok}/{n} trials analysed on {report.backend} ({report.workers} worker(s)) in {report.seconds:.1f} s: "
          f"{report.trials_per_minute:.1f} trials per minute")
    for o in report.failed:
        print(f"failed: {o.job.name}: " + " | ".join(f"attempt {i + 1}: {e}" for i, e in enumerate(o.errors)),
              file=sys.stderr)
    if stored is not None:
        print(f"stored {len(stored['stored'])} session(s)" +
              (f"; rejected {len(stored['rejected'])}:" if stored["rejected"] else ""))
        for r in stored["rejected"]:
            print(f"  rejected: {r}", file=sys.stderr)


def _with_outputs(jobs, args) -> list:
    """Jobs writing their CSVs under --output (encrypted with --encrypt-key, created 0600 if missing)."""
    import dataclasses
    from pathlib import Path

    if args.encrypt_key and not args.output:
        raise ValueError(f"--encrypt-key = {args.encrypt_key!r}: needs --output (the CSVs it encrypts)")
    if not args.output:
        return jobs
    key = None
    if args.encrypt_key:
        from runtime.clinic.files import new_key

        key = Path(args.encrypt_key).resolve()
        if not key.exists():
            new_key(key)
            print(f"created encryption key {key} (mode 0600): keep it; the encrypted CSVs cannot be read without it")
    out = str(Path(args.output).resolve())
    return [dataclasses.replace(j, output_dir=out, encrypt_key=None if key is None else str(key)) for j in jobs]


def _run_batch(jobs, args, store) -> tuple[int, object]:
    from runtime.clinic.batch import report_json, run_batch, store_results

    jobs = _with_outputs(jobs, args)
    report = run_batch(jobs, ray_address=args.ray, workers=args.workers, retries=args.retries,
                       progress=lambda s: print(s, flush=True))
    stored = store_results(store, report) if store is not None else None
    _print_batch(report, stored)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(report_json(report))
        print(f"wrote {args.json}")
    bad = report.failed or (stored and stored["rejected"])
    return (EXIT_FAILED if bad else EXIT_OK), report


def _check_common(args, what: str) -> None:
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers = {args.workers}: must be >= 1")
    if args.retries < 0:
        raise ValueError(f"--retries = {args.retries}: must be >= 0")
    if args.ray == "local":      # a private Ray instance listens on every interface: keep it in a private netns
        from firmware_bridge.netns import ensure_private_netns

        ensure_private_netns(f"exo {what} --ray local")


def cmd_batch(args) -> int:
    from runtime.clinic.batch import jobs_from
    from runtime.clinic.store import open_store

    _check_common(args, "batch")
    jobs = [dataclasses.replace(j, backend=args.backend) for j in jobs_from(args.trials)]
    print(f"exo batch: {len(jobs)} trial(s) from {args.trials} on "
          f"{'Ray ' + args.ray if args.ray else 'local processes'}" + ("" if args.no_store else f" -> {args.db}"), flush=True)
    store = None if args.no_store else open_store(args.db)
    try:
        rc, _ = _run_batch(jobs, args, store)
    finally:
        if store is not None:
            store.close()
    return rc


def cmd_ingest(args) -> int:
    from pathlib import Path

    from runtime.clinic.batch import jobs_from_shared
    from runtime.clinic.importers import import_session, shared_lab_imports
    from runtime.clinic.store import StoreError, open_store
    from runtime.cli.doctor import shared_data_dir

    _check_common(args, "ingest")
    data = Path(args.data) if args.data else shared_data_dir()
    jobs = [dataclasses.replace(j, backend=args.backend) for j in jobs_from_shared(data)]
    print(f"exo ingest: {len(jobs)} shared trial(s) under {data} through the analysis chain, then the lab's own "
          f"OpenSim results -> {args.db}", flush=True)
    with open_store(args.db) as store:
        before = store.counts()
        rc, _ = _run_batch(jobs, args, store)
        imported, rejected = 0, 0
        for kw in shared_lab_imports(data):
            try:
                import_session(store, **kw)
                imported += 1
            except StoreError as exc:
                rejected += 1
                print(f"  rejected: {kw['trial_name']}: {exc}", file=sys.stderr)
        print(f"imported {imported} lab result session(s)" + (f", rejected {rejected}" if rejected else ""))
        after = store.counts()
        print("store rows: " + ", ".join(f"{k} {before[k]} -> {after[k]}" for k in after))
    return EXIT_FAILED if (rc != EXIT_OK or rejected) else EXIT_OK


def _stance(text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--stance {text!r}: expected START:END in s, e.g. 0.0:0.71") from None
    if not b > a:
        raise argparse.ArgumentTypeError(f"--stance {text!r}: END must be after START")
    return a, b


def cmd_import(args) -> int:
    from pathlib import Path

    from runtime.clinic.importers import import_session, shared_lab_imports
    from runtime.clinic.store import StoreError, open_store, parse_date

    if args.exo_run:
        return _import_exo_run(args)
    if args.shared_lab:
        from runtime.cli.doctor import shared_data_dir

        data = Path(args.data) if args.data else shared_data_dir()
        todo = shared_lab_imports(data)
        if not todo:
            raise FileNotFoundError(f"--data {data}: no shared lab results (GC5_PS/opensim_results_baseline)")
    else:
        if not (args.id or args.jr or args.so_activation):
            raise ValueError("import: give --id, --jr and/or --so-activation (OpenSim results), or --shared-lab")
        for key in ("subject", "side"):
            if getattr(args, key) is None:
                raise ValueError(f"import: --{key} is required")
        if args.id and args.knee_flexion is None:
            raise ValueError("import: --knee-flexion positive|negative is required with --id (the sign of knee flexion "
                             "in the model's knee_angle coordinate: Rajagopal/GC5 positive, Gait2392 negative)")
        if args.stance_plate and not args.grf:
            raise ValueError(f"--stance-plate = {args.stance_plate!r}: needs --grf")
        primary = args.id or args.jr or args.so_activation
        todo = [dict(pseudonym=args.subject, mass_kg=args.mass_kg, height_m=args.height_m, sex=args.sex,
                     affected_side=args.affected_side, side=args.side, task=args.task,
                     trial_name=args.trial_name or Path(primary).stem, session_date=parse_date(args.date, "--date"),
                     inverse_dynamics=args.id,
                     knee_flexion_positive=None if args.knee_flexion is None else args.knee_flexion == "positive",
                     joint_reaction=args.jr, so_activation=args.so_activation, grf=args.grf,
                     stance_plate=args.stance_plate, stances=args.stance or None, producer=args.producer)]
    failed = 0
    with open_store(args.db) as store:
        for kw in todo:
            try:
                sid = import_session(store, **kw)
            except StoreError as exc:
                if not args.shared_lab:
                    raise                  # one session, bad input: the message and exit 2 (runtime.cli.main.main)
                failed += 1
                print(f"rejected {kw['trial_name']}: {exc}", file=sys.stderr)
                continue
            s = next(x for x in store.sessions(kw["pseudonym"]) if x["id"] == sid)
            shown = {k: round(v, 4) for k, v in s["metrics"].items() if v is not None}
            print(f"imported {kw['trial_name']} as session {sid}: {json.dumps(shown)}")
    return EXIT_FAILED if failed else EXIT_OK


def _import_exo_run(args) -> int:
    from runtime.clinic.exo_runs import exo_run_record
    from runtime.clinic.store import SubjectInfo, open_store, parse_date

    for key in ("subject", "side"):
        if getattr(args, key) is None:
            raise ValueError(f"import --exo-run: --{key} is required")
    subject = SubjectInfo(args.subject, args.mass_kg, args.height_m, args.sex, args.affected_side)
    subject.validate()
    rec = exo_run_record(args.exo_run, subject, side=args.side, task=args.task,
                         session_date=parse_date(args.date, "--date"), device_config=args.device_config)
    with open_store(args.db) as store:
        sid = store.add_session(rec)
    shown = {k: round(v, 4) for k, v in rec.metrics.items() if v is not None}
    print(f"imported exo run {rec.trial_name} as session {sid}: {json.dumps(shown)}")
    return EXIT_OK


def cmd_trend(args) -> int:
    from runtime.clinic.config import load_clinic_config
    from runtime.clinic.store import open_store
    from runtime.clinic.trend import format_table, subject_trend, write_plots

    cfg = load_clinic_config(args.config) if args.config else load_clinic_config()
    with open_store(args.db) as store:
        trend = subject_trend(store, args.subject, cfg)
    if args.json:
        print(json.dumps({"subject": trend.subject, "sessions": trend.sessions,
                          "flags": [f.__dict__ for f in trend.flags]}, indent=2, default=str))
    else:
        print(format_table(trend, cfg))
    if args.out:
        files, empty = write_plots(trend, cfg, args.out)
        print(f"plots: {len(files)} PNG(s) in {args.out}" + (f"; no data for {', '.join(empty)}" if empty else ""),
              file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def _batch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ray", metavar="ADDRESS|local", help="run on the Ray cluster at ADDRESS (e.g. 10.0.0.5:6379), or "
                   "'local' for a private Ray instance (the command re-runs itself in a private network namespace: "
                   "only lo, so a PostgreSQL store must then be reached by its unix socket); default: local processes")
    p.add_argument("--workers", type=int, help="parallel workers (default: CPU count, at most the number of trials)")
    p.add_argument("--backend", choices=["cpu", "warp"], default="cpu",
                   help="ID + static optimisation on MuJoCo (cpu) or batched on MuJoCo Warp (warp); in each result")
    p.add_argument("--retries", type=int, default=2, help="retries of a failed trial (default: %(default)s)")
    p.add_argument("--json", help="write per-trial results, errors and throughput to this JSON file")
    p.add_argument("--output", help="write each trial's analysis CSVs under OUTPUT/<trial>/ and reference them in "
                                    "the store (path + SHA-256)")
    p.add_argument("--encrypt-key", help="encrypt those CSVs at rest (*.csv.enc, Fernet) with this key file; created "
                                         "(mode 0600) if missing")


def register(subparsers) -> None:
    p = add_command(subparsers, "batch", help="analyse many trials in parallel (local processes or Ray) into the store",
                    description="Run the analysis chain (IK, measured GRF, inverse dynamics, KAM/KEM, static "
                                "optimisation, knee contact force) over a folder or manifest of trials, in parallel; "
                                "failed trials are retried and reported with their errors; results are recorded in the "
                                "session store; throughput is printed. Over the shared data folder this is a long run "
                                "(every trial with static optimisation: minutes).",
                    examples=["exo batch --trials ../shared/data --ray local"])
    p.add_argument("--trials", required=True, help="manifest (.yaml/.json), folder with manifest.yaml, or the shared "
                                                   "data folder")
    p.add_argument("--db", default=_db_default(), help="store URL (default: %(default)s)")
    p.add_argument("--no-store", action="store_true", help="analyse only; record nothing")
    _batch_args(p)
    p.set_defaults(fn=cmd_batch)

    p = add_command(subparsers, "ingest", help="every shared trial into the session store",
                    description="Analyse every shared trial (as 'batch') and import the lab's own OpenSim results (PS "
                                "static optimisation + joint reaction) into the store. A long run (every trial: "
                                "minutes).",
                    examples=["exo ingest --db sqlite:///runs/clinic.db"])
    p.add_argument("--data", help="shared data folder (default: ../shared/data or $EXO_SHARED_DATA)")
    p.add_argument("--db", default=_db_default(), help="store URL (default: %(default)s)")
    _batch_args(p)
    p.set_defaults(fn=cmd_ingest)

    p = add_command(subparsers, "import",
                    help="import sessions analysed elsewhere (OpenSim .sto/.mot results) or exoskeleton runs",
                    description="Record a session analysed elsewhere: OpenSim inverse dynamics (KEM, KAM where the "
                                "model has knee adduction), joint reaction (total knee contact force) and static "
                                "optimisation activations (co-contraction index); peaks per stance from a force plate "
                                "(--grf, --stance-plate) or --stance intervals. --shared-lab imports the shared trials' "
                                "own lab results; --exo-run an exoskeleton run (assistance delivered, from its log).\n\n"
                                "Your own OpenSim results: exo import --jr JR.sto --so-activation SO_activation.sto "
                                "--subject P017 --mass-kg 75 --height-m 1.8 --side left --grf G.mot --stance-plate 1",
                    examples=["exo import --shared-lab --db sqlite:///runs/clinic.db"])
    p.add_argument("--shared-lab", action="store_true", help="import the shared trials' lab results")
    p.add_argument("--exo-run", metavar="DIR", help="an 'exo run'/'exo hil' output folder: assistance delivered")
    p.add_argument("--device-config", help="with --exo-run: the device YAML the run used (stored with the session)")
    p.add_argument("--data", help="shared data folder for --shared-lab")
    p.add_argument("--id", help="OpenSim inverse dynamics results (.sto/.mot)")
    p.add_argument("--knee-flexion", choices=["positive", "negative"],
                   help="sign of knee flexion in the model's knee_angle coordinate (needed with --id)")
    p.add_argument("--jr", help="OpenSim joint reaction results (.sto)")
    p.add_argument("--so-activation", help="OpenSim static optimisation activations (.sto)")
    p.add_argument("--grf", help="force plates of the trial (.mot/.sto), for the stance of --stance-plate")
    p.add_argument("--stance-plate", help="plate under the limb of interest (e.g. 1)")
    p.add_argument("--stance", type=_stance, action="append", help="stance interval START:END in s (repeatable)")
    p.add_argument("--subject", help="pseudonymous study code (letters, digits, _ and -, with a digit)")
    p.add_argument("--mass-kg", type=float, help="body mass, kg")
    p.add_argument("--height-m", type=float, help="height, m")
    p.add_argument("--sex", default="unknown", choices=["female", "male", "other", "unknown"])
    p.add_argument("--affected-side", default="none", choices=["left", "right", "both", "none"])
    p.add_argument("--side", choices=["left", "right"], help="limb of interest")
    p.add_argument("--task", default="overground walking", help="task (default: %(default)s)")
    p.add_argument("--date", help="session date YYYY-MM-DD")
    p.add_argument("--trial-name", help="name of the session (default: the results file's stem)")
    p.add_argument("--producer", default="OpenSim", help="what produced the results (stored with the session)")
    p.add_argument("--db", default=_db_default(), help="store URL (default: %(default)s)")
    p.set_defaults(fn=cmd_import)

    p = add_command(subparsers, "trend", help="a patient's metrics over sessions with normal ranges, flags and plots",
                    description="Print each metric of one subject over sessions beside its normal range, the flags of "
                                "clinic.yaml (elevated peak KAM, unloading of the affected limb, rising co-contraction) "
                                "and write a PNG per metric. The store must hold the subject's sessions (exo ingest, "
                                "exo import).",
                    examples=["exo trend --subject GC5_PS --db sqlite:///runs/clinic.db --out runs/trend_ps"])
    p.add_argument("--subject", required=True, help="pseudonymous study code")
    p.add_argument("--db", default=_db_default(), help="store URL (default: %(default)s)")
    p.add_argument("--out", help="folder for one PNG per metric")
    p.add_argument("--config", default=None, help="clinic configuration (default: launch/config/clinic.yaml)")
    p.add_argument("--json", action="store_true", help="sessions, metrics and flags as JSON")
    p.set_defaults(fn=cmd_trend)

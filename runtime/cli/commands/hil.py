"""``exo hil``: a hardware-in-the-loop scenario (faults injected at given times), logged to MCAP."""
from __future__ import annotations

import argparse
from typing import Any

from runtime.cli.arguments import add_command
from runtime.cli.run_output import fresh_out, print_run_result


def cmd_hil(args: argparse.Namespace) -> int:
    from hil.scenario import load_scenario
    from runtime.cli.plant_companion import plant_companion
    from runtime.core.config import (
        check_consistency,
        load_calibration,
        load_device,
        load_subject,
    )
    from runtime.pipeline.fault_injection import FaultInjectionStage
    from runtime.session import RunSession

    scenario, base = load_scenario(args.scenario)
    device = load_device(base / scenario.device)
    subject = load_subject(base / scenario.subject)
    calibration = load_calibration(base / scenario.calibration)
    check_consistency(device, calibration)
    if device.bus.interface == "udp_multicast":
        from firmware_bridge.netns import ensure_private_netns

        ensure_private_netns("exo hil over udp_multicast")   # re-executes this command if needed
    out = fresh_out(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if scenario.legs:
        return _run_legs(scenario, device, subject, calibration, out)
    companion = None
    if device.bus.interface in ("udp_multicast", "socketcan"):
        companion = plant_companion(device, subject, calibration, scenario.plant, out, scenario.duration_s)
    plant_text = ("in-process simulated knee" if companion is None else
                  f"emulated AK drives on {device.bus.interface} {device.bus.channel} (own process) on the simulated knee")
    print(f"exo hil: scenario '{scenario.name}', {scenario.duration_s:g} s, {len(scenario.faults)} injected fault(s), "
          f"plant: {plant_text} -> {out}")
    session = RunSession(device, subject, calibration, out, scenario.duration_s,
                         progress=lambda s: print(s, flush=True), companion=companion)
    injector = FaultInjectionStage(list(scenario.faults), device.estimation.rate_hz, session)
    session.extra_stages = [injector]
    result = session.run()
    print("injected: " + ("; ".join(injector.applied) or "none"))
    return print_run_result(result, out)


def _run_legs(scenario: Any, device: Any, subject: Any, calibration: Any, out: Any) -> int:
    """A comparison scenario (``legs:``): one run per leg, figures side by side (runtime/hil_compare.py)."""
    import json

    from runtime.cli.exit_codes import EXIT_FAILED, EXIT_OK
    from runtime.hil_compare import run_legs

    print(f"exo hil: scenario '{scenario.name}', {len(scenario.legs)} legs of {scenario.duration_s:g} s "
          f"({', '.join(leg.name for leg in scenario.legs)}), plant {scenario.plant.rate_hz:g} Hz in its own process "
          f"-> {out}")
    doc = run_legs(scenario, device, subject, calibration, out, progress=lambda s: print(s, flush=True))
    for name, leg in doc["legs"].items():
        if "error" in leg:
            print(f"{name}: error: {leg['error']}")
            continue
        tr, tq, pl, can = leg["tracking"], leg["torque_loop"], leg["plant"], leg["can_command_to_reply_ms"]
        energy = tr["energy_absorbed_j_per_stride"]
        print(f"{name}: delivered vs desired RMSE {tr['rmse_nm']:.4f} N*m, r {tr['r']:.5f}, energy/stride "
              f"{'-' if energy is None else f'{energy:.4f} J'}; 500 Hz missed {tq['missed']} of {tq['cycles']} "
              f"(p99 {tq['lateness_p99_ms']:.3f} ms); CAN cmd->reply p50 {can.get('p50', float('nan')):.3f} p99 "
              f"{can.get('p99', float('nan')):.3f} ms; plant missed {pl['missed_ticks']} of "
              f"{pl['ticks'] + pl['missed_ticks']} ticks ({pl['missed_ticks_pct']:.3f} %, lateness p99 "
              f"{pl['lateness_p99_us']:.0f} us)")
    print("checks: " + json.dumps({k: v for k, v in doc["checks"].items()}, default=float))
    print(f"wrote {out / 'hil_compare.json'}, {out / 'report.html'}")
    return EXIT_OK if doc["checks"]["all_ok"] else EXIT_FAILED


def register(subparsers: Any) -> None:
    """Add ``hil``."""
    p = add_command(
        subparsers, "hil", help="run a hardware-in-the-loop scenario with injected faults",
        description="Run a scenario (YAML: configs, duration, faults and their times) and write the same log and "
                    "report as 'run'. The scenario's duration_s sets the run length (stale_and_estop: 9 s). A scenario with "
                    "'legs' (hil/scenarios/cuff.yaml: rigid knee, cuff without and with the tissue compensator, "
                    "3 x 20 s) runs once per leg and writes the figures side by side to <out>/hil_compare.json and "
                    "<out>/report.html; it exits 1 when a check fails.",
        examples=["exo hil hil/scenarios/stale_and_estop.yaml --out runs/hil1"])
    p.add_argument("scenario", help="scenario YAML (see hil/scenarios/)")
    p.add_argument("--out", default="runs/hil", help="output folder (default: %(default)s)")
    p.set_defaults(fn=cmd_hil)

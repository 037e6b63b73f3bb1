"""Start a node set from its description (``launch/*.yaml``), as the launch files do.

``run_node_set`` runs the chosen nodes in this process (one rclpy executor; the description's
companion processes are started beside it); ``launch_processes``
runs one process per node, as ``ros2 launch`` would, plus the description's companion
processes. Autostart nodes are configured and activated downstream first (CAN bridge, safety,
assistance, estimator, vision, replay) so no node waits on a stale input. Shutdown (SIGINT,
SIGTERM, end of ``--seconds``): the safety node is deactivated first and the executor keeps
spinning until its fade to zero is done (``fade_time_s`` plus two periods), then the others,
the CAN bridge last (it sends zero and leaves the control mode), then every node is shut down.

``python -m runtime.ros2.launcher --description launch/device.yaml [--only NODE ...] [--seconds S]``
(``exo ros launch`` is the same with the private-network-namespace re-execution).
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runtime.ros2.description import NodeSetDescription, NodeSpec, ProcessSpec, load_description, with_overrides

START_ORDER = ("can_bridge", "safety", "assistance", "estimator", "vision", "replay")


def start_companion(desc: NodeSetDescription, proc: ProcessSpec) -> subprocess.Popen:
    """Start a companion process; with ``ready`` set, return once its stdout printed that text.

    Its output is copied to this process's stdout, prefixed with its name. Raises RuntimeError
    (after stopping it) if it exits or stays silent past ``ready_timeout_s``.
    """
    import select
    import threading

    p = subprocess.Popen(desc.process_argv(proc), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         bufsize=1)
    assert p.stdout is not None
    if proc.ready:
        end = time.monotonic() + proc.ready_timeout_s
        while True:
            left = end - time.monotonic()
            if left <= 0 or p.poll() is not None:
                p.kill()
                p.wait()
                raise RuntimeError(f"process {proc.name}: not ready ({proc.ready!r} not seen) within "
                                   f"{proc.ready_timeout_s:g} s; exit code {p.returncode}")
            if select.select([p.stdout], [], [], min(left, 0.1))[0]:
                line = p.stdout.readline()
                print(f"[{proc.name}] {line}", end="", flush=True)
                if proc.ready in line:
                    break

    def pump() -> None:
        for line in p.stdout:
            print(f"[{proc.name}] {line}", end="", flush=True)

    threading.Thread(target=pump, name=f"pump-{proc.name}", daemon=True).start()
    return p


def _order(specs: list[NodeSpec]) -> list[NodeSpec]:
    return sorted(specs, key=lambda s: START_ORDER.index(s.kind))


def run_node_set(desc: NodeSetDescription, only: list[str] | None = None, duration_s: float | None = None,
                 ready: Any = None) -> int:
    """Run the nodes of *desc* (or those named in *only*) in this process until a signal or *duration_s*.

    Returns 0, or 1 when an autostart node failed a transition. *ready* (callable) gets the
    names of the nodes that reached ACTIVE.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from firmware_bridge.netns import require_isolated_dds
    from runtime.ros2.nodes import SafetyNode, lifecycle_label, make_node

    require_isolated_dds("ROS 2 node set")
    specs = [desc.node(n) for n in only] if only else list(desc.nodes)
    stop = {"flag": False}

    def on_signal(signum, _frame):
        stop["flag"] = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    companions = [] if only else [(p.name, start_companion(desc, p)) for p in desc.processes]
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    executor = SingleThreadedExecutor()
    nodes = {}
    failed: list[str] = []
    try:
        for spec in _order(specs):
            node = make_node(spec.kind, spec.name, desc.ros_parameters(spec))
            nodes[spec.name] = (spec, node)
            executor.add_node(node)
        active: list[str] = []
        for name, (spec, node) in nodes.items():
            if not spec.autostart:
                continue
            if node.trigger_configure() != rclpy.lifecycle.TransitionCallbackReturn.SUCCESS:
                failed.append(f"{name}: configure failed")
                continue
            if node.trigger_activate() != rclpy.lifecycle.TransitionCallbackReturn.SUCCESS:
                failed.append(f"{name}: activate failed")
                continue
            active.append(name)
        print(f"exo ros: node set '{desc.name}': active {active}" + (f"; FAILED {failed}" if failed else ""), flush=True)
        if ready is not None:
            ready(active)
        t_end = None if duration_s is None else time.monotonic() + duration_s
        while not stop["flag"] and (t_end is None or time.monotonic() < t_end):
            executor.spin_once(timeout_sec=0.05)
        # orderly stop: safety fades first, while everything keeps spinning
        safety = [n for s, n in nodes.values() if isinstance(n, SafetyNode) and n.configured]
        for node in safety:
            if lifecycle_label(node) == "active":
                node.trigger_deactivate()
        if safety:
            fade = max(n.sup.params.fade_time_s + 2.0 / n.rate_hz for n in safety)
            t_fade = time.monotonic() + fade + 0.05
            while time.monotonic() < t_fade or not all(n.sup.fade_complete for n in safety):
                executor.spin_once(timeout_sec=0.005)
                if time.monotonic() > t_fade + 1.0:
                    break
        for kind in ("vision", "replay", "estimator", "assistance", "can_bridge"):
            for spec, node in nodes.values():
                if spec.kind == kind and lifecycle_label(node) == "active":
                    node.trigger_deactivate()
                    t_stop = time.monotonic() + 0.5
                    while kind == "can_bridge" and node.enabled and time.monotonic() < t_stop:
                        executor.spin_once(timeout_sec=0.005)
        for _spec, node in nodes.values():
            node.trigger_shutdown()
        print(f"exo ros: node set '{desc.name}' stopped", flush=True)
    finally:
        for _spec, node in nodes.values():
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
        for _name, p in companions:      # after the nodes: the drives were zeroed and disabled first
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for s, h in old.items():
            signal.signal(s, h)
    return 1 if failed else 0


def launch_processes(desc: NodeSetDescription, duration_s: float | None = None, settings: list[str] | None = None) -> int:
    """One process per node (and per companion process), as ``ros2 launch`` does; SIGINT/SIGTERM stop them all."""
    procs: list[tuple[str, subprocess.Popen]] = []
    for proc in desc.processes:
        procs.append((proc.name, start_companion(desc, proc)))
    for spec in _order(list(desc.nodes)):
        argv = [sys.executable, "-m", "runtime.ros2.launcher", "--description", str(desc.path), "--only", spec.name]
        for item in settings or []:
            argv += ["--set", item]
        procs.append((spec.name, subprocess.Popen(argv)))
    stop = {"flag": False}

    def on_signal(signum, _frame):
        stop["flag"] = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    t_end = None if duration_s is None else time.monotonic() + duration_s
    try:
        while not stop["flag"] and (t_end is None or time.monotonic() < t_end):
            if any(p.poll() is not None for _n, p in procs):
                break
            time.sleep(0.05)
        # safety first: its process fades torque before exiting; the bridge's watchdog covers the rest
        for name, p in sorted(procs, key=lambda np_: 0 if desc_kind(desc, np_[0]) == "safety" else 1):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                if desc_kind(desc, name) == "safety":
                    try:
                        p.wait(timeout=3.0)
                    except subprocess.TimeoutExpired:
                        pass
        codes = {}
        for name, p in procs:
            try:
                codes[name] = p.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait()
        print("exo ros: exit codes " + json.dumps(codes), flush=True)
        return 0 if all(c == 0 for c in codes.values()) else 1
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def desc_kind(desc: NodeSetDescription, name: str) -> str:
    for n in desc.nodes:
        if n.name == name:
            return n.kind
    return "process"


def build_arg_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m runtime.ros2.launcher", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--description", required=True, help="node-set description YAML (launch/*.yaml)")
    ap.add_argument("--only", action="append", help="run only this node (repeatable)")
    ap.add_argument("--processes", action="store_true", help="one process per node (as ros2 launch)")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (default: until a signal)")
    ap.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                    help="override a node parameter of the description (repeatable)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    if args.seconds is not None and not args.seconds > 0:
        print(f"--seconds = {args.seconds}: must be > 0", file=sys.stderr)
        return 2
    desc = with_overrides(load_description(Path(args.description)), args.set)
    if args.processes:
        return launch_processes(desc, args.seconds, args.set)
    return run_node_set(desc, args.only, args.seconds)


if __name__ == "__main__":
    sys.exit(main())

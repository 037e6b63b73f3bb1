"""``exo ros``: the ROS 2 node set without ``ros2 launch``.

    exo ros check launch/device.yaml                      validate a node-set description, list its nodes
    exo ros launch --description launch/device.yaml       start the same nodes as launch/device.launch.py
                   [--processes] [--seconds S] [--set NODE.PARAM=VALUE ...] [--host-network]
    exo ros probe [--safety-node safety] [--no-deactivate]   record the graph; deactivate safety; JSON out
    exo ros dds --seconds S [--fade-at T] [--rate-hz R]     the chain on Cyclone DDS without rclpy

``launch`` re-executes itself inside a private network namespace (only ``lo``; DDS discovery
stays on this machine) unless ``--host-network`` puts the device on a ROS 2 network on purpose;
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` is set either way. A probe must run in the same
namespace as the nodes (e.g. both under one ``unshare -n``), or both on the host network.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from runtime.cli.arguments import positive_seconds
from runtime.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def _check(args) -> int:
    from runtime.ros2.description import PARAMETERS, load_description, with_overrides

    desc = with_overrides(load_description(args.description), args.set)
    print(f"node set '{desc.name}' ({desc.path})")
    for k, v in desc.config.items():
        print(f"  config.{k}: {v}")
    for n in desc.nodes:
        params = {k: n.parameters.get(k, "(from config)" if d[2] is None else d[2]) for k, d in PARAMETERS[n.kind].items()}
        print(f"  node {n.name:12s} kind {n.kind:11s} autostart {str(n.autostart).lower():5s} {json.dumps(params)}")
    for p in desc.processes:
        print(f"  process {p.name}: {' '.join(desc.process_argv(p))}")
    return EXIT_OK


def _launch(args) -> int:
    from firmware_bridge.netns import DDS_ENV, ENV_DDS_HOST, ensure_private_netns
    from runtime.ros2.description import load_description, with_overrides

    if args.seconds is not None and not args.seconds > 0:
        raise ValueError(f"--seconds = {args.seconds}: must be > 0")
    desc = with_overrides(load_description(args.description), args.set)   # fail before re-executing
    os.environ.update({"ROS_AUTOMATIC_DISCOVERY_RANGE": DDS_ENV["ROS_AUTOMATIC_DISCOVERY_RANGE"]})
    if args.host_network:
        os.environ[ENV_DDS_HOST] = "1"
        print("exo ros launch: --host-network: DDS discovery on this host's network (localhost range)", file=sys.stderr)
    else:
        os.environ.update(DDS_ENV)
        ensure_private_netns("exo ros launch")   # re-executes this command if needed
    from runtime.ros2.launcher import launch_processes, run_node_set

    if args.processes:
        return launch_processes(desc, args.seconds, args.set)
    return run_node_set(desc, None, args.seconds)


def _dds(args) -> int:
    from firmware_bridge.netns import DDS_ENV, ENV_DDS_HOST, ensure_private_netns

    if not args.seconds > 0:
        raise ValueError(f"--seconds = {args.seconds}: must be > 0")
    if not 1.0 <= args.rate_hz <= 1000.0:
        raise ValueError(f"--rate-hz = {args.rate_hz}: allowed 1..1000 Hz")

    if args.host_network:
        os.environ[ENV_DDS_HOST] = "1"
    else:
        os.environ.update(DDS_ENV)
        ensure_private_netns("exo ros dds")
    from runtime.dds.pipeline_publisher import run

    print(json.dumps(run(args.seconds, args.rate_hz, args.fade_at, domain_id=args.domain_id)))
    return EXIT_OK


def _probe(args) -> int:
    from runtime.ros2.probe import probe

    result = probe(args.safety_node, wait_s=args.wait, after_s=args.after, min_torque_nm=args.min_torque,
                   deactivate=not args.no_deactivate)
    print(json.dumps(result, indent=2))
    return EXIT_FAILED if result.get("timed_out") else EXIT_OK


def cmd_ros(args) -> int:
    """Dispatch ``exo ros <sub>``; a bad description or value exits 2 naming it."""
    from runtime.ros2.description import DescriptionError

    try:
        return args.ros_fn(args)
    except (DescriptionError, FileNotFoundError, ValueError) as exc:
        print(f"exo ros {args.ros_command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as exc:
        print(f"exo ros {args.ros_command}: ROS 2 is not installed ({exc}); install the 'ros2' extra "
              "(pip install -e .[ros2])", file=sys.stderr)
        return EXIT_USAGE


def register(subparsers) -> None:
    """Add ``exo ros`` and its subcommands."""
    p = subparsers.add_parser("ros", help="ROS 2 node set: check a description, launch it, probe the graph; DDS",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="example:\n  exo ros check launch/device.yaml")
    sub = p.add_subparsers(dest="ros_command", metavar="<check|launch|probe>", required=True)

    q = sub.add_parser("check", help="validate a node-set description and list its nodes (no ROS 2 needed)")
    q.add_argument("description", help="node-set description YAML, e.g. launch/device.yaml")
    q.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE")
    q.set_defaults(fn=cmd_ros, ros_fn=_check)

    q = sub.add_parser("launch", help="start a node set (the same nodes as launch/*.launch.py)")
    q.add_argument("--description", required=True, help="node-set description YAML, e.g. launch/device.yaml")
    q.add_argument("--processes", action="store_true", help="one process per node, as ros2 launch does")
    q.add_argument("--seconds", type=positive_seconds, default=None, help="stop after S seconds, > 0 (default: until Ctrl-C)")
    q.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a node parameter, e.g. --set safety.rate_hz=200")
    q.add_argument("--host-network", action="store_true",
                   help="run DDS on this host's network instead of a private namespace (a real ROS 2 network)")
    q.set_defaults(fn=cmd_ros, ros_fn=_launch)

    q = sub.add_parser("probe", help="record the graph's messages, deactivate the safety node, print JSON")
    q.add_argument("--safety-node", default="safety")
    q.add_argument("--wait", type=positive_seconds, default=30.0, help="s to wait for torque to flow (default %(default)s)")
    q.add_argument("--after", type=positive_seconds, default=0.6, help="s to keep recording after the deactivation")
    q.add_argument("--min-torque", type=float, default=1.0, help="N*m of command before deactivating")
    q.add_argument("--no-deactivate", action="store_true", help="only record")
    q.set_defaults(fn=cmd_ros, ros_fn=_probe)

    q = sub.add_parser("dds", help="publish the phase -> assistance -> safety chain on Cyclone DDS (no rclpy)")
    q.add_argument("--seconds", type=positive_seconds, required=True, help="run length in s, > 0")
    q.add_argument("--rate-hz", type=float, default=100.0)
    q.add_argument("--fade-at", type=float, default=None, help="s into the run to deactivate (fade to zero)")
    q.add_argument("--domain-id", type=int, default=0)
    q.add_argument("--host-network", action="store_true", help="DDS on this host's network (loopback config still)")
    q.set_defaults(fn=cmd_ros, ros_fn=_dds)

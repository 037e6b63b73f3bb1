"""Node-set descriptions (``launch/*.yaml``): one file read by the launch files and by ``exo ros launch``.

Format::

    name: device                       # a label
    config:                            # paths relative to this file
      device: config/device.yaml
      subject: config/subject.yaml
      calibration: config/calibration.yaml
    nodes:
      - name: safety                   # ROS node name (unique)
        kind: safety                   # vision | estimator | assistance | safety | can_bridge | replay
        autostart: true                # configure + activate at launch (default true)
        parameters: {rate_hz: 500.0}   # ROS parameters, checked against the kind's table below
    processes:                         # optional non-ROS companions (e.g. the HIL plant)
      - name: hil_plant
        cmd: ["{python}", "-m", "hil.plant_process", ...]   # {python} = this interpreter
        ready: '"event": "ready"'      # optional: wait for this text on its stdout before starting nodes
        ready_timeout_s: 20            # optional, s (default 20)

Every node also gets the parameters ``device_config``, ``subject_config`` and
``calibration_config`` (absolute paths). Limits enforced on torque come only from the device
file: no ROS parameter can widen them. Import needs no rclpy.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controllers.command_limits import MAX_TORQUE_NM

NODE_KINDS = ("vision", "estimator", "assistance", "safety", "can_bridge", "replay")

#: kind -> parameter -> (python type, (min, max) or allowed values or None, default; None = from the config files)
PARAMETERS: dict[str, dict[str, tuple[type, Any, Any]]] = {
    "vision": {"rate_hz": (float, (1.0, 120.0), 30.0), "source": (str, None, "synthetic"),
               "blur_margin": (float, (0.1, 2.0), 0.3)},
    "estimator": {"rate_hz": (float, (1.0, 120.0), None), "cadence_hz": (float, (0.1, 3.0), 0.9)},
    "assistance": {"assistance_level": (float, (0.0, 1.0), None), "peak_nm": (float, (0.1, MAX_TORQUE_NM), 15.0)},
    "safety": {"rate_hz": (float, (50.0, 1000.0), None), "diagnostics_hz": (float, (0.5, 50.0), 10.0)},
    "can_bridge": {"rate_hz": (float, (50.0, 1000.0), None), "stale_after_s": (float, (0.005, 0.5), None)},
    "replay": {"log": (str, None, ""), "speed": (float, (0.01, 100.0), 1.0), "loop": (bool, None, False),
               "wait_for_subscribers": (int, (0, 100), 0)},
}
CONFIG_KEYS = ("device", "subject", "calibration")


class DescriptionError(ValueError):
    """A node-set description was rejected; the message names the file, the key and the value."""


@dataclass(frozen=True)
class NodeSpec:
    name: str
    kind: str
    parameters: dict[str, Any]
    autostart: bool = True


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    cmd: tuple[str, ...]
    ready: str = ""                  # text its stdout prints once it is ready ("" = do not wait)
    ready_timeout_s: float = 20.0


@dataclass(frozen=True)
class NodeSetDescription:
    """A validated description; ``config`` holds absolute paths of the three configuration files."""

    path: Path
    name: str
    config: dict[str, Path]
    nodes: tuple[NodeSpec, ...]
    processes: tuple[ProcessSpec, ...] = field(default_factory=tuple)

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise DescriptionError(f"{self.path}: no node named {name!r} (nodes: {[n.name for n in self.nodes]})")

    def ros_parameters(self, spec: NodeSpec) -> dict[str, Any]:
        """All ROS parameters of *spec*: the configuration paths plus its own (validated) parameters."""
        params = {f"{k}_config": str(v) for k, v in self.config.items()}
        params.update(spec.parameters)
        return params

    def process_argv(self, proc: ProcessSpec) -> list[str]:
        return [sys.executable if a == "{python}" else a for a in proc.cmd]


def _check_param(where: str, kind: str, key: str, value: Any) -> Any:
    table = PARAMETERS[kind]
    if key not in table:
        raise DescriptionError(f"{where}.parameters.{key} = {value!r}: unknown parameter for a {kind} node; "
                               f"allowed: {sorted(table)}")
    typ, rng, _default = table[key]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise DescriptionError(f"{where}.parameters.{key} = {value!r}: expected {typ.__name__}")
    if isinstance(rng, tuple) and typ in (int, float):
        lo, hi = rng
        if not (isinstance(value, int) or math.isfinite(value)) or not lo <= value <= hi:
            raise DescriptionError(f"{where}.parameters.{key} = {value!r}: allowed {lo} <= {key} <= {hi}")
    return value


def load_description(path: str | Path) -> NodeSetDescription:
    """Read and validate a node-set description (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"node-set description {p} not found")
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DescriptionError(f"{p}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict):
        raise DescriptionError(f"{p}: expected a mapping at the top level, got {type(doc).__name__}")
    unknown = sorted(set(doc) - {"name", "config", "nodes", "processes"})
    if unknown:
        raise DescriptionError(f"{p}: unknown key(s) {unknown}; allowed: name, config, nodes, processes")
    base = p.parent
    cfg = doc.get("config") or {}
    if not isinstance(cfg, dict) or set(cfg) - set(CONFIG_KEYS):
        raise DescriptionError(f"{p}: config = {cfg!r}: a mapping with keys among {list(CONFIG_KEYS)}")
    config: dict[str, Path] = {}
    for key in CONFIG_KEYS:
        rel = cfg.get(key, f"config/{key}.yaml")
        q = (base / str(rel)).resolve()
        if not q.is_file():
            raise DescriptionError(f"{p}: config.{key} = {rel!r}: file {q} not found")
        config[key] = q
    nodes_doc = doc.get("nodes")
    if not isinstance(nodes_doc, list) or not nodes_doc:
        raise DescriptionError(f"{p}: nodes = {nodes_doc!r}: a non-empty list of nodes is required")
    nodes: list[NodeSpec] = []
    seen: set[str] = set()
    for i, nd in enumerate(nodes_doc):
        where = f"{p}: nodes[{i}]"
        if not isinstance(nd, dict):
            raise DescriptionError(f"{where} = {nd!r}: expected a mapping with name, kind, parameters")
        extra = sorted(set(nd) - {"name", "kind", "parameters", "autostart"})
        if extra:
            raise DescriptionError(f"{where}: unknown key(s) {extra}; allowed: name, kind, parameters, autostart")
        name, kind = nd.get("name"), nd.get("kind")
        if not isinstance(name, str) or not name.replace("_", "a").isalnum() or not name[:1].isalpha():
            raise DescriptionError(f"{where}.name = {name!r}: a ROS node name (letters, digits, _; starts with a letter)")
        if name in seen:
            raise DescriptionError(f"{where}.name = {name!r}: duplicate node name")
        seen.add(name)
        if kind not in NODE_KINDS:
            raise DescriptionError(f"{where}.kind = {kind!r}: allowed {list(NODE_KINDS)}")
        params_doc = nd.get("parameters") or {}
        if not isinstance(params_doc, dict):
            raise DescriptionError(f"{where}.parameters = {params_doc!r}: expected a mapping")
        params = {str(k): _check_param(f"{where} ({name})", kind, str(k), v) for k, v in params_doc.items()}
        if kind == "replay" and params.get("log"):
            params["log"] = str((base / params["log"]).resolve())
        autostart = nd.get("autostart", True)
        if not isinstance(autostart, bool):
            raise DescriptionError(f"{where}.autostart = {autostart!r}: expected true or false")
        nodes.append(NodeSpec(name, kind, params, autostart))
    procs: list[ProcessSpec] = []
    for i, pr in enumerate(doc.get("processes") or []):
        where = f"{p}: processes[{i}]"
        if not isinstance(pr, dict) or not isinstance(pr.get("name"), str) or not isinstance(pr.get("cmd"), list) \
                or not pr["cmd"] or not all(isinstance(a, (str, int, float)) for a in pr["cmd"]) \
                or set(pr) - {"name", "cmd", "ready", "ready_timeout_s"}:
            raise DescriptionError(f"{where} = {pr!r}: expected {{name: str, cmd: [str, ...], ready: str, "
                                   "ready_timeout_s: s}}")
        timeout = pr.get("ready_timeout_s", 20.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
            raise DescriptionError(f"{where}.ready_timeout_s = {timeout!r}: allowed 0 < ready_timeout_s <= 300 s")
        procs.append(ProcessSpec(pr["name"], tuple(str(a) for a in pr["cmd"]), str(pr.get("ready", "")), float(timeout)))
    return NodeSetDescription(p.resolve(), str(doc.get("name") or p.stem), config, tuple(nodes), tuple(procs))


def with_overrides(desc: NodeSetDescription, settings: list[str]) -> NodeSetDescription:
    """*desc* with ``NODE.PARAM=VALUE`` settings applied (VALUE parsed as YAML, checked like the file's)."""
    from dataclasses import replace

    nodes = {n.name: n for n in desc.nodes}
    for item in settings:
        target, sep, raw = item.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not key:
            raise DescriptionError(f"--set {item!r}: expected NODE.PARAM=VALUE")
        if name not in nodes:
            raise DescriptionError(f"--set {item!r}: no node named {name!r} (nodes: {sorted(nodes)})")
        spec = nodes[name]
        value = _check_param(f"--set {name}", spec.kind, key, yaml.safe_load(raw))
        if spec.kind == "replay" and key == "log" and value:
            value = str(Path(value).resolve())
        nodes[name] = replace(spec, parameters={**spec.parameters, key: value})
    return replace(desc, nodes=tuple(nodes[n.name] for n in desc.nodes))


def parameter_default(kind: str, key: str) -> Any:
    """The table default of *key* for *kind* (None: taken from the configuration files)."""
    return PARAMETERS[kind][key][2]


__all__ = ["CONFIG_KEYS", "DescriptionError", "NODE_KINDS", "NodeSetDescription", "NodeSpec", "PARAMETERS",
           "ProcessSpec", "load_description", "parameter_default", "with_overrides"]

"""Drop unused outputs from an ONNX graph and every node only they needed; runs in the build venv (``onnx``).

``python prune_outputs.py --model pose_landmark_full.onnx --drop Identity_2 --out pose_landmark_full.nosegm.onnx``

The landmark model's segmentation mask (``Identity_2``, 1×256×256×1) is not used by the runtime, yet its decoder
(33 of the 219 nodes, two of the five Resize ops, the last one to 256×256) costs about 40 % of the model's CPU
time. Removing the output lets the graph lose those nodes; the nodes kept are unchanged (same weights, same
order), so the remaining outputs are the same numbers. Prints one JSON line: outputs dropped and kept, node
counts before and after, the ops removed, tool versions.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path


def prune(model, drop: list[str]) -> dict:
    """Remove outputs ``drop`` and the nodes/initialisers nothing else needs from ``model`` (in place)."""
    g = model.graph
    names = [o.name for o in g.output]
    missing = [d for d in drop if d not in names]
    if missing:
        raise ValueError(f"--drop: {missing} not among the graph outputs {names}")
    keep = [o for o in g.output if o.name not in drop]
    if not keep:
        raise ValueError("--drop: would remove every output")
    producer = {t: n for n in g.node for t in n.output}
    needed: set[int] = set()
    stack = [o.name for o in keep]
    while stack:
        node = producer.get(stack.pop())
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            stack.extend(node.input)
    before = list(g.node)
    nodes = [n for n in before if id(n) in needed]
    used = {t for n in nodes for t in n.input} | {o.name for o in keep}
    produced = {t for n in nodes for t in n.output}
    inits = [i for i in g.initializer if i.name in used]
    infos = [v for v in g.value_info if v.name in used or v.name in produced]
    removed = collections.Counter(n.op_type for n in before if id(n) not in needed)
    for field, items in ((g.output, keep), (g.node, nodes), (g.initializer, inits), (g.value_info, infos)):
        del field[:]
        field.extend(items)
    return {"dropped_outputs": list(drop), "kept_outputs": [o.name for o in keep], "nodes_before": len(before),
            "nodes_after": len(nodes), "removed_ops": dict(sorted(removed.items()))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--drop", action="append", required=True, help="graph output to remove (repeatable)")
    args = ap.parse_args(argv)

    import onnx

    model = onnx.load(str(args.model))
    try:
        rec = prune(model, args.drop)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    onnx.checker.check_model(model)
    onnx.save(model, str(args.out))
    rec["versions"] = {"onnx": onnx.__version__}
    print(json.dumps(rec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

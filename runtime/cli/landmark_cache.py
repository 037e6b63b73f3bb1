"""The vision front end's landmarks of a video, computed once and cached in ``runs/cache``.

The cache key hashes the video's bytes, the prompt, the subject's height and the source of the vision modules that
produce the landmarks, so a change to any of them recomputes."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

#: Cache folder, relative to the working directory.
CACHE_DIR = Path("runs") / "cache"
#: Modules of ``runtime/vision`` whose source is part of the key.
VISION_MODULES = ("front_end", "tracking", "world", "pose_mediapipe", "pose_onnx", "pose_anchors", "calibration")


def landmark_cache_path(video: str, prompt: dict, height_m: float, monocular_fit: bool = False) -> Path:
    """``runs/cache/landmarks-<16 hex>.npz`` for ``video`` followed from ``prompt`` for a subject ``height_m`` m tall
    (``monocular_fit``: grounded by the model fit, whose modules ``models/kinematics/monocular_*.py`` join the key)."""
    from models.kinematics import monocular_fit as mf
    from runtime.vision import front_end as fe

    h = hashlib.sha1()
    h.update(Path(video).read_bytes())
    h.update(json.dumps([prompt, height_m] + ([True] if monocular_fit else []), sort_keys=True).encode())
    for mod in VISION_MODULES:
        h.update((Path(fe.__file__).parent / f"{mod}.py").read_bytes())
    if monocular_fit:
        for f in sorted(Path(mf.__file__).parent.glob("monocular_*.py")):
            h.update(f.read_bytes())
    return CACHE_DIR / f"landmarks-{h.hexdigest()[:16]}.npz"


def cached_landmarks(video: str, prompt: dict, height_m: float, out: Path, monocular_fit: bool = False) -> Any:
    """The front end's ``LandmarkTrack`` for ``video``, from the cache when video, prompt, height and the vision
    code are unchanged; else computed now (progress printed, anonymised previews under ``out/frames``) and cached."""
    from runtime.vision import front_end as fe
    from runtime.vision.process import VisionSpec

    cache = landmark_cache_path(video, prompt, height_m, monocular_fit)
    spec = VisionSpec(source=video, shm_name="", prompt=prompt, subject_height_m=height_m,
                      preview_path=str(out / "frames"), monocular_fit=monocular_fit)
    if cache.exists():
        print(f"vision: landmarks from the cache {cache}", flush=True)
        return fe.LandmarkTrack.load(str(cache))
    print(f"vision: running the front end over every frame of {Path(video).name} (pose, tracking, anonymisation, "
          "grounding) ...", flush=True)
    track = fe.precompute_landmarks(spec, progress=lambda i, n: print(f"  frame {i}/{n}", flush=True))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    track.save(str(tmp))
    tmp.replace(cache)
    return track

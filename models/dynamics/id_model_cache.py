"""Inverse dynamics' private models kept per model content, for stages that share them read only (issue 22).

:class:`models.dynamics.inverse_dynamics.InverseDynamics` runs on its own copy of the model with constraints,
actuation (and by default springs, dampers and armature) off and its gravity: one copy of the whole ``MjModel`` per
stage (MyoLeg with its meshes and textures is 27 MB; a copy costs 5-15 ms, mostly page faults on fresh memory).  The
offline chain builds one stage per trial on the subject's model, equal for every trial of a subject, so
``InverseDynamics(..., shared_private=True)`` takes the prepared copy from here: one per distinct (model content,
parameters), shared by those stages, which only read it (nothing in ``InverseDynamics`` writes its model after
construction; every stage has its own ``MjData``).

The key (:func:`content_key`): :func:`models.body.subject_cache.model_fingerprint` of the model (a digest of every
compiled array but the mesh, BVH, texture, skin, flex and height-field data, which inverse dynamics never reads, plus
the name buffer), every field of ``model.opt`` (timestep, gravity, flags, fluid ...), and the
:class:`~models.dynamics.inverse_dynamics.InverseDynamicsParams`.  A model with flex bodies is never cached (their
arrays are not in the digest).  At most :data:`MAX_ENTRIES` prepared models (least recently used dropped);
:func:`clear_id_model_cache` empties the cache (benchmarks call it before a cold pass).

Pure computation: the standard library, numpy and mujoco.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import mujoco
import numpy as np

__all__ = ["MAX_ENTRIES", "content_key", "shared_private_model", "clear_id_model_cache", "id_model_cache_stats"]

#: prepared models kept at once (~30 MB each for MyoLeg)
MAX_ENTRIES = 4

_LOCK = threading.Lock()
_ENTRIES: OrderedDict[tuple, mujoco.MjModel] = OrderedDict()
_STATS = {"hits": 0, "misses": 0}


def _opt_key(model: mujoco.MjModel) -> tuple:
    """Every data field of ``model.opt`` as plain values."""
    out = []
    for name in sorted(n for n in dir(model.opt) if not n.startswith("_")):
        v = getattr(model.opt, name)
        if callable(v):
            continue
        out.append((name, tuple(np.ravel(v).tolist()) if isinstance(v, np.ndarray) else v))
    return tuple(out)


def content_key(model: mujoco.MjModel, params: Any) -> tuple | None:
    """The cache key of ``model`` prepared with ``params`` (hashable, frozen), or ``None`` (never cached)."""
    if int(model.nflex):
        return None
    from models.body.subject_cache import model_fingerprint

    return (model_fingerprint(model), _opt_key(model), params)


def shared_private_model(model: mujoco.MjModel, params: Any,
                         prepare: Callable[[mujoco.MjModel], mujoco.MjModel]) -> tuple[mujoco.MjModel, bool]:
    """``(prepared model, shared)``: the cached ``prepare(model)`` for this content and ``params`` (made and kept
    on the first call; ``shared`` True), or a fresh ``prepare(model)`` when the model cannot be keyed."""
    key = content_key(model, params)
    if key is None:
        return prepare(model), False
    with _LOCK:
        hit = _ENTRIES.get(key)
        if hit is not None:
            _ENTRIES.move_to_end(key)
            _STATS["hits"] += 1
            return hit, True
    made = prepare(model)                      # outside the lock: a copy, ~5-15 ms
    with _LOCK:
        hit = _ENTRIES.setdefault(key, made)   # another thread may have put one meanwhile: keep the first
        _ENTRIES.move_to_end(key)
        _STATS["misses"] += 1
        while len(_ENTRIES) > MAX_ENTRIES:
            _ENTRIES.popitem(last=False)
    return hit, True


def clear_id_model_cache() -> None:
    """Forget every prepared model (stages already built keep theirs); the counters restart."""
    with _LOCK:
        _ENTRIES.clear()
        _STATS.update(hits=0, misses=0)


def id_model_cache_stats() -> dict[str, int]:
    """``{"hits", "misses", "entries"}`` since the last clear."""
    with _LOCK:
        return {**_STATS, "entries": len(_ENTRIES)}

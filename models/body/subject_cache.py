"""Memo of :func:`models.body.scaling.scale_model`: one compile per distinct subject model per process.

Scaling MyoLeg to a subject costs one or two ``MjSpec.compile`` (~60-70 ms each: the scaled meshes are processed
again), and the offline chain scales the same subject for every trial of a session (OpenSim scales once per
subject too).  :class:`ScaledModelCache` keeps the compiled result per **content key**:

* the template: the registry's key of the cached, never handed-out ``MjSpec`` it compiles from
  (:attr:`models.body.registry.MusculoskeletalModel.pristine_spec_key`: ``None`` once a caller has read
  ``template.spec``, which it may have edited, and then nothing is cached), its :class:`ModelInfo`, and a
  BLAKE2 digest, when the template's ``model`` was copied out (and so may have been edited), of every array of
  its compiled ``MjModel`` that scaling reads (:func:`model_fingerprint`: all
  arrays but the compiled mesh, BVH, texture, skin, flex and height-field data, which scaling never reads:
  meshes are scaled in the spec), so a caller who edited ``template.model`` gets a fresh scale;
* every factor: the whole :class:`models.body.scaling.ScaleFactors` (subject mass and height, template height
  and mass, height, mass and force factors, strength exponent, the length factor of every body, the static-trial
  measures), which is everything the static markers, marker map and ``length_by_body`` decide;
* the given ``max_isometric_force_n`` (muscle, N) pairs.

Every call returns a **fresh** :class:`MusculoskeletalModel` whose ``model`` and ``spec`` are its own copies
(``copy.copy`` of the ``MjModel``, a deep copy in these bindings, ~6 ms for MyoLeg; ``MjSpec.copy()``), made on
first access; a caller that edits what it got cannot change what the next caller gets (tested).  At most :data:`MAX_ENTRIES` subject models are kept (least recently
used dropped, ~30 MB each for MyoLeg).  :func:`clear_scale_cache` empties it (benchmarks call it to measure a
cold session).

Pure computation: the standard library, numpy and mujoco.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import mujoco
import numpy as np

from models.body.registry import MusculoskeletalModel

__all__ = ["MAX_ENTRIES", "model_fingerprint", "scaled_model_key", "ScaledModelCache", "SCALED_MODELS",
           "clear_scale_cache", "scale_cache_stats"]

#: Subject models kept at once (least recently used dropped).
MAX_ENTRIES = 8

# compiled arrays scaling never reads (meshes are scaled in the spec, not from the compiled vertices)
_NOT_READ = ("mesh_", "bvh_", "tex_", "skin_", "flex_", "flexedge_", "flexvert_", "flexelem_", "oct_", "hfield_data")
_ARRAY_NAMES: list[str] | None = None


def _array_names(model: mujoco.MjModel) -> list[str]:
    global _ARRAY_NAMES
    if _ARRAY_NAMES is None:
        names = []
        for a in sorted(dir(model)):
            if a.startswith("_") or a.startswith(_NOT_READ):
                continue
            try:
                v = getattr(model, a)
            except Exception:                # pragma: no cover - properties that need a compiled feature
                continue
            if isinstance(v, np.ndarray):
                names.append(a)
        _ARRAY_NAMES = names
    return _ARRAY_NAMES


def model_fingerprint(model: mujoco.MjModel) -> str:
    """BLAKE2b digest (hex) of the shapes and bytes of every compiled array scaling reads (~0.5 ms for MyoLeg),
    and of the name buffer; equal models give equal digests, an edited array a different one."""
    h = hashlib.blake2b(digest_size=20)
    for a in _array_names(model):
        v = np.ascontiguousarray(getattr(model, a))
        h.update(a.encode())
        h.update(repr(v.shape).encode())
        h.update(v.tobytes())
    names = getattr(model, "names", None)
    if isinstance(names, (bytes, bytearray)):
        h.update(names)
    return h.hexdigest()


def scaled_model_key(template: Any, factors: Any, forces_n: Mapping[str, float] | None) -> tuple | None:
    """The content key of ``scale_model(template, ...)`` with these resolved ``factors`` (a ``ScaleFactors``)
    and checked forces, or ``None`` when the template's spec is not the registry's untouched one."""
    spec_key = getattr(template, "pristine_spec_key", None)
    if spec_key is None:
        return None
    f = factors
    fac_key = (f.subject.mass_kg, f.subject.height_m, f.template_name, f.template_height_m, f.template_height_basis,
               f.template_mass_kg, f.height_factor, f.mass_factor, f.strength_exponent, f.force_factor,
               tuple(sorted((str(b), float(v)) for b, v in f.length_by_body.items())),
               tuple(sorted((str(k), tuple(map(float, v))) for k, v in f.measured.items())))
    forces = tuple(sorted((str(k), float(v)) for k, v in (forces_n or {}).items()))
    # a model never copied out of its cache is that cache's, unedited (the spec key names it); an own copy may
    # have been edited: its arrays are part of the key
    model_key = "source" if template.model_is_source else model_fingerprint(template.model)
    return (spec_key, template.info, model_key, fac_key, forces)


@dataclass(frozen=True)
class _Scaled:
    model: mujoco.MjModel        # never handed out
    info: Any                    # ModelInfo (frozen)
    spec: mujoco.MjSpec          # never handed out
    factors: Any                 # ScaleFactors (frozen, read-only mappings)
    token: int


class ScaledModelCache:
    """Thread-safe LRU of compiled subject models; :meth:`get` and :meth:`put` return fresh copies."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max = int(max_entries)
        self._entries: OrderedDict[tuple, _Scaled] = OrderedDict()
        self._lock = threading.Lock()
        self._tokens = 0
        self.hits = 0
        self.misses = 0

    def _fresh(self, e: _Scaled) -> MusculoskeletalModel:
        return MusculoskeletalModel(None, e.info, model_source=e.model, spec_source=e.spec,
                                    spec_key=("scaled", e.token), scale_factors=e.factors)

    def get(self, key: tuple | None) -> MusculoskeletalModel | None:
        """A fresh copy of the cached model for ``key``, or ``None`` (``key`` ``None``: never cached)."""
        if key is None:
            return None
        with self._lock:
            e = self._entries.get(key)
            if e is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        return self._fresh(e)

    def put(self, key: tuple | None, model: mujoco.MjModel, info: Any, spec: mujoco.MjSpec, factors: Any) -> MusculoskeletalModel:
        """Keep ``model``/``spec`` (the cache owns them from now on) and return a fresh copy for the caller."""
        if key is None:
            return MusculoskeletalModel(model, info, spec, scale_factors=factors)
        with self._lock:
            self._tokens += 1
            e = _Scaled(model, info, spec, factors, self._tokens)
            self._entries[key] = e
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return self._fresh(e)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "entries": len(self._entries)}


#: The process-wide cache :func:`models.body.scaling.scale_model` uses.
SCALED_MODELS = ScaledModelCache()


def clear_scale_cache() -> None:
    """Forget every cached subject model (the next ``scale_model`` compiles again); counters restart."""
    SCALED_MODELS.clear()


def scale_cache_stats() -> dict[str, int]:
    """``{"hits", "misses", "entries"}`` of the process-wide subject-model cache since the last clear."""
    return SCALED_MODELS.stats()

"""Parse each XML file (OpenSim ``.osim`` models, marker sets) once per process.

A lab's ``.osim`` is ~2 MB and takes ~10-20 ms to parse; the offline chain reads the same file several times per
trial (body set, markers, muscle strengths).  :func:`cached_xml` keeps the parsed tree per file, keyed by the
resolved path, the file size and its modification time in nanoseconds (``os.stat``: a rewritten file is parsed
again; an edit that keeps both the size and the nanosecond mtime is not seen, as for Python's own bytecode cache);
at most :data:`MAX_FILES` trees are kept (least recently used dropped).

The cached tree is shared: the readers in ``models/`` only read it, and anything derived from it that leaves a
reader is built fresh or copied (:func:`cached_derived`), so no caller can corrupt what the next one gets.
Parse errors are not cached: the next call raises again (``OSError`` for a missing file, ``ET.ParseError`` for
bad XML, as ``ET.parse`` does).

Pure computation: the standard library only.
"""

from __future__ import annotations

import copy
import os
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

__all__ = ["MAX_FILES", "cached_xml", "cached_derived", "osim_has_body_set", "clear_xml_cache", "xml_cache_stats"]

#: Parsed files kept at once (least recently used dropped; a 2 MB ``.osim`` tree holds ~20 MB).
MAX_FILES = 16

_LOCK = threading.Lock()
_ROOTS: OrderedDict[tuple[str, int, int], ET.Element] = OrderedDict()
_DERIVED: dict[tuple[tuple[str, int, int], str], Any] = {}
_STATS = {"parses": 0, "hits": 0}


def _key(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    p = Path(path).expanduser().resolve()
    st = p.stat()                         # FileNotFoundError (an OSError) as ET.parse would raise
    return str(p), int(st.st_size), int(st.st_mtime_ns)


def _root_for_key(key: tuple[str, int, int]) -> ET.Element:
    with _LOCK:
        root = _ROOTS.get(key)
        if root is not None:
            _STATS["hits"] += 1
            _ROOTS.move_to_end(key)
            return root
    root = ET.parse(key[0]).getroot()     # outside the lock: a parse error propagates, nothing is stored
    with _LOCK:
        stale = [k for k in _ROOTS if k[0] == key[0] and k != key]       # the file changed: forget the old tree
        _ROOTS[key] = root
        _ROOTS.move_to_end(key)
        stale += list(_ROOTS)[:max(0, len(_ROOTS) - MAX_FILES)]
        for old in stale:
            _ROOTS.pop(old, None)
            for d in [d for d in _DERIVED if d[0] == old]:
                del _DERIVED[d]
        _STATS["parses"] += 1
    return root


def cached_xml(path: str | os.PathLike[str]) -> ET.Element:
    """The root element of the XML file ``path``, parsed once per (path, size, mtime_ns).

    **Shared and read-only**: do not modify the returned tree (copy it with ``copy.deepcopy`` to edit)."""
    return _root_for_key(_key(path))


def cached_derived(path: str | os.PathLike[str], what: str, build: Callable[[ET.Element], Any]) -> Any:
    """``build(root)`` of the file ``path``, computed once per file version and per ``what`` (a name for the
    reader, e.g. ``"markerset.markers"``); every call returns a deep copy, so callers may edit what they get.

    ``build`` must depend on nothing but the tree (no other arguments): pass them in ``what`` if they vary."""
    key = _key(path)
    with _LOCK:
        hit = _DERIVED.get((key, what), _MISSING)
    if hit is _MISSING:
        hit = build(_root_for_key(key))   # errors propagate and are not cached
        with _LOCK:
            if key in _ROOTS:             # the file did not change under us
                _DERIVED[(key, what)] = hit
    return copy.deepcopy(hit)


_MISSING = object()


def osim_has_body_set(path: str | os.PathLike[str]) -> bool:
    """True when the XML file has a ``<BodySet>`` anywhere (an OpenSim model, not a bare marker file)."""
    return cached_derived(path, "osim.has_body_set", lambda root: root.find(".//BodySet") is not None)


def clear_xml_cache() -> None:
    """Forget every parsed file (the next read parses again); the counters restart from zero."""
    with _LOCK:
        _ROOTS.clear()
        _DERIVED.clear()
        _STATS.update(parses=0, hits=0)


def xml_cache_stats() -> dict[str, int]:
    """``{"parses": files parsed, "hits": trees reused, "files": trees held}`` since the last clear."""
    with _LOCK:
        return {**_STATS, "files": len(_ROOTS)}

"""numba's on-disk kernel cache stamped with every kernel module a kernel can inline, not only its own file.

numba (0.68) stamps a cached function with the SHA-256 of *its own* source file, so a kernel that calls an
``@njit`` function of another module (``models/dynamics/mj_pose.py``, ``models/linalg_kernels.py``, ...) kept its
old machine code after an edit there: a silent stale answer, in the tests too.  :class:`ProjectCacheLocator` (and
:class:`ProjectUserDirCacheLocator` where ``NUMBA_CACHE_DIR`` is set) stamps every function defined under
``models/`` with a digest over its own file and every kernel module (a module of ``models/`` that imports numba,
:func:`kernel_sources`) it reaches through imports among kernel modules (:func:`kernel_closure`; contents, not
modification times): an edit to a module a kernel can inline recompiles that kernel, and only those.  Functions of
other packages keep numba's own locators.  (A kernel that took an ``@njit`` function through a module that does not
import numba would escape the closure; none does.)  The cache files stay where numba puts them
(``__pycache__/*.nbi``, ``*.nbc`` beside each module).

``models/__init__.py`` puts the locators first in numba's list (:func:`models.install_kernel_cache_locator`)
before any ``models`` kernel is decorated, without importing numba: through numba's hook
``NUMBA_CACHE_LOCATOR_CLASSES`` (the environment variable, read when numba is imported, and
``numba.core.config.CACHE_LOCATOR_CLASSES`` when numba is already loaded; a value the user set is kept after the
project's locators).  This module imports numba; the package's ``__init__`` does not.
"""
from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

from numba.core.caching import InTreeCacheLocator, UserProvidedCacheLocator

__all__ = ["MODELS_DIR", "ProjectCacheLocator", "ProjectUserDirCacheLocator", "kernel_closure", "kernel_sources",
           "kernels_digest"]

#: the ``models`` package directory: functions defined in files under it get the project's stamp
MODELS_DIR = Path(__file__).resolve().parent


@cache
def _is_kernel(path: Path, mtime_ns: int, size: int) -> bool:
    """Whether a file's text imports numba, read once per version (mtime, size)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return "import numba" in text or "from numba" in text


@cache
def _imports(path: Path, mtime_ns: int, size: int) -> tuple[str, ...]:
    """:func:`_import_names` of a file, parsed once per version (mtime, size)."""
    return _import_names(path.read_text(encoding="utf-8", errors="replace"))


def _version(path: Path) -> tuple[Path, int, int]:
    st = path.stat()
    return path, st.st_mtime_ns, st.st_size


def kernel_sources(root: Path = MODELS_DIR) -> tuple[Path, ...]:
    """Every ``*.py`` under ``root`` whose text imports numba (``import numba`` / ``from numba``), sorted."""
    return tuple(p for p in sorted(root.resolve().rglob("*.py"))
                 if "__pycache__" not in p.parts and _is_kernel(*_version(p)))


def _module_file(name: str, root: Path) -> Path | None:
    """The file under ``root`` of module ``models.a.b`` (``a/b.py`` or ``a/b/__init__.py``), None if not there."""
    parts = name.split(".")
    if parts[0] != root.name:
        return None
    base = root.joinpath(*parts[1:])
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _import_names(text: str) -> tuple[str, ...]:
    """The module names a file's imports may denote (``import a.b``; ``from a.b import c``: ``a.b`` and ``a.b.c``;
    a relative import keeps its leading dots)."""
    out: list[str] = []
    for node in ast.walk(ast.parse(text)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # the package's dotted name is found from the root in _imported_files
                base = "." * node.level + base
            names = [base] + [f"{base}.{a.name}" if not base.endswith(".") else base + a.name for a in node.names]
        out.extend(names)
    return tuple(out)


def _imported_files(path: Path, root: Path) -> set[Path]:
    """The files under ``root`` that ``path`` imports (:func:`_import_names`)."""
    pkg = path.parent.relative_to(root.parent).parts
    out: set[Path] = set()
    for n in _imports(*_version(path)):
        if n.startswith("."):
            level = len(n) - len(n.lstrip("."))
            rest = n[level:]
            n = ".".join(pkg[:len(pkg) - level + 1] + ((rest,) if rest else ()))
        f = _module_file(n, root)
        if f is not None:
            out.add(f)
    return out


def kernel_closure(py_file: Path, root: Path = MODELS_DIR) -> tuple[Path, ...]:
    """``py_file`` and every kernel module (:func:`kernel_sources`) it reaches through imports among kernel
    modules, sorted: the code a kernel defined in ``py_file`` can inline."""
    root = root.resolve()
    kernels = set(kernel_sources(root))
    start = Path(py_file).resolve()
    seen, todo = {start}, [start]
    while todo:
        for f in _imported_files(todo.pop(), root):
            if f in kernels and f not in seen:
                seen.add(f)
                todo.append(f)
    return tuple(sorted(seen))


def kernels_digest(py_file: Path, root: Path = MODELS_DIR) -> bytes:
    """SHA-256 over the paths (relative to ``root``) and contents of :func:`kernel_closure` of ``py_file``."""
    h = hashlib.sha256()
    root = root.resolve()
    for p in kernel_closure(py_file, root):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        h.update(p.read_bytes())
    return h.digest()


@cache
def _process_digest(py_file: str) -> bytes:
    """:func:`kernels_digest` of a file once per process: every kernel of one run is stamped alike."""
    return kernels_digest(Path(py_file))


class _ProjectStamp:
    """The stamp and the scope of the project's locators (a mixin before a numba locator class)."""

    def get_source_stamp(self) -> bytes:
        return _process_digest(str(Path(self._py_file).resolve()))

    @classmethod
    def from_function(cls, py_func, py_file):
        try:
            inside = Path(py_file).resolve().is_relative_to(MODELS_DIR)
        except (OSError, ValueError):
            return None
        return super().from_function(py_func, py_file) if inside else None  # type: ignore[misc]


class ProjectUserDirCacheLocator(_ProjectStamp, UserProvidedCacheLocator):
    """numba's ``NUMBA_CACHE_DIR`` locator (only when that is set) with the stamp of :func:`kernels_digest`, for
    functions defined under :data:`MODELS_DIR`; any other function goes to numba's next locator."""


class ProjectCacheLocator(_ProjectStamp, InTreeCacheLocator):
    """numba's in-tree locator (cache beside the module) with the stamp of :func:`kernels_digest`, for functions
    defined under :data:`MODELS_DIR`; any other function goes to numba's next locator."""

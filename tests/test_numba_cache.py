"""The project's numba cache locator (models/numba_cache.py): every kernel under models/ is stamped with one digest
over all kernel modules, so an edit to a module a kernel inlines (mj_pose.py, linalg_kernels.py) recompiles it;
functions elsewhere keep numba's own stamp."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba

import models
from models import numba_cache

ROOT = Path(__file__).resolve().parents[1]


def test_the_kernel_sources_are_the_models_modules_that_import_numba():
    got = {p.relative_to(numba_cache.MODELS_DIR).as_posix() for p in numba_cache.kernel_sources()}
    # the shared modules whose edits went unseen by their callers' caches, and the callers themselves
    assert {"dynamics/mj_pose.py", "linalg_kernels.py", "dynamics/compiled_kinematics.py",
            "muscles/compiled_so.py", "kinematics/compiled_ik.py"} <= got
    for p in numba_cache.MODELS_DIR.rglob("*.py"):
        text = p.read_text()
        if "njit" in text and ("cache=True" in text or '"cache": True' in text):   # a cached kernel
            assert p.relative_to(numba_cache.MODELS_DIR).as_posix() in got, p


def test_the_digest_follows_the_kernel_modules_a_file_imports_and_nothing_else(tmp_path):
    root = tmp_path / "models"
    (root / "dynamics").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "dynamics" / "__init__.py").write_text("")
    (root / "dynamics" / "pose.py").write_text("import numba\n\n@numba.njit\ndef f(x):\n    return x + 1\n")
    (root / "dynamics" / "caller.py").write_text("import numba\nfrom .pose import f\n")
    (root / "other.py").write_text("import numba\n")                      # a kernel module it does not import
    (root / "plain.py").write_text("X = 1\n")
    (root / "user.py").write_text("import numba\nfrom models.dynamics import caller\nfrom models import plain\n")
    rel = lambda f: [p.relative_to(root).as_posix() for p in numba_cache.kernel_closure(root / f, root)]
    assert rel("user.py") == ["dynamics/caller.py", "dynamics/pose.py", "user.py"]   # transitive, kernels only
    assert rel("dynamics/caller.py") == ["dynamics/caller.py", "dynamics/pose.py"]       # relative import
    d0 = numba_cache.kernels_digest(root / "user.py", root)
    (root / "plain.py").write_text("X = 2\n")
    (root / "other.py").write_text("import numba\nY = 3\n")
    assert numba_cache.kernels_digest(root / "user.py", root) == d0        # neither is code it can inline
    (root / "dynamics" / "pose.py").write_text("import numba\n\n@numba.njit\ndef f(x):\n    return x + 2\n")
    assert numba_cache.kernels_digest(root / "user.py", root) != d0        # two imports away, it changed


def test_a_models_kernel_is_stamped_with_the_digest_and_others_are_not():
    from models import linalg_kernels

    kernel = next(v for v in vars(linalg_kernels).values() if isinstance(v, numba.core.registry.CPUDispatcher))
    loc = kernel._cache._impl.locator
    assert isinstance(loc, (numba_cache.ProjectCacheLocator, numba_cache.ProjectUserDirCacheLocator))
    assert loc.get_source_stamp() == numba_cache.kernels_digest(Path(linalg_kernels.__file__))
    closure = {p.name for p in numba_cache.kernel_closure(numba_cache.MODELS_DIR / "muscles" / "compiled_chain.py")}
    assert {"mj_pose.py", "linalg_kernels.py", "compiled_kinematics.py", "compiled_so.py"} <= closure
    assert numba.core.config.CACHE_LOCATOR_CLASSES.split(",")[:2] == list(models._PROJECT_LOCATORS)
    # a function outside models/ is declined: numba's next locator takes it with its own stamp
    assert numba_cache.ProjectCacheLocator.from_function(test_the_locator_list_keeps_the_users_own_and_is_idempotent,
                                                        __file__) is None


def test_the_locator_list_keeps_the_users_own_and_is_idempotent(monkeypatch):
    # numba's config is restored after the test too (install writes it directly), so later tests see the defaults
    monkeypatch.setattr(numba.core.config, "CACHE_LOCATOR_CLASSES", numba.core.config.CACHE_LOCATOR_CLASSES)
    monkeypatch.setenv("NUMBA_CACHE_LOCATOR_CLASSES", "UserWideCacheLocator")
    value = models.install_kernel_cache_locator()
    assert value.split(",") == list(models._PROJECT_LOCATORS) + ["UserWideCacheLocator"]
    assert models.install_kernel_cache_locator() == value
    assert numba.core.config.CACHE_LOCATOR_CLASSES == value


def test_an_edit_to_an_inlined_module_recompiles_its_caller(tmp_path):
    """End to end in a child process: a kernel module under a copy of ``models/`` inlines another one; after an
    edit to the inlined module only, the caller's next run gives the new answer (numba's own stamp kept the old)."""
    pkg = tmp_path / "models"
    pkg.mkdir()
    (pkg / "__init__.py").write_text((ROOT / "models" / "__init__.py").read_text())
    (pkg / "numba_cache.py").write_text((ROOT / "models" / "numba_cache.py").read_text())
    (pkg / "inlined.py").write_text("import numba\n\n@numba.njit(cache=True)\ndef offset():\n    return 1.0\n")
    (pkg / "caller.py").write_text(textwrap.dedent("""\
        import numba
        from models.inlined import offset

        @numba.njit(cache=True)
        def shifted(x):
            return x + offset()
        """))
    code = "from models.caller import shifted; print(shifted(1.0))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}

    def run() -> str:
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=300, check=True)
        return out.stdout.strip()

    assert run() == "2.0"
    assert any((pkg / "__pycache__").glob("caller.shifted-*.nbi"))          # cached beside the module
    (pkg / "inlined.py").write_text("import numba\n\n@numba.njit(cache=True)\ndef offset():\n    return 10.0\n")
    assert run() == "11.0"

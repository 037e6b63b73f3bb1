"""Pure computation: the musculoskeletal model, kinematics, kinetics, muscles, soft tissue (no I/O threads, no ROS).

Importing the package puts :class:`models.numba_cache.ProjectCacheLocator` first among numba's cache locators
(:func:`install_kernel_cache_locator`), so an edit to any kernel module recompiles the kernels that inline it.
"""
from __future__ import annotations

import os
import sys

#: numba's default locators in numba's order (numba.core.caching._CacheImpl), kept after the project's
_NUMBA_DEFAULT_LOCATORS = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator",
                           "IPythonCacheLocator", "ZipCacheLocator")
_PROJECT_LOCATORS = ("models.numba_cache.ProjectUserDirCacheLocator", "models.numba_cache.ProjectCacheLocator")


def install_kernel_cache_locator() -> str:
    """Put the project's cache locator first in ``NUMBA_CACHE_LOCATOR_CLASSES`` (the environment, read when numba
    is imported; and numba's config when numba is already loaded), without importing numba; the user's own list, if
    any, is kept after it.  Idempotent; returns the list now in effect.  The variable stays in the environment
    (numba's compiler re-reads its configuration whenever a ``NUMBA_*`` variable changes), so child processes
    inherit it: they find the class as long as this ``models`` package is importable there."""
    current = [s.strip() for s in os.environ.get("NUMBA_CACHE_LOCATOR_CLASSES", "").split(",") if s.strip()]
    rest = [s for s in current if s not in _PROJECT_LOCATORS] or list(_NUMBA_DEFAULT_LOCATORS)
    value = ",".join(list(_PROJECT_LOCATORS) + rest)
    os.environ["NUMBA_CACHE_LOCATOR_CLASSES"] = value
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.CACHE_LOCATOR_CLASSES = value
    return value


install_kernel_cache_locator()

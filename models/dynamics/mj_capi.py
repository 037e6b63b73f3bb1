"""MuJoCo's C API called from numba-compiled code: whole-trial loops with no Python between MuJoCo calls.

The Python bindings cost ~0.5-1 us per call (argument checks, GIL release) and a numba dispatch several us more
(unboxing each array argument): on MyoLeg's kinematics -> ID -> SO -> contact chain that overhead was about half of
the ~110 us per frame.  Here the library that the ``mujoco`` package ships (``libmujoco.so*``) is loaded into LLVM's
symbol table (``llvmlite.binding.load_library_permanently``) and its functions are declared to numba as
:class:`numba.types.ExternalFunction` by *name* (so numba's on-disk cache stays valid across processes: no address
is baked into the cached code).  Pointers travel as ``uintp`` (the same register as a pointer on the 64-bit ABIs
numba supports): ``MjModel._address`` / ``MjData._address`` of the bindings, and ``array.ctypes.data`` inside
compiled code for ``mjtNum`` vectors.

Writing ``MjData`` fields from compiled code goes through the NumPy views the bindings return (``data.qpos`` etc.):
they alias MuJoCo's own buffers, which never move for the life of the ``MjData``.

Contract of the compiled callers: never hand MuJoCo a non-finite state and never a model/data pair of different
sizes (they check both before the loop).  MuJoCo's error handler (a C++ exception in the bindings) must not fire
inside compiled code; the functions used here raise only on allocation failure of the arena (not on these
models, whose ``MjData`` is allocated once).

:func:`capi_available` says whether the path can be used (``(False, reason)`` when the bindings lack ``_address``,
the library is not found, or a symbol is missing); callers fall back to the Python loop then.

This module is pure computation: numba, llvmlite and the ``mujoco`` package's own library.
"""
from __future__ import annotations

import ctypes
import glob
import os
from functools import lru_cache

import mujoco
import numpy as np
from numba import njit, types

__all__ = [
    "STAGE_VEL",
    "address",
    "capi_available",
    "clock_ns",
    "mj_applyFT",
    "mj_comPos",
    "mj_comVel",
    "mj_crb",
    "mj_fwdActuation",
    "mj_fwdVelocity",
    "mj_inverse",
    "mj_inverseSkip",
    "mj_kinematics",
    "mj_passive",
    "mj_rnePostConstraint",
    "mj_tendon",
    "mj_transmission",
    "mju_muscleBias",
    "mju_muscleGain",
    "new_timespec",
]

#: ``mjSTAGE_VEL`` (``mj_inverseSkip``'s skip stage: position and velocity stages already current)
STAGE_VEL = int(mujoco.mjtStage.mjSTAGE_VEL)
_CLOCK_MONOTONIC = 1

_MD = types.void(types.uintp, types.uintp)
_SYMBOLS = {
    "mj_kinematics": _MD, "mj_comPos": _MD, "mj_crb": _MD, "mj_fwdVelocity": _MD, "mj_inverse": _MD,
    "mj_rnePostConstraint": _MD, "mj_tendon": _MD, "mj_transmission": _MD, "mj_fwdActuation": _MD,
    "mj_comVel": _MD, "mj_passive": _MD,
    # (len, vel, lengthrange[2], acc0, gainprm[10]) and (len, lengthrange[2], acc0, biasprm[10]) -> force (N)
    "mju_muscleGain": types.double(types.double, types.double, types.uintp, types.double, types.uintp),
    "mju_muscleBias": types.double(types.double, types.uintp, types.double, types.uintp),
    "mj_inverseSkip": types.void(types.uintp, types.uintp, types.intc, types.intc),
    # (m, d, force[3], torque[3], point[3], body, qfrc_target[nv])
    "mj_applyFT": types.void(types.uintp, types.uintp, types.uintp, types.uintp, types.uintp, types.intc,
                             types.uintp),
}


def _library_path() -> str | None:
    here = os.path.dirname(mujoco.__file__)
    found = sorted(glob.glob(os.path.join(here, "libmujoco.so*")) + glob.glob(os.path.join(here, "libmujoco*.dylib")))
    return found[0] if found else None


@lru_cache(maxsize=1)
def _load() -> tuple[bool, str]:
    if not hasattr(mujoco.MjData, "_address") or not hasattr(mujoco.MjModel, "_address"):
        return False, f"mujoco {mujoco.__version__}: the bindings expose no MjModel/MjData._address"
    if ctypes.sizeof(ctypes.c_void_p) != ctypes.sizeof(ctypes.c_size_t):
        return False, "pointers are not uintp-sized on this platform"
    path = _library_path()
    if path is None:
        return False, f"no libmujoco shared library next to {mujoco.__file__}"
    try:
        lib = ctypes.CDLL(path)
        missing = [s for s in _SYMBOLS if not hasattr(lib, s)]
        if missing:
            return False, f"{path} lacks {missing}"
        import llvmlite.binding as llvm

        llvm.load_library_permanently(path)
    except OSError as e:  # pragma: no cover - depends on the installation
        return False, f"cannot load {path}: {e}"
    return True, path


def capi_available() -> tuple[bool, str]:
    """``(True, library path)`` when compiled code can call MuJoCo here, else ``(False, why)``."""
    return _load()


def address(obj: mujoco.MjModel | mujoco.MjData) -> int:
    """The C pointer of an ``MjModel`` / ``MjData`` (the bindings' ``_address``)."""
    return int(obj._address)


_load()   # the symbols must be in LLVM's table before numba links (or loads from its cache) any caller

mj_kinematics = types.ExternalFunction("mj_kinematics", _SYMBOLS["mj_kinematics"])
mj_comPos = types.ExternalFunction("mj_comPos", _SYMBOLS["mj_comPos"])
mj_crb = types.ExternalFunction("mj_crb", _SYMBOLS["mj_crb"])
mj_fwdVelocity = types.ExternalFunction("mj_fwdVelocity", _SYMBOLS["mj_fwdVelocity"])
mj_inverse = types.ExternalFunction("mj_inverse", _SYMBOLS["mj_inverse"])
mj_inverseSkip = types.ExternalFunction("mj_inverseSkip", _SYMBOLS["mj_inverseSkip"])
mj_rnePostConstraint = types.ExternalFunction("mj_rnePostConstraint", _SYMBOLS["mj_rnePostConstraint"])
mj_tendon = types.ExternalFunction("mj_tendon", _SYMBOLS["mj_tendon"])
mj_transmission = types.ExternalFunction("mj_transmission", _SYMBOLS["mj_transmission"])
mj_fwdActuation = types.ExternalFunction("mj_fwdActuation", _SYMBOLS["mj_fwdActuation"])
mj_applyFT = types.ExternalFunction("mj_applyFT", _SYMBOLS["mj_applyFT"])
mj_comVel = types.ExternalFunction("mj_comVel", _SYMBOLS["mj_comVel"])
mj_passive = types.ExternalFunction("mj_passive", _SYMBOLS["mj_passive"])
mju_muscleGain = types.ExternalFunction("mju_muscleGain", _SYMBOLS["mju_muscleGain"])
mju_muscleBias = types.ExternalFunction("mju_muscleBias", _SYMBOLS["mju_muscleBias"])
# POSIX clock_gettime(CLOCK_MONOTONIC, struct timespec *): libc is in the process already
_clock_gettime = types.ExternalFunction("clock_gettime", types.intc(types.intc, types.uintp))



@njit(cache=True, nogil=True)
def clock_ns(buf):
    """Monotonic clock in ns from compiled code; ``buf`` an int64 (2,) scratch array (``struct timespec``)."""
    _clock_gettime(_CLOCK_MONOTONIC, buf.ctypes.data)
    return buf[0] * 1_000_000_000 + buf[1]


def new_timespec() -> np.ndarray:
    """Scratch for :func:`clock_ns`."""
    return np.zeros(2, dtype=np.int64)

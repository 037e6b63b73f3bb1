"""``exo doctor``: what this machine offers the runtime, what is missing, and how to fix it.

Each check returns ``Check(name, status, detail, fix)`` with status ``ok``,
``warn`` (works, but worse: e.g. no real-time priority) or ``missing`` (a feature
that needs it cannot run). Nothing here changes the machine.
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import platform
import shutil
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from firmware_bridge.clock import MonotonicClock
from runtime.core.realtime import probe_realtime

ARPHRD_CAN = 280


@dataclass(frozen=True)
class Check:
    name: str
    status: str      # ok | warn | missing
    detail: str
    fix: str = ""


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def check_python() -> Check:
    v = sys.version_info
    ok = (v.major, v.minor) == (3, 11)
    return Check("python", "ok" if ok else "warn", f"{platform.python_version()} at {sys.executable}",
                 "" if ok else "the tested interpreter is CPython 3.11 (Debian: apt-get install python3.11 python3.11-venv)")


def check_realtime() -> list[Check]:
    out = []
    rt = probe_realtime()
    out.append(Check("SCHED_FIFO", "ok" if rt["sched_fifo"] else "warn",
                     "real-time priority available" if rt["sched_fifo"] else f"refused: {rt.get('sched_fifo_error')}",
                     "" if rt["sched_fifo"] else "run as root or grant CAP_SYS_NICE / an rtprio limit in "
                                                 "/etc/security/limits.d (e.g. '@realtime - rtprio 90')"))
    mem = rt["rlimit_memlock"]
    root = os.geteuid() == 0
    mem_ok = root or mem == "unlimited" or (isinstance(mem, int) and mem >= 512 << 20)
    out.append(Check("locked memory", "ok" if mem_ok else "warn",
                     f"RLIMIT_MEMLOCK = {mem}" + (" (root: CAP_IPC_LOCK, mlockall is not limited)" if root else ""),
                     "" if mem_ok else "raise memlock (limits.d: '@realtime - memlock unlimited') or run as root"))
    out.append(Check("cpus", "ok" if len(rt["cpus"]) >= 2 else "warn", f"affinity {rt['cpus']}",
                     "" if len(rt["cpus"]) >= 2 else "with one CPU the torque and estimation loops share it"))
    clk = MonotonicClock()
    out.append(Check("clock_nanosleep", "ok" if clk.absolute_sleep else "warn",
                     "absolute-deadline sleep on CLOCK_MONOTONIC" if clk.absolute_sleep else "not available: relative sleep fallback",
                     "" if clk.absolute_sleep else "use Linux/glibc for absolute-deadline sleeping"))
    kernel = platform.uname()
    preempt = "PREEMPT_RT" in kernel.version or "PREEMPT RT" in kernel.version
    out.append(Check("kernel", "ok" if preempt else "warn", f"{kernel.release} {kernel.version[:60]}",
                     "" if preempt else "a PREEMPT_RT kernel lowers worst-case wake-up latency on the device"))
    return out


def _can_interfaces() -> list[str]:
    base = Path("/sys/class/net")
    found = []
    if base.is_dir():
        for dev in sorted(base.iterdir()):
            try:
                if int((dev / "type").read_text().strip()) == ARPHRD_CAN:
                    found.append(dev.name)
            except (OSError, ValueError):
                continue
    return found


def _bitrate(iface: str) -> str:
    if not shutil.which("ip"):
        return "unknown (no 'ip' tool)"
    try:
        text = subprocess.run(["ip", "-details", "link", "show", iface], capture_output=True, text=True, timeout=2).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for tok_i, tok in enumerate(text.split()):
        if tok == "bitrate":
            return text.split()[tok_i + 1]
    return "not set"


def check_can() -> list[Check]:
    out = []
    v = _version("python-can")
    out.append(Check("python-can", "ok" if v else "missing", v or "not installed", "" if v else "pip install python-can"))
    try:
        s = socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
        s.close()
        af = True
    except (OSError, AttributeError) as exc:
        af = False
        af_err = str(exc)
    ifaces = _can_interfaces()
    if not af:
        out.append(Check("SocketCAN", "warn", f"kernel has no AF_CAN ({af_err})",
                         "on the device: modprobe can can_raw (and your adapter's driver); here, use the 'virtual' "
                         "or 'udp_multicast' python-can interfaces (HIL rig)"))
    elif not ifaces:
        out.append(Check("SocketCAN", "warn", "AF_CAN available but no CAN interface is up",
                         "ip link set can0 type can bitrate 1000000 && ip link set can0 up "
                         "(or for tests: modprobe vcan && ip link add dev vcan0 type vcan && ip link set vcan0 up)"))
    else:
        details = ", ".join(f"{i} bitrate {_bitrate(i)}" for i in ifaces)
        out.append(Check("SocketCAN", "ok", details))
    mp = _version("msgpack")
    out.append(Check("udp_multicast bus", "ok" if mp else "missing", "python-can udp_multicast needs msgpack: " + (mp or "missing"),
                     "" if mp else "pip install msgpack"))
    return out


def check_gpu() -> list[Check]:
    out = []
    smi = shutil.which("nvidia-smi")
    devs = [p for p in Path("/dev").glob("nvidia[0-9]*")]
    if smi or devs:
        try:
            name = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader"], capture_output=True,
                                  text=True, timeout=5).stdout.strip() if smi else "device nodes present"
        except (OSError, subprocess.TimeoutExpired):
            name = "nvidia-smi failed"
        out.append(Check("GPU", "ok", name))
    else:
        out.append(Check("GPU", "warn", "no NVIDIA GPU found", "the runtime uses CPU paths (ONNX Runtime CPU provider, "
                                                                    "MuJoCo on the CPU); TensorRT/CUDA need a Jetson or NVIDIA GPU"))
    ort = _version("onnxruntime") or _version("onnxruntime-gpu")
    if ort:
        try:
            import onnxruntime
            providers = onnxruntime.get_available_providers()
        except Exception as exc:  # noqa: BLE001 - report, don't crash the doctor
            providers = [f"import failed: {exc}"]
        has_accel = any(p in providers for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider"))
        out.append(Check("ONNX Runtime", "ok" if has_accel else "warn", f"{ort}: providers {providers}",
                         "" if has_accel else "CPU provider only: install onnxruntime-gpu (x86) or the Jetson wheel for TensorRT/CUDA"))
    else:
        out.append(Check("ONNX Runtime", "missing", "not installed", "pip install -e '.[vision]'"))
    warp = _version("mujoco-warp")
    out.append(Check("MuJoCo Warp", "ok" if warp else "warn", warp or "not installed",
                     "" if warp else "pip install -e '.[gpu]' for batched GPU simulation"))
    return out


def check_models() -> list[Check]:
    out = []
    mj = _version("mujoco")
    out.append(Check("mujoco", "ok" if mj == "4.0.0" else ("warn" if mj else "missing"), mj or "not installed",
                     "" if mj == "4.0.0" else "pip install mujoco==4.0.0 (pairs with myo-sim==0.2.3)"))
    for dist, extra in (("myo-sim", "models"), ("musclemimic-models", "models")):
        v = _version(dist)
        out.append(Check(dist, "ok" if v else "missing", v or "not installed", "" if v else f"pip install -e '.[{extra}]'"))
    try:
        from models.body.registry import list_models

        for info in list_models():
            out.append(Check(f"model {info.name}", "ok", f"nq {info.nq}, nv {info.nv}, {info.n_muscles} muscles, "
                                                        f"{info.mass_kg:.1f} kg"))
    except Exception as exc:  # noqa: BLE001 - report, don't crash the doctor
        out.append(Check("musculoskeletal models", "missing", f"{type(exc).__name__}: {exc}",
                         "pip install -e '.[models]' (myo-sim==0.2.3 with mujoco==4.0.0, musclemimic-models)"))
    for dist, what in (("sports2d", "demo walking video"), ("pose2sim", "multi-camera demo videos")):
        v = _version(dist)
        out.append(Check(dist, "ok" if v else "missing", f"{v} ({what})" if v else f"not installed ({what})",
                         "" if v else f"pip install {dist}"))
    try:
        importlib.import_module("rclpy")
        out.append(Check("ROS 2 (rclpy)", "ok", "importable"))
    except Exception as exc:  # noqa: BLE001
        out.append(Check("ROS 2 (rclpy)", "warn", f"not importable ({type(exc).__name__})",
                         "optional: the runtime works without ROS 2; pip install ros-jazzy-rclpy ros-jazzy-rmw-fastrtps-cpp"))
    return out


def shared_data_dir() -> Path:
    """``$EXO_SHARED_DATA`` or ``../shared/data`` beside the repository (one definition: models.io.lab_files)."""
    from models.io.lab_files import shared_data_dir as _shared

    return _shared()


def check_data() -> list[Check]:
    d = shared_data_dir()
    if not d.is_dir():
        return [Check("lab data", "missing", f"{d} not found", "place the shared data beside the repository or set EXO_SHARED_DATA")]
    subs = [s for s in ("GC5_PS", "GC6_DM", "opensim_walk") if (d / s).is_dir()]
    return [Check("lab data", "ok" if len(subs) == 3 else "warn", f"{d}: {', '.join(subs)}",
                  "" if len(subs) == 3 else "some recordings are missing")]


def run_checks() -> list[Check]:
    checks = [check_python()]
    for fn in (check_realtime, check_can, check_gpu, check_models, check_data):
        try:
            checks.extend(fn())
        except Exception as exc:  # noqa: BLE001 - one broken probe must not hide the others
            checks.append(Check(fn.__name__, "warn", f"check failed: {type(exc).__name__}: {exc}"))
    return checks


def format_checks(checks: list[Check]) -> str:
    mark = {"ok": "ok  ", "warn": "WARN", "missing": "MISS"}
    lines = []
    for c in checks:
        lines.append(f"[{mark[c.status]}] {c.name:<18} {c.detail}")
        if c.fix:
            lines.append(f"       fix: {c.fix}")
    n_warn = sum(c.status == "warn" for c in checks)
    n_miss = sum(c.status == "missing" for c in checks)
    lines.append(f"{len(checks)} checks: {len(checks) - n_warn - n_miss} ok, {n_warn} warnings, {n_miss} missing")
    return "\n".join(lines)


def as_json(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]

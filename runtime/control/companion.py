"""A process a run depends on but does not own the code of: started first, stopped last.

Used for the HIL plant (``python -m hil.plant_process``): the run starts it, waits
for its ready line, can send it JSON control lines on stdin (live fault injection on
the run's own clock), and on the way out stops it with SIGTERM and reads its status file.
Nothing here raises into a control loop: ``send`` returns False when the process is gone.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any


class CompanionProcess:
    def __init__(self, name: str, argv: list[str], *, ready_marker: str = '"event": "ready"',
                 status_path: Path | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.ready_marker = ready_marker
        self.status_path = status_path
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.lines: deque[str] = deque(maxlen=2000)
        self._ready = threading.Event()
        self._lock = threading.Lock()

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if self.ready_marker in line:
                self._ready.set()

    def start(self, timeout_s: float = 30.0) -> None:
        """Start and wait for the ready line; raise RuntimeError with its output if it does not come."""
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, cwd=self.cwd)
        threading.Thread(target=self._pump, name=f"{self.name}-stdout", daemon=True).start()
        t_end = time.monotonic() + timeout_s
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > t_end:
                tail = "\n".join(list(self.lines)[-20:])
                self.stop(1.0)
                raise RuntimeError(f"{self.name} did not become ready (exit code {self.proc.returncode}):\n{tail}")

    def send(self, obj: dict[str, Any]) -> bool:
        """Write one JSON line to its stdin; False if it is gone."""
        proc = self.proc
        if proc is None or proc.poll() is not None or proc.stdin is None:
            return False
        try:
            with self._lock:
                proc.stdin.write(json.dumps(obj) + "\n")
                proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def stop(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """SIGTERM, wait, kill if needed; return its status file (if any) and exit code."""
        proc = self.proc
        out: dict[str, Any] = {}
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(2.0)
            out["exit_code"] = proc.returncode
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
        if self.status_path is not None and self.status_path.exists():
            try:
                out["status"] = json.loads(self.status_path.read_text())
            except (OSError, ValueError) as exc:
                out["status_error"] = str(exc)
        out["output_tail"] = list(self.lines)[-10:]
        return out

"""2-D keypoints from any detector, on the BlazePose-33 landmark names: CSV and OpenPose-style JSON folders.

Image frame: pixels, origin at the image's top-left corner, x right, y down. Score 0-1; a landmark not
detected in a frame has NaN pixels and score 0. Time in seconds, strictly increasing, exactly as in the
input (never re-zeroed). Landmark order: :data:`models.body.blazepose.BLAZEPOSE_33`.

CSV form: a ``time_s`` column, then per landmark ``<name>_x_px``, ``<name>_y_px``, ``<name>_score``; a
landmark whose three columns are absent, or a cell left empty, is "not detected"; lines starting with ``#``
are comments (``# image_size_px: W H`` declares the image size). Bad input raises :class:`KeypointsError`
naming the file, line and column. Pure computation: the standard library and numpy.
"""

from __future__ import annotations

import csv
import difflib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.body.blazepose import BLAZEPOSE_33
from models.io.reader_support import frozen

__all__ = [
    "Keypoints2D",
    "KeypointsError",
    "N_LANDMARKS",
    "read_keypoints_csv",
    "write_keypoints_csv",
    "read_openpose_folder",
    "read_keypoints2d",
]

N_LANDMARKS = len(BLAZEPOSE_33)
_INDEX = {name: i for i, name in enumerate(BLAZEPOSE_33)}
_SUFFIXES = ("_x_px", "_y_px", "_score")
_IMAGE_SIZE = re.compile(r"^#\s*image_size_px\s*:\s*(\S+)\s+(\S+)\s*$")


class KeypointsError(ValueError):
    """Unreadable 2-D keypoint input; the message names the file, and the line and column where known."""

    def __init__(self, path: str | Path, message: str, line: int | None = None, column: int | str | None = None):
        self.path = str(path)
        self.line = line
        self.column = column
        where = self.path
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Keypoints2D:
    """2-D BlazePose-33 keypoints per frame: pixels, origin top-left, x right, y down; score 0-1 (0 = not detected)."""

    time_s: np.ndarray  # (N,) s, strictly increasing, as in the input (never re-zeroed)
    xy_px: np.ndarray  # (N, 33, 2) px, NaN where not detected
    score: np.ndarray  # (N, 33) in [0, 1], 0 where not detected
    image_size: tuple[int, int] | None  # (width, height) px when known
    source: str

    def __post_init__(self) -> None:
        t = np.asarray(self.time_s, dtype=float)
        xy = np.array(self.xy_px, dtype=float)
        sc = np.array(self.score, dtype=float)
        n = t.shape[0] if t.ndim == 1 else -1
        if t.ndim != 1:
            raise ValueError(f"Keypoints2D.time_s: expected shape (N,), got {t.shape}")
        if xy.shape != (n, N_LANDMARKS, 2):
            raise ValueError(f"Keypoints2D.xy_px: expected shape ({n}, {N_LANDMARKS}, 2), got {xy.shape}")
        if sc.shape != (n, N_LANDMARKS):
            raise ValueError(f"Keypoints2D.score: expected shape ({n}, {N_LANDMARKS}), got {sc.shape}")
        if not np.all(np.isfinite(t)):
            raise ValueError("Keypoints2D.time_s: non-finite value")
        if n > 1 and not np.all(np.diff(t) > 0):
            k = int(np.argmin(np.diff(t) > 0))
            raise ValueError(f"Keypoints2D.time_s: not strictly increasing at frame {k + 1} ({t[k + 1]!r} after {t[k]!r})")
        if np.any(np.isnan(sc)) or np.any((sc < 0) | (sc > 1)):
            raise ValueError("Keypoints2D.score: values must lie in [0, 1]")
        if np.any(np.isinf(xy)):
            raise ValueError("Keypoints2D.xy_px: infinite value")
        missing = (sc == 0) | np.any(np.isnan(xy), axis=2)
        sc[missing] = 0.0
        xy[missing] = np.nan
        if self.image_size is not None:
            w, h = self.image_size
            if int(w) != w or int(h) != h or w <= 0 or h <= 0:
                raise ValueError(f"Keypoints2D.image_size: expected positive integer (width, height), got {self.image_size!r}")
            object.__setattr__(self, "image_size", (int(w), int(h)))
        object.__setattr__(self, "time_s", frozen(t))
        object.__setattr__(self, "xy_px", frozen(xy))
        object.__setattr__(self, "score", frozen(sc))

    @property
    def n_frames(self) -> int:
        """Number of frames N."""
        return int(self.time_s.shape[0])

    @property
    def detected(self) -> np.ndarray:
        """(N, 33) bool: landmark detected (score > 0) in the frame."""
        return self.score > 0

    def landmark(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(xy_px (N, 2), score (N,))`` of one landmark by its BlazePose name; KeyError lists close names."""
        k = _INDEX.get(name)
        if k is None:
            close = difflib.get_close_matches(name, BLAZEPOSE_33, n=3, cutoff=0.5)
            raise KeyError(f"no BlazePose landmark {name!r}; close matches: {close or list(BLAZEPOSE_33)}")
        return self.xy_px[:, k], self.score[:, k]


# ---------------------------------------------------------------- CSV


def _parse_float(text: str, path: Path, line: int, column: int, header: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise KeypointsError(path, f"{header}: not a number: {text!r}", line, column) from None


def _parse_header(cells: list[str], path: Path, line: int) -> tuple[int, dict[int, list[int]]]:
    """From the header cells: the ``time_s`` cell index and ``{landmark index: [x, y, score cell indices]}``."""
    names = [c.strip() for c in cells]
    seen: dict[str, int] = {}
    for j, name in enumerate(names):
        if name in seen:
            raise KeypointsError(path, f"duplicate column {name!r} (also column {seen[name] + 1})", line, j + 1)
        seen[name] = j
    if "time_s" not in seen:
        raise KeypointsError(path, f"no 'time_s' column; header is {names[:6]}{' ...' if len(names) > 6 else ''}", line)
    triples: dict[int, list[int]] = {}
    unknown: list[tuple[int, str]] = []
    for j, name in enumerate(names):
        if name == "time_s":
            continue
        suffix = next((s for s in _SUFFIXES if name.endswith(s)), None)
        landmark = name[: -len(suffix)] if suffix else None
        if landmark not in _INDEX:
            unknown.append((j, name))
            continue
        triples.setdefault(_INDEX[landmark], [-1, -1, -1])[_SUFFIXES.index(suffix)] = j
    if unknown:
        shown = []
        for j, name in unknown:
            base = re.sub(r"(_x_px|_y_px|_score)$", "", name)
            close = difflib.get_close_matches(base, BLAZEPOSE_33, n=1, cutoff=0.6)
            shown.append(f"{name!r} (column {j + 1}{', did you mean ' + repr(close[0]) + '?' if close else ''})")
        raise KeypointsError(
            path,
            f"unknown landmark column(s): {', '.join(shown)}; expected 'time_s' and '<name>_x_px', '<name>_y_px', "
            f"'<name>_score' for the BlazePose-33 names ({BLAZEPOSE_33[0]!r} ... {BLAZEPOSE_33[-1]!r})",
            line,
            unknown[0][0] + 1,
        )
    for k, cols in triples.items():
        if -1 in cols:
            have = [names[c] for c in cols if c >= 0]
            lack = [BLAZEPOSE_33[k] + s for s, c in zip(_SUFFIXES, cols) if c < 0]
            raise KeypointsError(path, f"landmark {BLAZEPOSE_33[k]!r} has {have} but no {lack}", line, max(cols) + 1)
    return seen["time_s"], triples


def read_keypoints_csv(path: str | Path) -> Keypoints2D:
    """Read the keypoint CSV at ``path`` (format in the module docstring) into :class:`Keypoints2D`.

    Refused with :class:`KeypointsError` (file, line, column): no header or no ``time_s`` column, unknown or
    duplicate columns, an incomplete x/y/score triple, a row with the wrong number of cells, a non-numeric
    cell, an x without a y (or the reverse), a score outside [0, 1], a non-finite time, time not strictly
    increasing, no data rows.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise KeypointsError(path, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise KeypointsError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    image_size: tuple[int, int] | None = None
    header: tuple[int, dict[int, list[int]]] | None = None
    n_cells = 0
    times: list[float] = []
    rows_xy: list[np.ndarray] = []
    rows_sc: list[np.ndarray] = []
    last_line = 0
    for line_no, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            m = _IMAGE_SIZE.match(stripped)
            if m:
                try:
                    w, h = int(m.group(1)), int(m.group(2))
                except ValueError:
                    raise KeypointsError(path, f"image_size_px: expected two integers, got {stripped!r}", line_no) from None
                if w <= 0 or h <= 0:
                    raise KeypointsError(path, f"image_size_px: must be positive, got {w} x {h}", line_no)
                image_size = (w, h)
            continue
        cells = next(csv.reader([raw]))
        if header is None:
            header = _parse_header(cells, path, line_no)
            n_cells = len(cells)
            continue
        if len(cells) != n_cells:
            raise KeypointsError(path, f"{len(cells)} cells, the header has {n_cells}", line_no, min(len(cells), n_cells) + 1)
        t_col, triples = header
        t_text = cells[t_col].strip()
        if not t_text:
            raise KeypointsError(path, "time_s: empty cell", line_no, t_col + 1)
        t = _parse_float(t_text, path, line_no, t_col + 1, "time_s")
        if not math.isfinite(t):
            raise KeypointsError(path, f"time_s: not finite: {t_text!r}", line_no, t_col + 1)
        if times and not t > times[-1]:
            raise KeypointsError(
                path, f"time_s: not strictly increasing ({t_text} s after {times[-1]!r} s on line {last_line})", line_no, t_col + 1
            )
        xy = np.full((N_LANDMARKS, 2), np.nan)
        sc = np.zeros(N_LANDMARKS)
        for k, (cx, cy, cs) in triples.items():
            vals = []
            for c, suffix in ((cx, "_x_px"), (cy, "_y_px"), (cs, "_score")):
                s = cells[c].strip()
                v = _parse_float(s, path, line_no, c + 1, BLAZEPOSE_33[k] + suffix) if s else math.nan
                if math.isinf(v):
                    raise KeypointsError(path, f"{BLAZEPOSE_33[k] + suffix}: not finite: {s!r}", line_no, c + 1)
                vals.append(v)
            x, y, s_val = vals
            if math.isnan(x) != math.isnan(y):
                c = cy if math.isnan(y) else cx
                raise KeypointsError(path, f"{BLAZEPOSE_33[k]}: one of x/y given without the other", line_no, c + 1)
            if not math.isnan(s_val) and not 0.0 <= s_val <= 1.0:
                raise KeypointsError(path, f"{BLAZEPOSE_33[k]}_score: {s_val!r} outside [0, 1]", line_no, cs + 1)
            if not math.isnan(x) and not math.isnan(s_val) and s_val > 0:
                xy[k] = (x, y)
                sc[k] = s_val
        times.append(t)
        rows_xy.append(xy)
        rows_sc.append(sc)
        last_line = line_no
    if header is None:
        raise KeypointsError(path, "no header line (expected 'time_s' and '<name>_x_px', '<name>_y_px', '<name>_score' columns)")
    if not times:
        raise KeypointsError(path, "no data rows after the header")
    return Keypoints2D(
        time_s=np.asarray(times),
        xy_px=np.stack(rows_xy),
        score=np.stack(rows_sc),
        image_size=image_size,
        source=str(path),
    )


def write_keypoints_csv(path: str | Path, kp: Keypoints2D) -> Path:
    """Write ``kp`` as the keypoint CSV (all 33 landmarks; empty cells where not detected); returns the path.

    Floats are written with ``repr`` so :func:`read_keypoints_csv` gives the same arrays back bit for bit.
    """
    path = Path(path)
    header = ["time_s"] + [name + s for name in BLAZEPOSE_33 for s in _SUFFIXES]
    with path.open("w", newline="", encoding="utf-8") as fh:
        fh.write(f"# 2-D keypoints, BlazePose-33 names; px, origin top-left, y down; source: {kp.source}\n")
        if kp.image_size is not None:
            fh.write(f"# image_size_px: {kp.image_size[0]} {kp.image_size[1]}\n")
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for i in range(kp.n_frames):
            row = [repr(float(kp.time_s[i]))]
            for k in range(N_LANDMARKS):
                if kp.score[i, k] > 0:
                    row += [repr(float(kp.xy_px[i, k, 0])), repr(float(kp.xy_px[i, k, 1])), repr(float(kp.score[i, k]))]
                else:
                    row += ["", "", ""]
            w.writerow(row)
    return path


# ---------------------------------------------------------------- OpenPose-style JSON folders

#: BODY_25 (OpenPose) point index -> BlazePose name; Neck (1), MidHip (8) and the small toes have no BlazePose twin.
BODY_25_TO_BLAZEPOSE: dict[int, str] = {
    0: "nose", 2: "right_shoulder", 3: "right_elbow", 4: "right_wrist", 5: "left_shoulder", 6: "left_elbow",
    7: "left_wrist", 9: "right_hip", 10: "right_knee", 11: "right_ankle", 12: "left_hip", 13: "left_knee",
    14: "left_ankle", 15: "right_eye", 16: "left_eye", 17: "right_ear", 18: "left_ear", 19: "left_foot_index",
    21: "left_heel", 22: "right_foot_index", 24: "right_heel",
}

#: COCO-17 point index (MMPose / RTMPose order) -> BlazePose name.
COCO_17_TO_BLAZEPOSE: dict[int, str] = {
    0: "nose", 1: "left_eye", 2: "right_eye", 3: "left_ear", 4: "right_ear", 5: "left_shoulder",
    6: "right_shoulder", 7: "left_elbow", 8: "right_elbow", 9: "left_wrist", 10: "right_wrist", 11: "left_hip",
    12: "right_hip", 13: "left_knee", 14: "right_knee", 15: "left_ankle", 16: "right_ankle",
}

#: HALPE-26 (Sports2D's default ``body_with_feet``, RTMPose): COCO-17 for 0-16, then Head, Neck, Hip (17-19),
#: LBigToe 20, RBigToe 21, LSmallToe 22, RSmallToe 23, LHeel 24, RHeel 25 (Pose2Sim ``skeletons.HALPE_26``).
HALPE_26_TO_BLAZEPOSE: dict[int, str] = {
    **COCO_17_TO_BLAZEPOSE, 20: "left_foot_index", 21: "right_foot_index", 24: "left_heel", 25: "right_heel",
}

_SKELETONS: dict[int, tuple[str, dict[int, str]]] = {
    25: ("BODY_25", BODY_25_TO_BLAZEPOSE),
    17: ("COCO-17", COCO_17_TO_BLAZEPOSE),
    26: ("HALPE-26", HALPE_26_TO_BLAZEPOSE),
}
_FRAME_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def _frame_files(folder: Path) -> list[tuple[int, Path]]:
    files = sorted(folder.glob("*_keypoints.json")) or sorted(folder.glob("*.json"))
    if not files:
        raise KeypointsError(folder, "no OpenPose JSON files ('*_keypoints.json') in the folder")
    numbered: list[tuple[int, Path]] = []
    for f in files:
        m = _FRAME_NUMBER.search(f.name)
        if m is None:
            raise KeypointsError(f, "no frame number in the file name")
        numbered.append((int(m.group(1)), f))
    numbered.sort()
    for (a, fa), (b, fb) in itertools.pairwise(numbered):
        if a == b:
            raise KeypointsError(fb, f"frame number {b} repeated (also {fa.name})")
    return numbered


def read_openpose_folder(path: str | Path, fps: float) -> Keypoints2D:
    """Read a folder of OpenPose-style JSON files (one per frame) into :class:`Keypoints2D`.

    Each file's ``people[i].pose_keypoints_2d`` is a flat list ``x0, y0, c0, x1, ...`` in px (origin top-left,
    y down), BODY_25 (25 points), COCO-17 (17) or HALPE-26 (26, Sports2D's default), mapped onto the BlazePose
    names that exist (COCO-17 has no heels or toes). Frames are sorted by the last number in the file name; ``time_s = frame_number / fps`` (frame numbers as written,
    so an excerpt keeps its place in the video). Where several people are present the one with the highest
    mean confidence is taken, and :attr:`Keypoints2D.source` says in how many frames that happened. A file with
    no person gives a frame with nothing detected. ``c = 0``, x = y = 0 (OpenPose's "missing") or a NaN entry
    (Pose2Sim/Sports2D's) = not detected; confidences above 1 are clipped to 1 and the source says so.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise KeypointsError(folder, "not a folder of OpenPose JSON files")
    try:
        fps_ok = math.isfinite(float(fps)) and float(fps) > 0
    except (TypeError, ValueError):
        fps_ok = False
    if not fps_ok:
        raise KeypointsError(folder, f"fps must be a positive number of frames per second, got {fps!r}")
    fps = float(fps)
    frames = _frame_files(folder)
    skeleton: tuple[str, dict[int, str], Path] | None = None
    xy = np.full((len(frames), N_LANDMARKS, 2), np.nan)
    sc = np.zeros((len(frames), N_LANDMARKS))
    multi = 0
    clipped = 0
    for i, (_, f) in enumerate(frames):
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except OSError as exc:
            raise KeypointsError(f, f"cannot read: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise KeypointsError(f, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
        people = doc.get("people") if isinstance(doc, dict) else None
        if not isinstance(people, list):
            raise KeypointsError(f, "no 'people' list at the top level")
        best: np.ndarray | None = None
        best_conf = -1.0
        n_present = 0
        for j, person in enumerate(people):
            flat = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
            if not isinstance(flat, list):
                raise KeypointsError(f, f"people[{j}]: no 'pose_keypoints_2d' list")
            try:
                arr = np.asarray(flat, dtype=float)
            except (TypeError, ValueError):
                raise KeypointsError(f, f"people[{j}].pose_keypoints_2d: non-numeric entry") from None
            if arr.size == 0:
                continue
            if arr.ndim != 1 or arr.size % 3 or arr.size // 3 not in _SKELETONS:
                raise KeypointsError(
                    f,
                    f"people[{j}].pose_keypoints_2d: {arr.size} numbers; expected 75 (BODY_25), 51 (COCO-17) "
                    "or 78 (HALPE-26)",
                )
            pts = arr.reshape(-1, 3).copy()
            if np.any(np.isinf(pts)):
                raise KeypointsError(f, f"people[{j}].pose_keypoints_2d: infinite entry")
            name, mapping = _SKELETONS[pts.shape[0]]
            if skeleton is None:
                skeleton = (name, mapping, f)
            elif skeleton[0] != name:
                raise KeypointsError(f, f"people[{j}]: {name} points, but {skeleton[2].name} has {skeleton[0]}")
            # NaN (Pose2Sim/Sports2D's "not tracked") = not detected.
            gone = np.any(np.isnan(pts), axis=1)
            pts[gone] = (0.0, 0.0, 0.0)
            c = pts[:, 2]
            if np.any(c < 0):
                k = int(np.argmax(c < 0))
                raise KeypointsError(f, f"people[{j}].pose_keypoints_2d: point {k} confidence {c[k]!r} below 0")
            if np.any(c > 1):
                clipped += 1
                pts[:, 2] = np.minimum(c, 1.0)
                c = pts[:, 2]
            conf = float(c.mean())
            n_present += conf > 0
            if conf > best_conf:
                best, best_conf = pts, conf
        if n_present > 1:
            multi += 1
        if best is None:
            continue
        assert skeleton is not None
        for src, dst in skeleton[1].items():
            x, y, c = best[src]
            if c > 0 and not (x == 0 and y == 0):
                xy[i, _INDEX[dst]] = (x, y)
                sc[i, _INDEX[dst]] = c
    numbers = np.asarray([n for n, _ in frames], dtype=float)
    source = f"{folder} (OpenPose JSON, {skeleton[0] if skeleton else 'no person'}, {fps:g} fps"
    if multi:
        source += f"; several people in {multi} of {len(frames)} frames, the highest mean confidence taken"
    if clipped:
        source += f"; confidences above 1 (RTMPose SimCC) clipped to 1 in {clipped} detections"
    source += ")"
    return Keypoints2D(time_s=numbers / float(fps), xy_px=xy, score=sc, image_size=None, source=source)


def read_keypoints2d(path: str | Path, fps: float | None = None) -> Keypoints2D:
    """Read 2-D keypoints: a CSV file (:func:`read_keypoints_csv`) or an OpenPose JSON folder (needs ``fps``)."""
    p = Path(path)
    if p.is_dir():
        if fps is None:
            raise KeypointsError(p, "an OpenPose JSON folder needs the frame rate (fps)")
        return read_openpose_folder(p, fps)
    if not p.exists():
        raise KeypointsError(p, "no such file or folder")
    if p.suffix.lower() == ".json":
        raise KeypointsError(p, "one OpenPose JSON file is one frame; pass the folder of per-frame files (and fps)")
    return read_keypoints_csv(p)

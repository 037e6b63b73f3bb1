"""``read_trc`` parses the data block at once: the same arrays as the row-by-row parser (the reference) on the
shared lab files and on synthetic files that take either path, and the same errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _subject_inputs_reference import trc_rows_reference
from models.io.lab_files import shared_data_dir
from models.io.trc import read_trc


def _row_by_row(path: Path, width: int) -> np.ndarray:
    return trc_rows_reference(path, width)


def _shared_trcs() -> list[Path]:
    root = shared_data_dir()
    return sorted(root.glob("GC5_PS/trc/*.trc")) + sorted(root.glob("GC6_DM/motion_analysis/*.trc"))


@pytest.mark.parametrize("path", _shared_trcs() or [pytest.param(None, marks=pytest.mark.skip("shared data absent"))])
def test_lab_trc_block_equals_row_by_row(path):
    t = read_trc(path)
    ref = _row_by_row(path, 2 + 3 * len(t.marker_names))
    np.testing.assert_array_equal(t.frame, ref[:, 0].astype(np.int64))
    np.testing.assert_array_equal(t.time_s, ref[:, 1])
    pos = ref[:, 2:].reshape(len(ref), -1, 3)
    pos[np.all(pos == 0.0, axis=2)] = np.nan                              # zeros_as_missing
    scale = {"mm": 1e-3, "cm": 1e-2, "m": 1.0}[t.source_units.lower()]
    np.testing.assert_array_equal(t.positions_m, pos * scale)


def _text(rows: list[str], markers: int = 2) -> str:
    names = "\t\t\t".join(f"M{i}" for i in range(markers))
    xyz = "\t".join(f"X{i + 1}\tY{i + 1}\tZ{i + 1}" for i in range(markers))
    head = ["PathFileType\t4\t(X/Y/Z)\tx.trc", "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits",
            f"100\t100\t{len(rows)}\t{markers}\tmm", f"Frame#\tTime\t{names}", f"\t\t{xyz}", ""]
    return "\n".join(head + rows) + "\n"


@pytest.mark.parametrize("rows", [
    ["1\t0.00\t1\t2\t3\t4\t5\t6", "2\t0.01\t1.5\t2\t3\t4\t5\t6.25"],             # clean: block path
    ["1\t0.00\t1\t2\t3\t4\t5\t6\t", "2\t0.01\t1\t2\t3\t4\t5\t6\t\t"],            # trailing tabs: block path
    ["1 0.00 1 2 3 4 5 6", "2   0.01 1 2 3 4 5 6  "],                          # whitespace separated
    ["1\t0.00\t1\t2\t3\t4\t5\t6", "2\t0.01\t1\t2\t3\t\t\t"],                     # blank marker: row path
    ["1\t0.00\t1\t2\t3\t4\t5\t6", "2\t0.01\t1\t2\t3"],                           # short row: row path
    ["1\t0.00\t1\t2\t3\t4\t5\t6", "2 0.01 1 2 3 4 5 6"],                         # mixed separators: row path
])
def test_synthetic_block_equals_row_by_row(tmp_path, rows):
    p = tmp_path / "x.trc"
    p.write_text(_text(rows))
    t = read_trc(p, zeros_as_missing=False)
    ref = _row_by_row(p, 8)
    np.testing.assert_array_equal(t.time_s, ref[:, 1])
    np.testing.assert_array_equal(t.positions_m, ref[:, 2:].reshape(-1, 2, 3) * 1e-3)


@pytest.mark.parametrize("bad, match", [
    ("2\t0.01\t1\t2\t3\t4\tx5\t6", r"line 8, column 'M1.Y': non-numeric value 'x5'"),
    ("2\tnan\t1\t2\t3\t4\t5\t6", r"line 8, column 'Time': blank value"),
    ("2\t\t1\t2\t3\t4\t5\t6", r"line 8, column 'Time': blank value"),
    ("2\t0.01\t1\t2\t3\t4\t5\t6\t7", r"line 8 has 9 cells"),
])
def test_bad_cells_still_name_line_and_column(tmp_path, bad, match):
    p = tmp_path / "bad.trc"
    p.write_text(_text(["1\t0.00\t1\t2\t3\t4\t5\t6", bad]))
    with pytest.raises(ValueError, match=match):
        read_trc(p)


def test_a_bad_cell_among_rows_with_gaps_is_named(tmp_path):
    p = tmp_path / "mixed.trc"
    p.write_text(_text(["1\t0.00\t1\t2\t3\t4\t5\t6", "2\t0.01\t1\t2\t3", "3\t0.02\t1\t2\t3\t4\t5\t6",
                        "4\t0.03\t1\t2\tbad\t4\t5\t6"]))
    with pytest.raises(ValueError, match=r"line 10, column 'M0.Z': non-numeric value 'bad'"):
        read_trc(p)

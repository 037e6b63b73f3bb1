"""The per-trial inputs of the offline chain (issue 22): subject model, marker set, ``.trc`` and the OpenSim ->
MuJoCo state map, CPU ms per trial on the 8 shared trials (2 subjects), against the replaced paths in the same run.

* ``subject_model cold``: :func:`models.trial_analysis.subject_model` for the 8 trials after
  :func:`~models.body.subject_cache.clear_scale_cache` and :func:`~models.io.xml_cache.clear_xml_cache` (a fresh
  session: each subject scaled once, each file parsed once); ``warm``: the same again (every scale a cache hit).
  Reference: the caches cleared before every trial and the per-segment scale compiled twice (the old path).
* ``marker set``: :func:`~models.body.markerset.from_opensim_markerset` on the subject model (warm XML cache);
  reference: the XML cache cleared before each call (a parse per call, as before).
* ``read_trc``: the data block parsed at once; reference: every row through ``_parse_row``.
* ``state map``: :class:`~models.dynamics.opensim_state.OpenSimStateMap` ``.map`` over all frames (the trial's
  frame count, random coordinates); reference: the per-frame loop (tests/_subject_inputs_reference.py).

``time.process_time``, measured, never asserted.
"""
from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from models.io.lab_files import shared_data_dir
from models.io.shared_trials import shared_trials


def _trials():
    try:
        return [t for t in shared_trials(shared_data_dir()) if Path(t.trc).is_file() and Path(t.markerset).is_file()]
    except OSError:
        return []


def _cpu_ms(fn, items) -> tuple[float, list]:
    c = time.process_time()
    out = [fn(x) for x in items]
    return (time.process_time() - c) * 1e3, out


def _subject_models(trials, monkeypatch):
    from models.body import scaling
    from models.body.subject_cache import clear_scale_cache
    from models.io.xml_cache import clear_xml_cache
    from models.trial_analysis import AnalyzeParams, subject_model

    def one(t):
        return subject_model(AnalyzeParams(t.mass_kg, t.height_m, t.side, muscles=True), Path(t.markerset), [])

    clear_scale_cache()
    clear_xml_cache()
    cold, models = _cpu_ms(one, trials)
    warm, _ = _cpu_ms(one, trials)

    def uncached(t):
        clear_scale_cache()
        clear_xml_cache()
        return one(t)

    with monkeypatch.context() as mp:
        mp.setattr(scaling, "_scaled_spec_and_model",
                   functools.partial(scaling._scaled_spec_and_model, one_compile=False))
        ref, _ = _cpu_ms(uncached, trials)
    return {"subject_model cold": (cold, ref), "subject_model warm": (warm, ref)}, models


def test_subject_inputs_per_trial(benchmark, monkeypatch):
    trials = _trials()
    if not trials:
        pytest.skip(f"shared trials absent at {shared_data_dir()}")
    from _subject_inputs_reference import data_block_rows, reference_map

    from models.body.markerset import from_opensim_markerset
    from models.dynamics.opensim_state import OpenSimStateMap
    from models.io import trc as trc_mod
    from models.io.xml_cache import clear_xml_cache

    warnings.simplefilter("ignore")
    _subject_models(trials[:1], monkeypatch)                          # imports, registry build
    rows, models = benchmark.pedantic(lambda: _subject_models(trials, monkeypatch), rounds=1, iterations=1)
    pairs = list(zip(trials, models))
    ms, _ = _cpu_ms(lambda p: from_opensim_markerset(Path(p[0].markerset), p[1]), pairs)

    def parse_each(p):
        clear_xml_cache()
        return from_opensim_markerset(Path(p[0].markerset), p[1])

    ms_ref, _ = _cpu_ms(parse_each, pairs)
    rows["marker set"] = (ms, ms_ref)
    trc, read = _cpu_ms(lambda t: trc_mod.read_trc(t.trc), trials)
    monkeypatch.setattr(trc_mod, "_data_block", data_block_rows)
    trc_ref, read_ref = _cpu_ms(lambda t: trc_mod.read_trc(t.trc), trials)
    monkeypatch.undo()
    assert all(np.array_equal(a.positions_m, b.positions_m, equal_nan=True) for a, b in zip(read, read_ref))
    m = models[0]
    names = [m.joint(j).name for j in range(m.njnt) if m.jnt_type[j] in (2, 3)]
    names += ["pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz"]
    rng = np.random.default_rng(0)
    jobs = [(OpenSimStateMap(mm, names), rng.uniform(-1, 1, (3, r.time_s.size, len(names))))
            for mm, r in zip(models, read)]
    mp_ms, _ = _cpu_ms(lambda j: j[0].map(*j[1]), jobs)
    mp_ref, _ = _cpu_ms(lambda j: reference_map(j[0], *j[1]), jobs)
    rows["state map"] = (mp_ms, mp_ref)
    rows["read_trc"] = (trc, trc_ref)
    n = len(trials)
    lines = ["", f"subject inputs, {n} shared trials ({sum(r.time_s.size for r in read)} frames), CPU ms per trial",
             f"{'stage':<20} {'ours':>8} {'ref':>8} {'x ref':>7}"]
    for k, (a, b) in rows.items():
        lines.append(f"{k:<20} {a / n:>8.1f} {b / n:>8.1f} {b / max(a, 1e-9):>7.1f}")
    print("\n".join(lines))
    benchmark.extra_info.update({k: {"ms_per_trial": a / n, "ref_ms_per_trial": b / n} for k, (a, b) in rows.items()})

"""The subject-model memo of ``scale_model`` (models/body/subject_cache.py) and its one-compile build: the same
MjModel arrays as the reference (two compiles, no cache), and copies that callers cannot corrupt."""
from __future__ import annotations

import numpy as np
import pytest

from models.body.registry import load_model
from models.body.scaling import SubjectScale, _scaled_spec_and_model, compute_scale_factors, scale_model
from models.body.subject_cache import clear_scale_cache, model_fingerprint, scale_cache_stats

# per-segment factors (as an OpenSim subject model gives them) and subject muscle strengths
LENGTHS = {"femur_l": 1.04, "patella_l": 1.04, "tibia_l": 1.07, "femur_r": 0.98, "calcn_r": 1.05, "pelvis": 1.1}
F0 = {"vasint_l": 900.0, "soleus_r": 6000.0}


def _arrays(m) -> dict[str, np.ndarray]:
    return {a: np.array(getattr(m, a)) for a in dir(m)
            if not a.startswith("_") and isinstance(getattr(m, a, None), np.ndarray)}


def _assert_same_model(a, b) -> None:
    xa, xb = _arrays(a), _arrays(b)
    assert xa.keys() == xb.keys()
    bad = [k for k in xa if xa[k].shape != xb[k].shape or not np.array_equal(xa[k], xb[k], equal_nan=True)]
    assert not bad, f"arrays differ: {bad[:10]}"


@pytest.fixture(scope="module")
def template():
    return load_model("myoleg")


def _reference(template, subject, lengths=None, f0=None):
    """The old path: compile the geometry, then the spec again after the muscle edits; no cache."""
    import dataclasses

    from models.body.scaling import _check_forces

    fac = compute_scale_factors(template, subject)
    if lengths:
        fac = dataclasses.replace(fac, length_by_body={**fac.length_by_body, **lengths})
    forces = _check_forces(template.model, f0, "myoleg") if f0 else None
    return _scaled_spec_and_model(template, fac, forces, one_compile=False)[0]


@pytest.mark.parametrize("lengths, f0", [(None, None), (LENGTHS, F0)])
def test_cached_one_compile_model_equals_the_two_compile_reference(template, lengths, f0):
    subject = SubjectScale(75.0, 1.80)
    clear_scale_cache()
    got = scale_model(load_model("myoleg"), subject, length_by_body=lengths, max_isometric_force_n=f0)
    ref = _reference(template, subject, lengths, f0)
    _assert_same_model(got.model, ref)
    for name in ("body_pos", "body_mass", "body_inertia", "actuator_gainprm", "actuator_biasprm",
                 "actuator_lengthrange", "tendon_lengthspring", "site_pos"):     # the ones that matter, by name
        np.testing.assert_array_equal(getattr(got.model, name), getattr(ref, name))
    again = scale_model(load_model("myoleg"), subject, length_by_body=lengths, max_isometric_force_n=f0)
    assert scale_cache_stats()["hits"] == 1 and scale_cache_stats()["entries"] == 1
    _assert_same_model(again.model, ref)
    assert again.model is not got.model and again.scale_factors == got.scale_factors
    _assert_same_model(again.spec.compile(), ref)                  # the carried spec compiles to the same model


def test_a_caller_mutating_its_copy_does_not_reach_the_next_caller(template):
    subject = SubjectScale(70.0, 1.72)
    clear_scale_cache()
    first = scale_model(load_model("myoleg"), subject, length_by_body=LENGTHS)
    ref = _arrays(first.model)
    first.model.body_mass[:] = 1.0
    first.model.actuator_gainprm[:, 2] *= 3.0
    first.model.body_pos[1:] += 0.1
    first.spec.bodies[1].pos = [9.0, 9.0, 9.0]
    second = scale_model(load_model("myoleg"), subject, length_by_body=LENGTHS)
    assert scale_cache_stats()["hits"] == 1
    for k, v in _arrays(second.model).items():
        np.testing.assert_array_equal(v, ref[k], err_msg=k)
    assert not np.allclose(second.spec.bodies[1].pos, 9.0)


def test_the_key_follows_every_input(template):
    clear_scale_cache()
    subject = SubjectScale(70.0, 1.72)
    a = scale_model(load_model("myoleg"), subject)
    for kwargs in ({"length_by_body": {"tibia_r": 1.01}}, {"max_isometric_force_n": {"soleus_r": 5000.0}},
                   {"strength_exponent": 2 / 3}):
        scale_model(load_model("myoleg"), subject, **kwargs)
    scale_model(load_model("myoleg"), SubjectScale(70.0, 1.73))
    assert scale_cache_stats() == {"hits": 0, "misses": 5, "entries": 5}
    # a template whose compiled model was edited is a different template
    edited = load_model("myoleg")
    edited.model.body_mass[2] *= 1.5
    assert model_fingerprint(edited.model) != model_fingerprint(template.model)
    b = scale_model(edited, subject)
    assert scale_cache_stats()["misses"] == 6
    assert not np.allclose(b.model.body_mass, a.model.body_mass)
    # a template whose spec was handed out (and may have been edited) is never cached
    read = load_model("myoleg")
    read.spec.body("tibia_r").pos = np.asarray(read.spec.body("tibia_r").pos) * 1.2
    assert read.pristine_spec_key is None
    c = scale_model(read, subject)
    assert scale_cache_stats() == {"hits": 0, "misses": 6, "entries": 6}
    assert not np.allclose(c.model.body_pos, a.model.body_pos)


def test_registry_spec_is_copied_lazily_and_privately():
    m = load_model("myoleg")
    assert m.pristine_spec_key is not None
    s1 = m.editable_spec()
    s1.bodies[1].pos = [5.0, 5.0, 5.0]
    assert m.pristine_spec_key is not None and not np.allclose(m.spec.bodies[1].pos, 5.0)
    assert m.pristine_spec_key is None                            # .spec was read: the caller may edit it
    first = m.spec                                                # made once, then kept
    assert m.spec is first and load_model("myoleg").spec is not first


def test_scaling_reads_the_template_without_copying_it():
    clear_scale_cache()
    t = load_model("myoleg")
    scaled = scale_model(t, SubjectScale(80.0, 1.85), length_by_body={"tibia_l": 1.02})
    assert t.model_is_source and t.pristine_spec_key is not None          # nothing copied, nothing handed out
    assert scaled.model_is_source                                          # the result copies on first use too
    own = t.model
    assert not t.model_is_source and own is t.model
    own.body_mass[:] = 0.0
    assert load_model("myoleg").readonly_model.body_mass.sum() > 70.0     # the cache's model is untouched
    again = scale_model(load_model("myoleg"), SubjectScale(80.0, 1.85), length_by_body={"tibia_l": 1.02})
    assert scale_cache_stats()["hits"] == 1
    np.testing.assert_array_equal(again.model.body_mass, scaled.model.body_mass)

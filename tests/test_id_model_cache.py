"""InverseDynamics(shared_private=True) (models/dynamics/id_model_cache.py): one private model per model content and
parameters, shared read only by the stages; the same results bit for bit as a stage with its own copy."""
from __future__ import annotations

import copy

import mujoco
import numpy as np
import pytest
from _support import hinge_sinusoid_poses

from models.body.registry import load_model
from models.dynamics import id_model_cache as cache
from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
from models.dynamics.wrenches import ExternalWrenchTrial

FIELDS = ("generalized_force", "coordinate_force", "residual_force_n", "residual_moment_nm", "reaction_force_n",
          "reaction_moment_nm")
P = InverseDynamicsParams(reaction_bodies=("tibia_l",), gravity_m_s2=9.80665)


def _walk(m, n: int = 30, seed: int = 2):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 100.0
    q = hinge_sinusoid_poses(m, n, rng, 0.1)
    qd, qdd = rng.normal(0, 0.5, (n, m.nv)), rng.normal(0, 2.0, (n, m.nv))
    F = np.column_stack([rng.normal(0, 20, n), rng.normal(0, 20, n), 600 + rng.normal(0, 50, n)])
    ext = [ExternalWrenchTrial("calcn_l", F, np.column_stack([0.1 + 0 * t, 0.1 + 0 * t, 0 * t]), np.zeros((n, 3)), t)]
    return q, qd, qdd, ext


def _arrays(m) -> dict[str, np.ndarray]:
    return {k: np.array(getattr(m, k)) for k in dir(m) if not k.startswith("_")
            and isinstance(getattr(m, k, None), np.ndarray)}


@pytest.fixture(autouse=True)
def _clean():
    cache.clear_id_model_cache()
    yield
    cache.clear_id_model_cache()


def test_equal_models_share_one_private_model_with_the_same_results():
    a, b = load_model("myoleg").model, load_model("myoleg").model        # two copies of one content
    own = InverseDynamics(a, P)
    s1, s2 = InverseDynamics(a, P, shared_private=True), InverseDynamics(b, P, shared_private=True)
    assert s1.shares_private_model and s2.model is s1.model and own.model is not s1.model
    assert not own.shares_private_model
    assert cache.id_model_cache_stats() == {"hits": 1, "misses": 1, "entries": 1}
    before = _arrays(s1.model)
    flags = (int(s1.model.opt.disableflags), int(s1.model.opt.enableflags), tuple(s1.model.opt.gravity))
    q, qd, qdd, ext = _walk(a)
    for compiled in (True, False):
        ref = own.run(q, qd, qdd, ext, compiled=compiled)
        for st in (s1, s2, s1):                       # interleaved: each stage has its own MjData
            got = st.run(q, qd, qdd, ext, compiled=compiled)
            for f in FIELDS:
                np.testing.assert_array_equal(getattr(got, f), getattr(ref, f), err_msg=f"{f} compiled={compiled}")
    assert np.abs(ref.reaction_force_n).max() > 100.0
    after = _arrays(s1.model)                         # the stages never wrote the shared model
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v, err_msg=k)
    assert (int(s1.model.opt.disableflags), int(s1.model.opt.enableflags), tuple(s1.model.opt.gravity)) == flags


def test_other_content_options_or_parameters_get_their_own_model():
    base = load_model("myoleg").model
    first = InverseDynamics(base, P, shared_private=True).model
    assert InverseDynamics(copy.deepcopy(base), P, shared_private=True).model is first
    heavier = copy.deepcopy(base)
    heavier.body_mass[3] *= 1.01
    slower = copy.deepcopy(base)
    slower.opt.timestep *= 2.0
    no_gravity = copy.deepcopy(base)
    no_gravity.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_GRAVITY)
    others = [InverseDynamics(m, P, shared_private=True).model for m in (heavier, slower, no_gravity)]
    others.append(InverseDynamics(base, InverseDynamicsParams(reaction_bodies=("tibia_l",)), shared_private=True).model)
    assert all(o is not first for o in others) and len({id(o) for o in others}) == len(others)
    assert others[0].body_mass[3] == pytest.approx(base.body_mass[3] * 1.01)
    assert others[2].opt.disableflags & int(mujoco.mjtDisableBit.mjDSBL_GRAVITY)
    np.testing.assert_allclose(others[3].opt.gravity, base.opt.gravity)          # the model's own gravity kept


def test_the_cache_is_bounded_and_cleared():
    base = load_model("myoleg").model
    kept = []
    for k in range(cache.MAX_ENTRIES + 2):
        m = copy.deepcopy(base)
        m.body_mass[2] += 0.001 * (k + 1)
        kept.append(InverseDynamics(m, P, shared_private=True))
    assert cache.id_model_cache_stats()["entries"] == cache.MAX_ENTRIES
    cache.clear_id_model_cache()
    assert cache.id_model_cache_stats() == {"hits": 0, "misses": 0, "entries": 0}
    assert np.isfinite(kept[0].model.body_mass).all()            # built stages keep their model

"""The tendon kernel (:mod:`models.muscles.compiled_tendon`) equals MuJoCo's ``mj_tendon`` (issue 22).

* ``exact=True``: bit for bit (``ten_length``, sparse ``ten_J``, ``ten_wrapadr``/``ten_wrapnum``, ``wrap_obj``,
  ``wrap_xpos``) on every frame of the shared trials PS ss1 and DM og1 (IK on the subject-scaled models) and on
  random poses in the joint ranges of MyoLeg.
* ``exact=False`` (what the compiled SO runs: the dofs shared by a segment's two end points skipped, their exact
  term being zero): lengths and wrap points bit for bit, ``ten_J`` within 1e-12 of each row's largest entry (the
  stated tolerance of issue 22; reached: ~2e-14) on the same frames.
* The frames it does not reproduce are handed back (a side site inside its cylinder, a sphere's sites collinear
  with its centre), and the models it does not cover get no kernel (fixed tendons, pulleys, wrap geoms without
  a side site: MyoFullBody).
* The build check (:func:`tendon_matches`) refuses a kernel that disagrees, and the compiled chain uses the kernel
  on GC5 (its SO outputs against the Python stages: ``tests/test_compiled_chain.py``, bit for bit).
"""
from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest

from models.body.registry import load_model
from models.io.lab_files import shared_data_dir
from models.io.shared_trials import shared_trials
from models.muscles.compiled_tendon import (
    random_poses,
    tendon_errors,
    tendon_frame,
    tendon_matches,
    tendon_pack,
    tendon_views,
)

DATA = shared_data_dir()


def _assert_same_as_mj_tendon(m: mujoco.MjModel, poses: np.ndarray) -> int:
    """Kernel (exact form) vs ``mj_tendon`` on each pose (:func:`tendon_errors`): lengths, ``ten_J`` and the wrap
    points, objects and counts bit for bit; returns the number of frames the kernel computed (the others it handed
    back)."""
    T = tendon_pack(m)
    assert T is not None
    worst, same, done = tendon_errors(m, T, poses)
    assert same and worst == 0.0, (same, worst)
    return done


@pytest.mark.parametrize("name", ["PS_ss1", "DM_og1"])
def test_every_frame_of_a_shared_trial_is_mj_tendon_bit_for_bit(name):
    from models.trial_analysis import AnalyzeParams, trial_kinematics

    trials = {t.name: t for t in shared_trials(DATA)} if DATA.is_dir() else {}
    if name not in trials or not Path(trials[name].trc).is_file():
        pytest.skip(f"shared trial {name} absent at {DATA}")
    t = trials[name]
    kin = trial_kinematics(Path(t.trc), Path(t.markerset), AnalyzeParams(t.mass_kg, t.height_m, t.side,
                                                                         muscles=False))
    m, q = kin.model, kin.mapped.qpos
    q = q[np.all(np.isfinite(q), axis=1)]
    assert q.shape[0] > 100
    assert _assert_same_as_mj_tendon(m, q) == q.shape[0]    # no frame handed back on a walk
    assert tendon_matches(m, tendon_pack(m))
    _assert_fast_within_tolerance(m, q)


def _assert_fast_within_tolerance(m: mujoco.MjModel, poses: np.ndarray) -> None:
    """The chain's kernel (``exact=False``: shared dofs skipped): lengths and wrap points bit for bit, ``ten_J``
    within 1e-12 of each row's largest entry (it reaches ~2e-14: ``mj_tendon``'s rounding noise on those dofs)."""
    worst, same, done = tendon_errors(m, tendon_pack(m, exact=False), poses)
    assert same and done == poses.shape[0]
    assert worst <= 1e-12, worst
    assert worst > 0.0          # not the exact kernel: the skipped terms are noise in mj_tendon, zero here


def test_random_poses_in_the_joint_ranges_are_mj_tendon_bit_for_bit():
    m = load_model("myoleg").model
    wt = np.asarray(m.wrap_type)
    assert np.sum(wt == int(mujoco.mjtWrap.mjWRAP_CYLINDER)) > 0 and np.sum(wt == int(mujoco.mjtWrap.mjWRAP_SPHERE)) > 0
    poses = random_poses(m, 300, seed=5)
    d = mujoco.MjData(m)
    wrapped = 0
    for q in poses[:50]:       # the poses do wrap: tangent points (geom ids) on the paths
        d.qpos[:] = q
        mujoco.mj_fwdPosition(m, d)
        wrapped += int(np.sum(d.wrap_obj.reshape(-1)[:int(d.ten_wrapnum.sum())] >= 0))
    assert wrapped > 50 * 10
    assert _assert_same_as_mj_tendon(m, poses) == poses.shape[0]
    _assert_fast_within_tolerance(m, poses)


_CYL = """<mujoco><worldbody>
  <body><joint name='h' type='hinge' axis='0 0 1' range='-2 2' limited='true'/>
    <site name='a' pos='{ax} 0.2 0'/><geom name='g' type='cylinder' size='0.05 0.2' pos='0 0 0'/>
    <site name='s' pos='{sx} {sy} 0'/></body>
  <body pos='0 0 0'><joint type='hinge' axis='0 1 0'/><geom size='0.01' pos='0 0 0.5'/><site name='b' pos='0.2 -0.2 0.05'/>
  </body></worldbody>
  <tendon><spatial name='t'><site site='a'/><geom geom='g' sidesite='s'/><site site='b'/></spatial>{extra}</tendon>
</mujoco>"""


def test_a_side_site_inside_its_cylinder_is_handed_back():
    outside = mujoco.MjModel.from_xml_string(_CYL.format(ax=0.2, sx=-0.2, sy=0.0, extra=""))
    inside = mujoco.MjModel.from_xml_string(_CYL.format(ax=0.2, sx=-0.01, sy=0.0, extra=""))
    poses = random_poses(outside, 20, seed=1)
    assert _assert_same_as_mj_tendon(outside, poses) == 20
    assert _assert_same_as_mj_tendon(inside, poses) == 0      # wrap_inside: mj_tendon's frame, every time
    assert tendon_matches(inside, tendon_pack(inside))         # nothing computed, nothing wrong


def test_a_sphere_collinear_with_its_sites_is_handed_back():
    m = mujoco.MjModel.from_xml_string("""<mujoco><worldbody>
      <body><joint type='slide' axis='0 0 1' range='-0.1 0.1' limited='true'/><site name='a' pos='-0.3 0 0'/>
        <geom name='g' type='sphere' size='0.05'/><site name='s' pos='0 0.2 0'/></body>
      <body><joint type='slide' axis='0 1 0'/><geom size='0.01'/><site name='b' pos='0.3 0 0'/></body>
      </worldbody><tendon><spatial><site site='a'/><geom geom='g' sidesite='s'/><site site='b'/></spatial></tendon>
      </mujoco>""")
    T, d = tendon_pack(m), mujoco.MjData(m)
    mujoco.mj_fwdPosition(m, d)                 # a, the sphere's centre and b on one line
    assert not tendon_frame(T, tendon_views(d))
    d.qpos[1] = 0.02                            # b off the line: computed, equal
    assert _assert_same_as_mj_tendon(m, d.qpos[None].copy()) == 1


def test_models_without_a_kernel():
    fixed = mujoco.MjModel.from_xml_string(_CYL.format(ax=0.2, sx=-0.2, sy=0.0, extra=(
        "<fixed name='f'><joint joint='h' coef='1'/></fixed>")))
    no_side = mujoco.MjModel.from_xml_string(_CYL.format(ax=0.2, sx=-0.2, sy=0.0, extra="").replace(
        " sidesite='s'", ""))
    pulley = mujoco.MjModel.from_xml_string(_CYL.format(ax=0.2, sx=-0.2, sy=0.0, extra="").replace(
        "<site site='b'/></spatial>", "<site site='b'/><pulley divisor='2'/><site site='b'/><site site='a'/>"
                                      "</spatial>"))
    for m in (fixed, no_side, pulley, load_model("myofullbody").model):
        assert tendon_pack(m) is None


def test_the_build_check_refuses_a_kernel_that_disagrees():
    m = load_model("myoleg").model
    T = tendon_pack(m)
    assert tendon_matches(m, T)
    bad = T._replace(radius=T.radius * (1.0 + 1e-9))
    assert not tendon_matches(m, bad)
    fast = tendon_pack(m, exact=False)
    assert not tendon_matches(m, fast) and tendon_matches(m, fast, rtol=1e-12)   # noise-level, not bit-identical
    assert not tendon_matches(m, fast._replace(radius=bad.radius), rtol=1e-12)


def test_the_compiled_chain_uses_the_kernel_on_myoleg():
    """(Its SO outputs against the Python stages, 1e-9 on activations: ``tests/test_compiled_chain.py``.)"""
    from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
    from models.muscles.compiled_chain import CompiledChain
    from models.muscles.static_optimization import SOParams, StaticOptimization

    m = load_model("myoleg").model
    chain = CompiledChain(StaticOptimization(m, SOParams()), InverseDynamics(m, InverseDynamicsParams()))
    assert chain.tendon_kernel == chain.compiled
    off = CompiledChain(StaticOptimization(m, SOParams()), InverseDynamics(m, InverseDynamicsParams()),
                        use_compiled=False)
    assert not off.tendon_kernel

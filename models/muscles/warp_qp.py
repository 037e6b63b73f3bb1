"""The static-optimisation QP of every frame at once, as one Warp kernel (one thread per frame), in float64.

The problem of a frame is :mod:`models.muscles.static_optimization`'s: minimise ``a'a + s'Ps`` subject to ``C a + s
= b``, ``0 <= a <= 1`` (cost exponent 2, reserve penalties ``P = w_res / tau_scale^2`` of the stage's
:class:`~models.muscles.static_optimization.SOParams`, solved coordinates in the stage's internal order).  The
kernel is a port of :func:`models.muscles.qp_kernels.solve_qp`, the same dual semismooth Newton method with exact
line search (the breakpoint heap per thread), the same stopping test ``max |b - C a - s| <= tol (1 + max |b|)``,
the same rounding-floor detection and primal active-set polish, and the same status codes.

What differs from the host solver:

* **No time warm start.**  The host solver starts each frame from the previous frame's multipliers, which is
  sequential.  Here (:meth:`WarpQP.solve`) every 8th frame (an anchor) is solved cold, from the bound-free
  solution (the host's own cold start), in one launch; then every other frame in one launch, warm-started from the
  nearest converged anchor's multipliers; then the frames that still did not converge are re-solved from the
  nearest earlier converged frame (at most 2 more launches).  Newton steps per frame, MyoFullBody 1200-frame walk:
  host 6.3, all-cold 16.9, anchors every 8 frames 9.3 (every 4: 9.5, 16: 10.0); MyoLeg PS ss1: 2.1 host, 3.6 cold.
  The QP is strictly convex, so the optimum is unique and both paths stop within the same tolerance of it; where a
  frame does not converge within ``max_iterations`` on either path (MyoFullBody at ``w_res = 1e6``), the best
  iterate (and so the status) depends on the start.  With ``SOParams(warm_start=False)`` both paths start every
  frame cold and agree bit for bit (tested).
* **Sparse ``C'``** per frame: each muscle's nonzero moment arms ``(n_frames, n_muscles, K)``, ``K`` the most
  solved coordinates one muscle's moment row reaches (MyoFullBody: 14 of 71; the host keeps a dense ``C'`` and the
  same nonzero lists); the polish's sums run over the nonzeros, some in another order than the host's dense loops,
  so they may differ in the last bit (they did not in the tests).
* **Precision**: ``wp.float64`` on every device (Warp's CPU device and CUDA both run it).

Assembly and outputs stay on the host (numba, :func:`pack_problems`, :func:`unpack_solutions`): the stage's
:func:`~models.muscles.qp_kernels.moment_arms` and :func:`~models.muscles.qp_kernels.assemble` per frame build
``C'``, ``b`` and the Hessian envelope, and :func:`~models.muscles.qp_kernels.frame_outputs` writes activations,
tensions, moments, reserves and the cost from the kernel's ``a`` and ``lambda``.

This module is pure computation: numpy, numba, warp and other ``models/`` modules.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from models.muscles.qp_kernels import assemble, couplings_kernel, frame_outputs, moment_arms
from models.muscles.warp_qp_kernel import solve_kernel

__all__ = ["WarpQP", "pack_problems", "unpack_solutions"]

_NJ = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")


@nb.njit(**_NJ)
def pack_problems(rownnz, rowadr, colind, moment, F1, F0, qc, vc, tau, ok, apply_dummy, dep_qadr, dep_dof, ind_qadr,
                  ind_dof, x0, y0, coef, dof_factor, mus, dof_coord, solved, pos, R, rcnt, ridx, mark, gain, passive,
                  Ct, nzcnt, nzidx, env, b, out_cv, out_ci, out_cc, out_env, out_b):  # pragma: no cover - compiled
    """Assemble the QP of each frame ``f`` with ``ok[f]`` (couplings' factors, moment arms, ``C'``, ``b``, envelope)
    into the packed arrays ``out_*`` (sparse ``C'``: ``out_cv[f, i, :out_cc[f, i]]`` at internal coordinates
    ``out_ci``).  The other arguments are scratch of the stage's shapes.  Returns the largest nonzero count."""
    n = qc.shape[0]
    ns = solved.shape[0]
    kmax = 0
    for f in range(n):
        if not ok[f]:
            for i in range(out_cc.shape[1]):
                out_cc[f, i] = 0
            for j in range(ns):
                out_b[f, j] = 0.0
                out_env[f, j] = j
            continue
        couplings_kernel(qc[f], vc[f], tau[f], apply_dummy, dep_qadr, dep_dof, ind_qadr, ind_dof, x0, y0, coef,
                         dof_factor)
        moment_arms(rownnz[f], rowadr[f], colind[f], moment[f], mus, dof_coord, dof_factor, R, rcnt, ridx, mark)
        assemble(R, rcnt, ridx, F1[f], F0[f], mus, tau[f], solved, pos, gain, passive, Ct, nzcnt, nzidx, env, b)
        for j in range(ns):
            out_b[f, j] = b[j]
            out_env[f, j] = env[j]
        for i in range(Ct.shape[0]):
            c = nzcnt[i]
            if c > kmax:
                kmax = c
            if c > out_cv.shape[2]:
                return -1  # cannot happen: K counts the coordinates each moment row reaches
            out_cc[f, i] = c
            for p in range(c):
                j = nzidx[i, p]
                out_ci[f, i, p] = j
                out_cv[f, i, p] = Ct[i, j]
    return kmax


@nb.njit(**_NJ)
def max_coordinates_per_muscle(rownnz, rowadr, colind, mus, dof_coord, pos, nc):  # pragma: no cover - compiled
    """The most solved coordinates one muscle's moment row reaches in any frame (the packed width ``K``)."""
    mark = np.full(nc, -1, dtype=np.int64)
    kmax = 0
    for f in range(rownnz.shape[0]):
        for i in range(mus.shape[0]):
            act = mus[i]
            stamp = f * mus.shape[0] + i
            cnt = 0
            for q in range(rowadr[f, act], rowadr[f, act] + rownnz[f, act]):
                k = dof_coord[colind[f, q]]
                if k >= 0 and pos[k] >= 0 and mark[k] != stamp:
                    mark[k] = stamp
                    cnt += 1
            kmax = max(kmax, cnt)
    return kmax


@nb.njit(**_NJ)
def unpack_solutions(rownnz, rowadr, colind, moment, F1, F0, qc, vc, tau, ok, apply_dummy, dep_qadr, dep_dof,
                     ind_qadr, ind_dof, x0, y0, coef, dof_factor, mus, dof_coord, solved, pos, R, rcnt, ridx, mark,
                     gain, passive, Ct, nzcnt, nzidx, env, b, a, lam, hp, P, is_solved, act, force, mom, res, resid,
                     cost):  # pragma: no cover - compiled
    """The outputs of each frame with ``ok[f]`` from the kernel's ``a[f]``, ``lam[f]``
    (:func:`~models.muscles.qp_kernels.frame_outputs` on the frame's re-assembled moment arms and tensions)."""
    for f in range(qc.shape[0]):
        if not ok[f]:
            continue
        couplings_kernel(qc[f], vc[f], tau[f], apply_dummy, dep_qadr, dep_dof, ind_qadr, ind_dof, x0, y0, coef,
                         dof_factor)
        moment_arms(rownnz[f], rowadr[f], colind[f], moment[f], mus, dof_coord, dof_factor, R, rcnt, ridx, mark)
        assemble(R, rcnt, ridx, F1[f], F0[f], mus, tau[f], solved, pos, gain, passive, Ct, nzcnt, nzidx, env, b)
        cost[f] = frame_outputs(R, rcnt, ridx, gain, passive, a[f], lam[f], hp, P, tau[f], solved, is_solved,
                                act[f], force[f], mom[f], res[f], resid[f])


class WarpQP:
    """The QPs of a :class:`~models.muscles.static_optimization.StaticOptimization` stage, all frames per launch.

    ``stage``: the CPU stage (its solved coordinates, internal order, penalties, tolerance and iteration limit are
    used; its buffers and warm start are not touched).  ``device``: a Warp device name.  ``warm_rounds``: re-solve
    rounds of the frames a cold start left unconverged (:meth:`solve`; 0: cold only, the host's ``warm_start=False``
    path bit for bit).  ``anchor_stride``: every how many frames one is solved cold first (1: all cold).
    """

    def __init__(self, stage, device: str, warm_rounds: int = 2, anchor_stride: int = 8) -> None:
        import warp as wp

        if int(warm_rounds) != warm_rounds or warm_rounds < 0:
            raise ValueError(f"warm_rounds = {warm_rounds!r}: must be an integer >= 0")
        if int(anchor_stride) != anchor_stride or anchor_stride < 1:
            raise ValueError(f"anchor_stride = {anchor_stride!r}: must be an integer >= 1")
        self.warm_rounds = int(warm_rounds)
        self.anchor_stride = int(anchor_stride)
        self._wp = wp
        self.stage = stage
        self.device = device
        nm, nc, ns = stage.n_muscles, stage.n_coordinates, stage._solved.size
        self._scratch = dict(R=np.zeros((nm, nc)), rcnt=np.zeros(nm, dtype=np.int64),
                             ridx=np.zeros((nm, nc), dtype=np.int64), mark=np.full(nc, -1, dtype=np.int64),
                             gain=np.zeros(nm), passive=np.zeros(nm), Ct=np.zeros((nm, ns)),
                             nzcnt=np.zeros(nm, dtype=np.int64), nzidx=np.zeros((nm, max(ns, 1)), dtype=np.int64),
                             env=np.zeros(ns, dtype=np.int64), b=np.zeros(ns))
        self._dof_factor = stage._dof_factor.copy()
        with wp.ScopedDevice(device):
            self._hp = wp.array(np.ascontiguousarray(stage._hp, dtype=np.float64), dtype=wp.float64)

    def _common(self, state: dict[str, np.ndarray], qc, vc, tau, ok) -> tuple:
        so, s = self.stage, self._scratch
        return (state["moment_rownnz"], state["moment_rowadr"], state["moment_colind"], state["actuator_moment"],
                state["force_act1"], state["force_act0"], qc, vc, tau, ok, False, so._c_dep_qadr, so._c_dep_dof,
                so._c_ind_qadr, so._c_ind_dof, so._c_x0, so._c_y0, so._c_coef, self._dof_factor, so.muscle_ids,
                so._dof_coord, so._solved, so._pos, s["R"], s["rcnt"], s["ridx"], s["mark"], s["gain"],
                s["passive"], s["Ct"], s["nzcnt"], s["nzidx"], s["env"], s["b"])

    def pack(self, state: dict[str, np.ndarray], qc: np.ndarray, vc: np.ndarray, tau: np.ndarray, ok: np.ndarray
             ) -> dict[str, np.ndarray]:
        """The packed problems of a chunk (``state``: :meth:`WarpStaticOptimization._state` of ``qc``, ``vc``;
        ``tau`` (n, n_coord); ``ok`` (n,) frames to solve)."""
        so = self.stage
        n, nm, ns = qc.shape[0], so.n_muscles, so._solved.size
        k = max(1, int(max_coordinates_per_muscle(state["moment_rownnz"], state["moment_rowadr"],
                                                  state["moment_colind"], so.muscle_ids, so._dof_coord, so._pos,
                                                  so.n_coordinates)))
        p = dict(cv=np.zeros((n, nm, k)), ci=np.zeros((n, nm, k), dtype=np.int32), cc=np.zeros((n, nm), dtype=np.int32),
                 env=np.zeros((n, ns), dtype=np.int32), b=np.zeros((n, ns)))
        got = pack_problems(*self._common(state, qc, vc, tau, ok), p["cv"], p["ci"], p["cc"], p["env"], p["b"])
        if got < 0:
            raise RuntimeError(f"a muscle has more nonzero moment arms than its moment row reaches ({k})")
        return p

    def solve(self, p: dict[str, np.ndarray], ok: np.ndarray, seed: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(a (n, nm), lam (n, ns), iterations, status, max |g|)`` of the packed problems (frames in time order).

        With the stage's ``warm_start`` (default): every :attr:`anchor_stride`-th frame is solved cold (one
        launch), then the others warm-started from the nearest converged anchor's multipliers (one launch; cold
        where there is none), then up to :attr:`warm_rounds` rounds re-solve the frames that did not converge from
        the nearest earlier converged frame (what the host's time warm start gives them), keeping a re-solve that
        converged or left a smaller ``max |g|``.  Without it every frame is solved cold, once.  Iterations add up.
        ``seed`` (ns,): the multipliers of a converged frame before the first (the previous chunk's last), for the
        re-solve of frames with no converged frame before them.  Frames with ``ok`` false are skipped (iterations
        0, status 0, zeros)."""
        n = p["cv"].shape[0]
        ns = p["b"].shape[1]
        warm = bool(self.stage._warm)
        idx = np.arange(n)
        first = ok & (idx % (self.anchor_stride if warm else 1) == 0)
        a, lam, it, st, gmax = self._launch(p, np.where(first, 1, -1), np.zeros((n, max(ns, 1))))
        rest = ok & ~first
        if rest.any():
            conv = first & (st == 0)
            prev = np.maximum.accumulate(np.where(conv, idx, -1))
            nxt = np.minimum.accumulate(np.where(conv, idx, n)[::-1])[::-1]
            src = np.where((prev >= 0) & ((nxt >= n) | (idx - prev <= nxt - idx)), prev, np.where(nxt < n, nxt, -1))
            self._resolve(p, rest, src, None, (a, lam, it, st, gmax), replace_all=True)
        for _ in range(self.warm_rounds if warm else 0):
            bad = ok & (st != 0)
            if not bad.any():
                break
            src = np.maximum.accumulate(np.concatenate(([-1], np.where(ok & (st == 0), idx, -1)[:-1])))
            redo = bad & ((src >= 0) | (seed is not None))
            if not redo.any():
                break
            self._resolve(p, redo, src, seed, (a, lam, it, st, gmax), replace_all=False)
        return a, lam[:, :ns].copy(), it, st, gmax

    def _resolve(self, p: dict[str, np.ndarray], frames: np.ndarray, src: np.ndarray, seed: np.ndarray | None,
                 sol: tuple, replace_all: bool) -> None:
        """Solve ``frames`` warm-started from ``lam[src]`` (``seed`` where ``src < 0``, cold without it), in place
        on ``sol = (a, lam, it, st, gmax)``: every frame's result (``replace_all``) or the better ones."""
        a, lam, it, st, gmax = sol
        lam0 = np.zeros_like(lam)
        from_src = frames & (src >= 0)
        lam0[from_src] = lam[src[from_src]]
        if seed is not None:
            lam0[frames & (src < 0), :seed.size] = seed
        cold = frames & (src < 0) & (seed is None)
        a2, lam2, it2, st2, g2 = self._launch(p, np.where(frames, np.where(cold, 1, 0), -1), lam0)
        it += np.where(frames, it2, 0)
        keep = frames if replace_all else frames & ((st2 == 0) | (g2 < gmax))
        a[keep], lam[keep], st[keep], gmax[keep] = a2[keep], lam2[keep], st2[keep], g2[keep]

    def _launch(self, p: dict[str, np.ndarray], mode: np.ndarray, lam0: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One launch of the kernel over the packed problems (``mode``: 1 cold, 0 from ``lam0``, -1 skip)."""
        wp, so = self._wp, self.stage
        n, nm, _ = p["cv"].shape
        nsb = lam0.shape[1]
        f8 = wp.float64
        with wp.ScopedDevice(self.device):
            if "dev" not in p:  # the problems and the scratch go to the device once per chunk
                z = lambda *shape: wp.zeros(shape, dtype=f8)  # noqa: E731
                zi = lambda *shape: wp.zeros(shape, dtype=wp.int32)  # noqa: E731
                p["dev"] = [wp.array(p["cv"], dtype=f8), wp.array(p["ci"], dtype=wp.int32),
                            wp.array(p["cc"], dtype=wp.int32), wp.array(p["env"], dtype=wp.int32),
                            wp.array(p["b"], dtype=f8)]
                # g, r, u, cls, delta, bkey, bval, H, d, fidx: every entry is written before it is read
                p["scratch"] = [z(n, nsb), z(n, nsb), z(n, nm), zi(n, nm), z(n, nm), z(n, 2 * nm), z(n, 2 * nm),
                                z(n, nsb, nsb), z(n, nsb), zi(n, nsb)]
            lam = wp.array(np.ascontiguousarray(lam0, dtype=np.float64), dtype=f8)
            a = wp.zeros((n, nm), dtype=f8)
            it, st, gmax = wp.zeros(n, dtype=wp.int32), wp.zeros(n, dtype=wp.int32), wp.zeros(n, dtype=f8)
            wp.launch(solve_kernel, dim=n, inputs=[
                *p["dev"], self._hp, lam, wp.array(np.asarray(mode, dtype=np.int32), dtype=wp.int32),
                int(so._max_iter), float(so._tol), a, *p["scratch"], it, st, gmax])
            return (a.numpy(), lam.numpy(), it.numpy().astype(np.int64), st.numpy().astype(np.int64),
                    gmax.numpy())

    def outputs(self, state: dict[str, np.ndarray], qc: np.ndarray, vc: np.ndarray, tau: np.ndarray, ok: np.ndarray,
                a: np.ndarray, lam: np.ndarray, out: dict[str, np.ndarray]) -> None:
        """Fill ``out`` (``act``, ``force``, ``mom``, ``res``, ``resid`` (n, .), ``cost`` (n,)) of the ``ok`` frames."""
        so = self.stage
        unpack_solutions(*self._common(state, qc, vc, tau, ok), np.ascontiguousarray(a), np.ascontiguousarray(lam),
                         so._hp, so._P, so._is_solved, out["act"], out["force"], out["mom"], out["res"],
                         out["resid"], out["cost"])

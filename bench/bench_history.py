"""A history-cell micro Newton step against the raw operations it is made of (issue 11).

On one 2D cell (J2 matrix, elastic inclusion), from a committed plastic state:

1. ours: ``HistoryCellProblem.solve`` per Newton step (law update at all quadrature points,
   strain and residual by the sparse strain operator, Jacobian assembly, PtAP reuse,
   refactor, solve; the converged solve's extra factorization and n tangent columns are
   counted as one more step, as in bench_fe2's nonlinear row);
2. raw: assemble the residual ∫σ_q:ε(v) and the Jacobian ∫(C_q ε(du)):ε(v) from quadrature
   functions, PtAP reuse, refactor, Pᵀr, solve: the work any quadrature-point FE² code does;
3. the law/packing share of ours, and the strain at the quadrature points by the sparse
   operator against a ``fem.Expression`` evaluation;
4. micro solves per second (one core) from an elastic and from a plastic committed state;
5. state memory: the bytes allocated (tracemalloc) for the ``StateStore`` of ``--points``
   macro points (committed rows: gradient | internal variables; trial rows: gradient |
   fluctuation; a flag per point) against the raw bytes of their internal variables
   (points × internal floats × 8), and against the raw state of design §8 (internal
   variables and the last converged fluctuation);
6. the recomputation at commit (``internal_after``: strains and the laws' update, the trial
   internal variables the store does not keep) per point, against a micro Newton step;
7. the derivation of the committed fluctuation the store does not keep either
   (``committed_fluctuation``: one solve with the cached elastic factor, done once per
   Newton-solved point per respond), against a plastic micro solve.

``--memory-only`` does 5 alone (any ``--dim``: the 3D ratio needs no timings).

    OMP_NUM_THREADS=1 python bench/bench_history.py [--size 0.03] [--json out.json]
    OMP_NUM_THREADS=1 python bench/bench_history.py --memory-only --dim 3 --size 0.08
"""

import argparse
import json
import time
import tracemalloc
from pathlib import Path

# isort: off
import hmm_fenics as hf  # first: it loads the DOLFINx wheel's MPI before dolfinx is imported
# isort: on

import basix
import basix.ufl
import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc

from hmm_fenics import point_laws
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.micro.state import StateStore


def best(fn, repeat=5):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def state_memory(cell, n, points):
    """Bytes allocated for the states of ``points`` points against their raw bytes."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = StateStore(points, cell.width_internal, cell.n_unknowns, n)
    allocated = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    raw_internal = points * 8 * cell.width_internal
    raw_state = points * 8 * (cell.width_internal + cell.n_unknowns)
    return {
        "memory_points": points,
        "internal_floats_per_point": cell.width_internal,
        "memory_allocated_mib": allocated / 2**20,
        "memory_over_store_arrays": allocated / store.nbytes,
        "memory_committed_over_raw_internal": store.committed.nbytes / raw_internal,
        "memory_over_raw_internal": allocated / raw_internal,
        "memory_formula_1_plus_2n_plus_unknowns_over_internal": 1
        + (2 * n + cell.n_unknowns) / cell.width_internal,
        "memory_over_raw_state": allocated / raw_state,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=0.03, help="micro mesh size")
    parser.add_argument("--points", type=int, default=2000, help="macro points (memory)")
    parser.add_argument("--dim", type=int, choices=(2, 3), default=2, help="cell dimension")
    parser.add_argument("--memory-only", action="store_true", help="the state memory alone")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.dim == 3 and not args.memory_only:
        parser.error("--dim 3 needs --memory-only (the timed steps are written for 2D)")
    physics = hf.Elasticity(args.dim)
    rve = hf.build_rve(hf.RVESpec("inclusion", args.dim, 0.3, args.size))
    law = point_laws.J2Plasticity(3.0, 0.35, 0.02, 0.3, 0.2)
    cell = history_cell_problem(
        physics, rve, {"matrix": law, "inclusion": point_laws.Elastic(70.0, 0.2)}
    )
    memory = state_memory(cell, physics.n_components, args.points)
    if args.memory_only:
        row = {"dim": args.dim, "unknowns": cell.n_unknowns,
               "quadrature_points": cell.n_points_q, **memory}  # fmt: skip
        print(json.dumps(row, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(row, indent=2) + "\n")
        return
    G0 = np.array([0.02, -0.005, 0.01])
    first = cell.solve(G0, np.zeros(cell.width_internal), np.zeros(physics.n_components))
    row, w = first.internal_row, first.fluctuation
    G = np.array([0.03, -0.002, 0.015])
    steps = cell.solve(G, row, G0).iterations + 1
    for key in cell.timings:
        cell.timings[key] = 0.0
    t_ours = best(lambda: cell.solve(G, row, G0), 5)
    per_ours = t_ours / steps
    cell.timings = {k: 0.0 for k in cell.timings}
    cell.solve(G, row, G0)
    share = {k: v / steps for k, v in cell.timings.items() if v > 0}

    # raw: the same compiled Jacobian, plus a residual form of a quadrature stress
    mesh, q, n = rve.mesh, cell.quadrature_degree, 3
    element = basix.ufl.quadrature_element(mesh.basix_cell(), value_shape=(n,), degree=q)
    sigma_q = fem.Function(fem.functionspace(mesh, element))
    sigma_q.x.array[:] = np.random.default_rng(0).standard_normal(sigma_q.x.array.size)
    v = ufl.TestFunction(cell.V)
    dx = ufl.Measure("dx", domain=mesh, metadata={"quadrature_degree": q})
    residual = fem.form(ufl.inner(sigma_q, physics.to_mandel(physics.gradient(v))) * dx)
    r = fem_petsc.create_vector(cell.V)
    K, Kr, P, ksp = cell._K, cell.Kr, cell.boundary.P, cell.ksp
    b, x = Kr.createVecLeft(), Kr.createVecRight()

    def raw_step():
        with r.localForm() as local:
            local.set(0.0)
        fem_petsc.assemble_vector(r, residual)
        K.zeroEntries()
        fem_petsc.assemble_matrix(K, cell.jacobian_form)
        K.assemble()
        K.ptap(P, result=Kr)
        ksp.setOperators(Kr)
        ksp.setUp()
        P.multTranspose(r, b)
        ksp.solve(b, x)

    per_raw = best(lambda: [raw_step() for _ in range(20)], 3) / 20

    # strain at the quadrature points: sparse operator vs Expression
    X, _ = basix.make_quadrature(mesh.basix_cell(), q)
    wf = fem.Function(cell.V)
    wf.x.array[:] = cell.P @ w
    expression = fem.Expression(physics.to_mandel(physics.gradient(wf)), X)
    cells = np.arange(mesh.topology.index_map(2).size_local, dtype=np.int32)
    t_sparse = best(lambda: [cell.strains(G, w) for _ in range(50)], 3) / 50

    def by_expression():
        wf.x.array[:] = cell.P @ w
        return expression.eval(mesh, cells)

    t_expr = best(lambda: [by_expression() for _ in range(50)], 3) / 50
    internal_bytes = 8 * cell.width_internal
    state_bytes = 8 * (n + cell.width_internal)

    # the commit's recomputation of a point's trial internal variables (no solve)
    converged = cell.solve(G, row, G0)
    t_commit = best(
        lambda: [cell.internal_after(G, converged.fluctuation, row) for _ in range(20)], 3
    )
    t_commit /= 20

    # micro solves per second: a small (elastic) increment from a virgin state, and a
    # plastic increment from the plastic committed state
    virgin = np.zeros(cell.width_internal), np.zeros(n)
    t_elastic = best(lambda: cell.solve(1e-5 * G, *virgin), 5)
    small = cell.solve(1e-5 * G, *virgin)
    t_commit_elastic = best(
        lambda: [cell.internal_after(1e-5 * G, small.fluctuation, virgin[0]) for _ in range(20)], 3
    )
    t_commit_elastic /= 20
    t_plastic = best(lambda: cell.solve(G, row, G0), 5)
    # the committed fluctuation a Newton starts from, derived (the store keeps none)
    t_derive = best(lambda: [cell.committed_fluctuation(G0, row) for _ in range(20)], 3) / 20

    row = {
        "law": type(law).__module__ + "." + type(law).__name__,
        "unknowns": cell.n_unknowns,
        "quadrature_points": cell.n_points_q,
        "newton_steps": steps,
        "ours_per_step_ms": 1e3 * per_ours,
        "raw_step_ms": 1e3 * per_raw,
        "ratio": per_ours / per_raw,
        "share_ms": {k: round(1e3 * v, 4) for k, v in share.items()},
        "strain_sparse_ms": 1e3 * t_sparse,
        "strain_expression_ms": 1e3 * t_expr,
        "state_row_over_internal": state_bytes / internal_bytes,
        "solves_per_second_elastic": 1.0 / t_elastic,
        "solves_per_second_plastic": 1.0 / t_plastic,
        "commit_recompute_per_point_ms": 1e3 * t_commit,
        "commit_recompute_over_newton_step": t_commit / per_ours,
        "commit_recompute_over_plastic_solve": t_commit / t_plastic,
        "commit_recompute_elastic_per_point_ms": 1e3 * t_commit_elastic,
        "commit_recompute_elastic_over_shortcut_solve": t_commit_elastic / t_elastic,
        "derive_committed_fluctuation_ms": 1e3 * t_derive,
        "derive_committed_fluctuation_over_plastic_solve": t_derive / t_plastic,
        **memory,
    }
    print(json.dumps(row, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()

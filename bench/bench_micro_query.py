"""Micro solve cost with the factor reused, against a bare PETSc solve of the same factor.

2D plane-strain elasticity, glass/epoxy disk cell f = 0.4, at ~1k and ~5k dofs. For each
size: the bare MatSolve (one RHS) / MatMatSolve (m RHS) of the stored MUMPS factor against
``CellProblem.solve`` of the lifted gradients (what a snapshot or a fluctuation field pays);
the query of a linear cell (C_hom G from the unit solutions, no solve: issue 10); and the
naive per-point cost (re-mesh, re-assemble, re-factor, solve) for contrast. Ratios are
measured in one run.

    python bench/bench_micro_query.py [--json bench/results/micro_query.json]
"""

import argparse
import json
import time
from pathlib import Path

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np

import hmm_fenics as hf

MATERIALS = {"matrix": hf.IsotropicElastic(3.0, 0.35), "inclusion": hf.IsotropicElastic(70.0, 0.2)}
SIZES = {"~1k dofs": 0.048, "~5k dofs": 0.0215}


def best_of(fn, repeat: int, number: int) -> float:
    """Best mean time of ``number`` calls, over ``repeat`` rounds (seconds per call)."""
    return paired([fn], repeat, number)[0]


def paired(fns, repeat: int, number: int) -> list[float]:
    """Best mean time per call of each function, the functions timed in alternation.

    Alternating rounds expose every function to the same machine state, so that their
    ratio is meaningful even when the absolute times drift.
    """
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(number):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / number)
    return best


def measure(h: float, batch: int) -> dict:
    physics = hf.Elasticity(2)
    spec = hf.RVESpec("inclusion", 2, 0.4, h)
    rve = hf.build_rve(spec)
    cell = hf.cell_problem(physics, rve, MATERIALS)
    F = cell._factor
    rng = np.random.default_rng(0)
    G1 = rng.standard_normal(3)
    Gm = rng.standard_normal((batch, 3))
    n = cell.n_unknowns
    # bare PETSc: vectors and dense matrices prepared outside the timed call
    b, x = cell.Kr.createVecLeft(), cell.Kr.createVecRight()
    b.array[:] = cell.load @ G1
    B = PETSc.Mat().createDense(
        (n, batch), array=np.asfortranarray(cell.load @ Gm.T), comm=MPI.COMM_SELF
    )
    X = PETSc.Mat().createDense((n, batch), comm=MPI.COMM_SELF)
    X.setUp()
    number = max(20, int(2e5 / n))
    lifted_1, lifted_m = cell.load @ G1[:, None], cell.load @ Gm.T
    bare_1, query_1, answer_1 = paired(
        [lambda: F.solve(b, x), lambda: cell.solve(lifted_1), lambda: cell.query(G1)], 15, number
    )
    bare_m, query_m, answer_m = paired(
        [lambda: F.matSolve(B, X), lambda: cell.solve(lifted_m), lambda: cell.query(Gm)],
        15,
        max(10, 4 * number // batch),
    )
    row = {
        "dofs": cell.n_dofs,
        "unknowns": n,
        "batch": batch,
        "bare_solve_ms": 1e3 * bare_1,
        "query_1_ms": 1e3 * query_1,
        "bare_matmatsolve_ms": 1e3 * bare_m,
        "query_batch_ms": 1e3 * query_m,
        "answer_1_ms": 1e3 * answer_1,
        "answer_batch_ms": 1e3 * answer_m,
    }

    def naive():
        hf.cell_problem(physics, hf.build_rve(spec), MATERIALS).query(G1)

    row["naive_per_point_ms"] = 1e3 * best_of(naive, 3, 3)
    row["ratio_query_1"] = row["query_1_ms"] / row["bare_solve_ms"]
    row["ratio_query_batch"] = row["query_batch_ms"] / row["bare_matmatsolve_ms"]
    row["ratio_naive"] = row["naive_per_point_ms"] / row["query_1_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="gradients per batched query")
    parser.add_argument("--json", help="write the rows as JSON")
    args = parser.parse_args()
    rows = {label: measure(h, args.batch) for label, h in SIZES.items()}
    header = f"{'case':10} {'dofs':>6} {'MatSolve':>9} {'solve(1)':>9} {'ratio':>6} {'MatMatSolve':>12} {'solve(m)':>9} {'ratio':>6} {'naive':>8} {'naive/solve':>11} {'query(1)':>9} {'query(m)':>9}"
    print(f"2D elasticity, batch m = {args.batch}; times in ms per call")
    print(header)
    for label, r in rows.items():
        print(
            f"{label:10} {r['dofs']:6d} {r['bare_solve_ms']:9.4f} {r['query_1_ms']:9.4f} {r['ratio_query_1']:6.2f} "
            f"{r['bare_matmatsolve_ms']:12.4f} {r['query_batch_ms']:9.4f} {r['ratio_query_batch']:6.2f} "
            f"{r['naive_per_point_ms']:8.2f} {r['ratio_naive']:11.0f} {r['answer_1_ms']:9.4f} {r['answer_batch_ms']:9.4f}"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

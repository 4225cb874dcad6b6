"""FE² costs against the bare operations they are made of (issue 4), ratios in one run.

1. Linear one-template FE² (homogenize + FE² macro Newton with the effective tensor)
   against a plain DOLFINx solve with the same constant tensor + one homogenization.
2. Per-point linear micro work (CellModel on all macro points) against n_points × a bare
   MatSolve of the same factor.
3. A nonlinear micro Newton step against the raw sequence assemble + PtAP (reuse) +
   refactor + solve, on prepared objects.

    OMP_NUM_THREADS=1 python bench/bench_fe2.py [--json bench/results/fe2.json]
"""

import argparse
import json
import time
from pathlib import Path

# isort: off
import hmm_fenics as hf  # first: it loads the DOLFINx wheel's MPI before dolfinx is imported
# isort: on

import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc

from hmm_fenics.coupling.micro_models import CellModel, EffectiveModel
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.materials import PowerLawElastic
from hmm_fenics.micro.nonlinear import nonlinear_cell_problem
from hmm_fenics.solver import solve

MATERIALS = {"matrix": hf.IsotropicElastic(3.0, 0.35), "inclusion": hf.IsotropicElastic(70.0, 0.2)}
PULL = {"left": (0.0, None), "bottom": (None, 0.0), "right": (0.01, None)}


def best(fn, repeat=5):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def plain_solve(mesh, C):
    """Textbook DOLFINx linear elasticity with a constant Mandel tensor."""
    physics = hf.Elasticity(2)
    V = fem.functionspace(mesh.mesh, ("Lagrange", 1, (2,)))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    Cc = fem.Constant(mesh.mesh, C)
    B = lambda w: physics.to_mandel(physics.gradient(w))  # noqa: E731
    a = ufl.inner(ufl.dot(Cc, B(u)), B(v)) * ufl.dx
    L = ufl.inner(fem.Constant(mesh.mesh, np.zeros(2)), v) * ufl.dx
    fdim = 1
    bcs = []
    for name, value in PULL.items():
        facets = mesh.facet_tags.find(mesh.boundaries[name])
        for c, g in enumerate(value):
            if g is not None:
                bcs.append(
                    fem.dirichletbc(
                        float(g), fem.locate_dofs_topological(V.sub(c), fdim, facets), V.sub(c)
                    )
                )
    problem = fem_petsc.LinearProblem(
        a,
        L,
        bcs=bcs,
        petsc_options_prefix="bench_plain_",
        petsc_options={
            "ksp_type": "preonly",
            "pc_type": "lu",
            "pc_factor_mat_solver_type": "mumps",
        },
    )
    return problem.solve()


def linear_template(H, h):
    physics = hf.Elasticity(2)
    mesh = macro_mesh("plate-with-hole", H, params={"L": 1.0, "R": 0.25})
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.4, h))

    def fe2():
        C = hf.cell_problem(physics, rve, MATERIALS).effective_tensor
        solve(MacroProblem(mesh, physics, PULL), EffectiveModel(C))

    def plain():
        C = hf.cell_problem(physics, rve, MATERIALS).effective_tensor
        plain_solve(mesh, C)

    fe2(), plain()  # compile
    t_fe2, t_plain = best(fe2), best(plain)
    return {
        "macro_dofs": 2 * mesh.mesh.geometry.x.shape[0],
        "fe2_s": t_fe2,
        "plain_s": t_plain,
        "ratio": t_fe2 / t_plain,
    }


def per_point(H, h):
    physics = hf.Elasticity(2)
    mesh = macro_mesh("plate-with-hole", H, params={"L": 1.0, "R": 0.25})
    cell = hf.cell_problem(physics, hf.build_rve(hf.RVESpec("inclusion", 2, 0.4, h)), MATERIALS)
    problem = MacroProblem(mesh, physics, PULL)
    solve(problem, CellModel(cell))
    G = problem.gradients()
    points = problem.quadrature.coordinates()
    model = CellModel(cell)
    t_model = best(lambda: model.respond(G, points))
    b, x = cell.Kr.createVecLeft(), cell.Kr.createVecRight()
    b.array[:] = cell.load @ G[0]
    F = cell._factor
    t_one = best(lambda: [F.solve(b, x) for _ in range(200)]) / 200
    return {
        "points": len(G),
        "micro_dofs": cell.n_dofs,
        "per_point_s": t_model,
        "n_times_bare_matsolve_s": len(G) * t_one,
        "ratio": t_model / (len(G) * t_one),
    }


def nonlinear_step(h):
    physics = hf.Elasticity(2)
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.4, h))
    materials = {
        "matrix": PowerLawElastic(3.0, 0.35, 0.01, 0.3),
        "inclusion": hf.IsotropicElastic(70.0, 0.2),
    }
    cell = nonlinear_cell_problem(physics, rve, materials)
    G = np.array([0.02, -0.005, 0.01])
    cell.solve(G)  # set up factor and pattern

    def ours():
        steps = 0
        for _ in range(5):
            steps += cell.solve(G).iterations
        return steps

    steps = ours()
    t_ours = best(ours, 3)
    n_solves = steps  # Newton steps (each: residual, assemble, ptap, factor, solve)
    # the raw sequence, on the cell's prepared objects
    K, Kr, P, ksp = cell._K, cell.Kr, cell.boundary.P, cell.ksp
    r = cell._r
    b, x = Kr.createVecLeft(), Kr.createVecRight()

    def raw_step():
        with r.localForm() as local:
            local.set(0.0)
        fem_petsc.assemble_vector(r, cell.residual_form)
        K.zeroEntries()
        fem_petsc.assemble_matrix(K, cell.jacobian_form)
        K.assemble()
        K.ptap(P, result=Kr)
        ksp.setOperators(Kr)
        ksp.setUp()
        P.multTranspose(r, b)
        ksp.solve(b, x)

    per_raw = best(lambda: [raw_step() for _ in range(50)], 3) / 50
    # each converged solve also factors once more for the tangent and solves n RHS: count it
    per_ours = t_ours / (n_solves + 5)
    return {
        "unknowns": cell.n_unknowns,
        "newton_steps_per_5_solves": n_solves,
        "ours_per_step_ms": 1e3 * per_ours,
        "raw_step_ms": 1e3 * per_raw,
        "ratio": per_ours / per_raw,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = {
        "linear one-template FE² vs plain solve + homogenize": linear_template(1 / 64, 0.02),
        "per-point linear micro work vs n × MatSolve": per_point(1 / 32, 0.03),
        "nonlinear micro Newton step vs raw": nonlinear_step(0.03),
    }
    for label, row in rows.items():
        print(
            f"{label}: ratio {row['ratio']:.2f}  {json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()})}"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

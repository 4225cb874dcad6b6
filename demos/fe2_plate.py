# # FE² of a fibre-reinforced plate with a hole
#
# A quarter of a square plate with a central hole (symmetry on the left and bottom edges) is
# pulled on its right edge. The plate has no material law: every macro quadrature point
# solves the periodic glass/epoxy fibre cell (f = 0.4, plane strain) for its strain, with the
# cell's factorization reused across all points. Writes XDMF of the displacement and the
# stress (cell averages) and a results JSON; prints a summary.
#
# Run: `python demos/fe2_plate.py` or `mpirun -n 2 python demos/fe2_plate.py --size small`.

# +
import argparse
import json
import logging
import time
from pathlib import Path

from mpi4py import MPI

import numpy as np
import ufl
from dolfinx import fem, io

import hmm_fenics as hf
from hmm_fenics.coupling.micro_models import CellModel
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.solver import solve, timing_summary

SIZES = {"small": (0.05, 0.03), "medium": (0.025, 0.02)}  # macro H, micro h
# -


# The stress at the quadrature points is averaged over each macro cell for viewing
# (a diagonal DG0 projection), in tensor components.


# +
def cell_average_stress(problem):
    msh = problem.mesh.mesh
    q = problem.quadrature
    Q = fem.functionspace(msh, ("DG", 0, (3,)))
    tau = ufl.TestFunction(Q)
    sigma = q.flux
    tensor = ufl.as_vector([sigma[0], sigma[1], sigma[2] / np.sqrt(2)])  # Mandel → σ12
    numerator = fem.assemble_vector(fem.form(ufl.inner(tensor, tau) * q.dx)).array
    volume = fem.assemble_vector(
        fem.form(ufl.inner(ufl.as_vector([1.0, 1.0, 1.0]), tau) * q.dx)
    ).array
    stress = fem.Function(Q, name="stress_11_22_12")
    stress.x.array[: len(numerator)] = numerator / volume
    stress.x.scatter_forward()
    return stress


def reaction(problem, boundary):
    """Total x1 force on a boundary: ∫ σ·n, with the cell-averaged stress."""
    msh = problem.mesh.mesh
    ds = ufl.Measure("ds", domain=msh, subdomain_data=problem.mesh.facet_tags)
    stress = cell_average_stress(problem)  # σ·n with the cell-averaged stress
    n = ufl.FacetNormal(msh)
    traction_x = stress[0] * n[0] + stress[2] * n[1]
    return msh.comm.allreduce(
        fem.assemble_scalar(fem.form(traction_x * ds(problem.mesh.boundaries[boundary]))),
        op=MPI.SUM,
    )


def main():
    parser = argparse.ArgumentParser(description="FE² plate with a hole, glass/epoxy fibre cell")
    parser.add_argument("--size", choices=list(SIZES), default="small")
    parser.add_argument("--output", default="out/demo_fe2_plate")
    parser.add_argument(
        "--stretch", type=float, default=0.01, help="right-edge displacement / plate width"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress and no summary")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    verbose = comm.rank == 0 and not args.quiet
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    start = time.perf_counter()
    H, h = SIZES[args.size]
    physics = hf.Elasticity(2, plane="strain")
    materials = {
        "matrix": hf.IsotropicElastic(3.0, 0.35),
        "inclusion": hf.IsotropicElastic(70.0, 0.2),
    }
    cell = hf.cell_problem(physics, hf.build_rve(hf.RVESpec("inclusion", 2, 0.4, h)), materials)
    mesh = macro_mesh("plate-with-hole", H, params={"L": 1.0, "R": 0.25})
    dirichlet = {"left": (0.0, None), "bottom": (None, 0.0), "right": (args.stretch, None)}
    problem = MacroProblem(mesh, physics, dirichlet)
    result = solve(problem, CellModel(cell), progress=not args.quiet)
    stress = cell_average_stress(problem)
    points = comm.allreduce(problem.quadrature.n_points, op=MPI.SUM)
    s11 = stress.x.array.reshape(-1, 3)[:, 0]
    peak = comm.allreduce(float(s11.max()) if len(s11) else -np.inf, op=MPI.MAX)
    force = reaction(problem, "right")
    out = Path(args.output)
    if comm.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    comm.barrier()
    with io.XDMFFile(comm, str(out / "displacement.xdmf"), "w") as xdmf:
        xdmf.write_mesh(mesh.mesh)
        xdmf.write_function(problem.u)
    with io.XDMFFile(comm, str(out / "stress.xdmf"), "w") as xdmf:
        xdmf.write_mesh(mesh.mesh)
        xdmf.write_function(stress)
    timers = timing_summary(comm)
    C = cell.effective_tensor
    nominal = C[0, 0] - C[0, 1] ** 2 / C[1, 1]  # uniaxial stress modulus of the cell
    seconds = time.perf_counter() - start
    summary = {
        "macro_points": points,
        "micro_dofs": cell.n_dofs,
        "macro_newton_iterations": result.iterations,
        "residuals": result.residuals,
        "effective_tensor_mandel": C.tolist(),
        "peak_stress_11": peak,
        "nominal_stress_11": nominal * args.stretch,
        "stress_concentration": peak / (nominal * args.stretch),
        "reaction_right": force,
        "timings": {**result.timings, "total": seconds},
        "ranks": comm.size,
    }
    if comm.rank == 0:
        (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    if verbose:
        print(
            f"\nFE² plate with a hole: {points} macro quadrature points, each a periodic micro solve "
            f"({cell.n_dofs} dofs, factor reused)\n"
            f"  macro Newton: {result.iterations} step(s), |R| {result.residuals[0]:.2e} → {result.residuals[-1]:.2e}\n"
            f"  effective C1111 = {C[0, 0]:.4f}, C1122 = {C[0, 1]:.4f}, C1212 = {C[2, 2] / 2:.4f}\n"
            f"  peak σ11 = {peak:.4f} against {nominal * args.stretch:.4f} far away: concentration {summary['stress_concentration']:.2f}\n"
            f"  reaction on the right edge: {force:.5f}\n"
            f"  time: micro {result.timings['micro']:.2f} s, macro {result.timings['macro']:.2f} s, total {seconds:.2f} s\n"
            f"  wrote {out}/displacement.xdmf, stress.xdmf, results.json\n\n{timers}"
        )


if __name__ == "__main__":
    main()
# -

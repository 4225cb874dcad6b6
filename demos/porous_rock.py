# # FE² heat conduction through a porous rock with a random microstructure
#
# A 2 × 1 slab of rock is held at T = 1 on the left and T = 0 on the right, insulated on top and
# bottom. The rock is a conducting skeleton (k = 3) with 30% dry pores, 12 random disks per
# periodic cell with radii spread by 20% (random sequential adsorption, wrapped periodically).
# Every macro quadrature point solves the pore cell of the run file (`demos/porous_rock.toml`).
#
# A random cell is one draw: the script first homogenizes an ensemble of pore realizations
# independent of it (seeds after the run file's; RVE statistics: mean, spread and 95% confidence
# interval of the conductivity), then runs FE² with the run file's realization, and checks it
# against an independent solve and against the ensemble.
#
# Run: `python demos/porous_rock.py` or `mpirun -n 2 python demos/porous_rock.py --size small`.

# +
from dataclasses import replace

from mpi4py import MPI

import numpy as np
import ufl
from demo_support import arguments, check, execute, finish, load, within
from dolfinx import fem
from dolfinx.fem.petsc import LinearProblem
from scipy.stats import t as student

import hmm_fenics as hf
from hmm_fenics.macro.mesh import macro_mesh

SIZES = {"small": (0.1, 0.03, 4), "medium": (0.05, 0.02, 12)}  # macro H, micro h, realizations
# -

# ## The pore cell: one realization and an ensemble

# +
args = arguments("porous_rock", "FE² heat conduction through a random porous rock")
H, h, realizations = SIZES[args.size]
config = load("porous_rock", {"macro": {"mesh_size": H}, "rve": {"mesh_size": h}})
cell = config.cell
# seeds seed + 1 … seed + N: none of them is the run file's cell, so the ensemble can disagree
independent = replace(cell.rve, seed=cell.rve.seed + 1)
stats = hf.ensemble(independent, cell.physics, cell.materials, realizations)
# -

# ## FE²: the cell answers every macro quadrature point (from its unit solutions)

# +
results = execute(config, args)
K = np.asarray(results["effective_tensor"])
# the run file's cell once more, with the checks that a wrong periodic map fails: ⟨∇T⟩ = G over
# the whole box (the pore boundaries included) and T's fluctuation equal on matched face nodes
cell_checks = hf.homogenize(cell.rve, cell.physics, cell.materials, cell.degree)
# -

# ## An independent check: the same slab with the constant tensor K of the cell
#
# With a linear cell, FE² must equal a plain finite-element solve with K = C_hom, written here
# directly in UFL (its own mesh, forms and solver). The conductivity is also bounded: no
# direction of one cell conducts more than the arithmetic (Voigt) mean (1 − φ) k, and the
# ensemble, statistically isotropic, stays below the Hashin–Shtrikman upper bound
# k (1 − φ)/(1 + φ) of a connected skeleton (one cell, being anisotropic, need not).
#
# The run file's cell is one more draw of the same random medium, independent of the ensemble:
# its K11 must lie in the ensemble's 99% prediction interval for a new draw (Student t with
# N − 1 degrees of freedom), mean ± t₀.₉₉₅ s √(1 + 1/N). A cell from another medium (another
# porosity, a wrong periodic map) falls outside.

# +
comm = MPI.COMM_WORLD
macro = config.macro
mesh = macro_mesh("rectangle", H, comm, params=macro.lengths)
V = fem.functionspace(mesh.mesh, ("Lagrange", 1))
T, v = ufl.TrialFunction(V), ufl.TestFunction(V)
a = ufl.inner(ufl.dot(fem.Constant(mesh.mesh, K), ufl.grad(T)), ufl.grad(v)) * ufl.dx
L = fem.Constant(mesh.mesh, 0.0) * v * ufl.dx
tags, fdim = mesh.facet_tags, mesh.mesh.topology.dim - 1
bcs = [
    fem.dirichletbc(
        value, fem.locate_dofs_topological(V, fdim, tags.find(mesh.boundaries[name])), V
    )
    for name, value in (("left", 1.0), ("right", 0.0))
]
options = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}
solution = LinearProblem(
    a, L, bcs=bcs, petsc_options=options, petsc_options_prefix="porous_"
).solve()
# the flux through the cold edge, in the variationally consistent form FE² uses for its
# reactions: the bilinear form tested with the indicator of the right edge's dofs
indicator = fem.Function(V)
right_dofs = fem.locate_dofs_topological(V, fdim, tags.find(mesh.boundaries["right"]))
indicator.x.array[right_dofs] = 1.0
flux_form = (
    ufl.inner(ufl.dot(fem.Constant(mesh.mesh, K), ufl.grad(solution)), ufl.grad(indicator)) * ufl.dx
)
q_right = -comm.allreduce(fem.assemble_scalar(fem.form(flux_form)), op=MPI.SUM)
band = float(student.ppf(0.995, realizations - 1)) * stats.std[0, 0] * np.sqrt(1 + 1 / realizations)
k_matrix, porosity = 3.0, results["input"]["config"]["rve"]["fraction"]
upper = k_matrix * (1 - porosity) / (1 + porosity)
height, length = macro.lengths["H"], macro.lengths["L"]
# the FE² reaction on the right edge is the flux the cold edge takes out (sign: into the body)
q_fe2 = -results["reactions"]["right"][0]
left, right = results["reactions"]["left"][0], results["reactions"]["right"][0]
checks = [
    check("FE² = plain solve with K_hom (flux out)", q_fe2, q_right, 1e-9),
    check(
        "cell: ⟨∇T⟩ = G over the box, pores included", cell_checks.gradient_error, 0, 1e-12, False
    ),
    check(
        "cell: fluctuation periodic on matched nodes",
        cell_checks.periodicity_error,
        0,
        1e-12,
        False,
    ),
    check("conservation: flux in = flux out", left + right, 0.0, 1e-10 * abs(left), relative=False),
    within(
        "largest conductivity of the cell ≤ Voigt",
        float(np.linalg.eigvalsh(K).max()),
        0.0,
        k_matrix * (1 - porosity),
    ),
    within(
        "ensemble mean (K11 + K22)/2 ≤ HS upper",
        float(np.trace(stats.mean)) / 2,
        0.0,
        upper + float(np.trace(stats.ci95)) / 2,
    ),
    within(
        "run-file cell in the 99% prediction interval of independent realizations",
        K[0, 0],
        stats.mean[0, 0] - band,
        stats.mean[0, 0] + band,
    ),
]
summary = (
    f"Porous rock: {realizations} pore realizations (seeds {stats.seeds[0]}–{stats.seeds[-1]}), K11 = {stats.mean[0, 0]:.4f} ± {stats.ci95[0, 0]:.4f} "
    f"(95% CI; std {stats.std[0, 0]:.4f}), HS upper bound {upper:.4f}\n"
    f"  FE² with seed {config.cell.rve.seed}: K = [[{K[0, 0]:.4f}, {K[0, 1]:.4f}], [{K[1, 0]:.4f}, {K[1, 1]:.4f}]]\n"
    f"  heat flow through the slab {q_fe2:.6f} (1D estimate K11 ΔT H/L = {K[0, 0] * height / length:.6f})"
)
results |= {
    "ensemble": {
        "realizations": realizations,
        "mean": stats.mean.tolist(),
        "std": stats.std.tolist(),
        "ci95": stats.ci95.tolist(),
        "seeds": stats.seeds.tolist(),
        "prediction_band_11": band,
    },
    "heat_flow": q_fe2,
    "heat_flow_reference": q_right,
}
finish(results, checks, args, summary)
# -

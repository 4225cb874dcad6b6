# # FE² of a fibre-reinforced plate with a hole
#
# A quarter of a square plate with a central hole (symmetry on the left and bottom edges) is
# pulled by 1% on its right edge. The plate has no material law: every macro quadrature point
# solves the periodic glass/epoxy fibre cell (f = 0.4, plane strain) for its strain, with the
# cell's factorization reused across all points. The job is `demos/fe2_plate.toml`; this script
# runs it and checks what can be known without it.
#
# Run: `python demos/fe2_plate.py` or `mpirun -n 2 python demos/fe2_plate.py --size small`.

# +
from mpi4py import MPI

import numpy as np
from demo_support import arguments, check, execute, finish, load, within

SIZES = {"small": (0.05, 0.03), "medium": (0.025, 0.02)}  # macro H, micro h
STRETCH = 0.01  # right-edge displacement / plate width, as in the run file
# -

# The run file fixes the physics; `--size` sets the macro and micro element sizes.

# +
args = arguments("fe2_plate", "FE² plate with a hole, glass/epoxy fibre cell")
H, h = SIZES[args.size]
config = load("fe2_plate", {"macro": {"mesh_size": H}, "rve": {"mesh_size": h}})
results = execute(config, args)
# -

# What the answer must satisfy:
#
# - Clapeyron: for a linear material loaded by prescribed displacements only, the stored
#   energy is half the work of the reactions, W = ½ R_right · u_right.
# - Equilibrium: the x reactions of the left (symmetry) and right edges cancel.
# - The micro fields of the most loaded point average to that point's macro stress.
# - Kirsch: a hole in a wide isotropic plate concentrates the stress 3×; this finite quarter
#   plate (R/L = 0.25) of a square-symmetric composite gives a little less, and the peak is
#   taken at quadrature points.

# +
C = np.asarray(results["effective_tensor"])
nominal = (C[0, 0] - C[0, 1] ** 2 / C[1, 1]) * STRETCH  # uniaxial stress of the cell at 1%
peak = results["flux_max"][0]
right = results["reactions"]["right"][0]
left = results["reactions"]["left"][0]
snapshot = results["snapshots"][0]
macro_sigma = np.asarray(snapshot["macro_flux"])
micro_sigma = np.asarray(snapshot["mean_flux"])
micro_mandel = np.array([micro_sigma[0, 0], micro_sigma[1, 1], np.sqrt(2) * micro_sigma[0, 1]])
checks = [
    check("Clapeyron: energy = ½ R·u", results["energy"], 0.5 * right * STRETCH, 1e-8),
    check("equilibrium: R_left + R_right", left + right, 0.0, 1e-10 * abs(right), relative=False),
    check(
        "RVE average = macro stress",
        float(np.linalg.norm(micro_mandel - macro_sigma)),
        0.0,
        1e-9 * float(np.linalg.norm(macro_sigma)),
        relative=False,
    ),
    within("stress concentration (Kirsch: 3)", peak / nominal, 2.4, 3.5),
]
summary = (
    f"FE² plate with a hole: {results['macro_points']} macro points, each a periodic micro solve "
    f"({results['micro_unknowns']} unknowns), {MPI.COMM_WORLD.size} rank(s)\n"
    f"  effective C1111 = {C[0, 0]:.4f}, C1122 = {C[0, 1]:.4f}, C1212 = {C[2, 2] / 2:.4f}\n"
    f"  peak σ11 = {peak:.4f} against {nominal:.4f} far away: concentration {peak / nominal:.2f}\n"
    f"  reaction on the right edge {right:.6f}, energy {results['energy']:.6g}"
)
results |= {"stress_concentration": peak / nominal, "peak_stress_11": peak, "reaction_right": right}
finish(results, checks, args, summary)
# -

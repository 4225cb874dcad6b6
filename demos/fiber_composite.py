# # Effective properties of a fibre composite
#
# The transverse plane of a unidirectional glass/epoxy composite: glass fibres (E 70, ν 0.2) in
# epoxy (E 3, ν 0.35), fibre fraction 0.5, on a hexagonal packing, in plane strain. The run file
# (`demos/fiber_composite.toml`) has no macro problem: `hmm-fenics run` homogenizes the cell and
# writes the corrector field of each unit strain. This script checks the section against what
# symmetry and bounds demand, then homogenizes a 3D cell of the same packing for the
# engineering constants along and across the fibres.
#
# Run: `python demos/fiber_composite.py` or `mpirun -n 2 python demos/fiber_composite.py`.

# +
import numpy as np
from demo_support import arguments, check, execute, finish, load, within

import hmm_fenics as hf

SIZES = {"small": (0.03, 0.12), "medium": (0.012, 0.06)}  # micro h: 2D section, 3D cell
# -

# +
args = arguments(
    "fiber_composite", "Effective properties of a hexagonal glass/epoxy fibre composite"
)
h2, h3 = SIZES[args.size]
config = load("fiber_composite", {"rve": {"mesh_size": h2}})
results = execute(config, args)
C = np.asarray(results["tensor"])  # Mandel: C[2, 2] = 2 C1212
# -

# ## Transverse constants and their checks
#
# A hexagonal packing is transversely isotropic: C1111 = C2222 and C1212 = (C1111 − C1122)/2,
# which the square packing would not give. Its plane-strain bulk modulus κ = (C1111 + C1122)/2
# and shear modulus μ = C1212 lie between Hashin's two-dimensional bounds (HS for κ = λ + μ
# and μ of the phases); with stiff fibres in a soft matrix, near the lower bounds.


# +
def plane_strain_moduli(E, nu):
    lmbda, mu = hf.Elasticity(2).lame(E, nu)
    return lmbda + mu, mu


(k1, m1), (k2, m2) = plane_strain_moduli(3.0, 0.35), plane_strain_moduli(70.0, 0.2)
f2 = results["fraction"]  # the fraction the mesh achieved
f1 = 1 - f2
kappa_low = k1 + f2 / (1 / (k2 - k1) + f1 / (k1 + m1))
kappa_high = k2 + f1 / (1 / (k1 - k2) + f2 / (k2 + m2))
mu_low = m1 + f2 / (1 / (m2 - m1) + f1 * (k1 + 2 * m1) / (2 * m1 * (k1 + m1)))
mu_high = m2 + f1 / (1 / (m1 - m2) + f2 * (k2 + 2 * m2) / (2 * m2 * (k2 + m2)))
kappa, mu = (C[0, 0] + C[0, 1]) / 2, C[2, 2] / 2
E_T = 4 * kappa * mu / (kappa + mu)  # in-plane Young's modulus of the plane-strain section
# -

# ## The fibre direction: a 3D cell
#
# The section alone says nothing along the fibres. The same packing as straight fibres along x3
# (a slice of the 3D cell is enough: the fibres are straight) gives the whole transversely
# isotropic tensor, hence the engineering constants. Two checks that need no fit:
#
# - its transverse block is the plane-strain tensor of the section (same problem, other mesh);
# - Hill's exact connection (1964): for any two isotropic phases, the axial modulus exceeds the
#   rule of mixtures by 4 (ν_f − ν_m)² (f_f/k_f + f_m/k_m − 1/κ) / (1/k_f − 1/k_m)², with k the
#   plane-strain bulk moduli of the phases and κ that of the composite.

# +
materials = config.cell.materials
cell3d = hf.RVESpec("fibers", 3, 0.5, h3, lattice="hex", cell=(1.0, np.sqrt(3), 0.25))
result3d = hf.homogenize(cell3d, hf.Elasticity(3), materials)
C3 = result3d.tensor  # Mandel, 11 22 33 23 13 12; fibres along 3
S3 = np.linalg.inv(C3)
f3 = result3d.fraction
E1, E2 = 1 / S3[2, 2], 1 / S3[0, 0]
nu12, nu23 = -S3[0, 2] / S3[2, 2], -S3[0, 1] / S3[0, 0]  # axial–transverse, transverse
G12, G23 = C3[3, 3] / 2, C3[5, 5] / 2
kappa3 = (C3[0, 0] + C3[0, 1]) / 2
mixture = f3 * 70.0 + (1 - f3) * 3.0
hill = 4 * (0.2 - 0.35) ** 2 * (f3 / k2 + (1 - f3) / k1 - 1 / kappa3) / (1 / k2 - 1 / k1) ** 2
transverse_3d = np.array([C3[0, 0], C3[0, 1], C3[5, 5]])
transverse_2d = np.array([C[0, 0], C[0, 1], C[2, 2]])
checks = [
    check("C1111 = C2222 (hexagonal isotropy)", C[1, 1], C[0, 0], 1e-3),
    check("C1212 = (C1111 − C1122)/2", mu, (C[0, 0] - C[0, 1]) / 2, 1e-3),
    within("κ within Hashin's bounds", kappa, kappa_low, kappa_high),
    within("μ within Hashin's bounds", mu, mu_low, mu_high),
    check("Hill–Mandel residual", results["hill_mandel_residual"], 0.0, 1e-10, relative=False),
    check("fraction", f2, 0.5, 2e-3),
    # the 3D mesh is coarser than the 2D one: their difference is the discretization
    check(
        "3D transverse block = 2D plane strain",
        float(np.linalg.norm(transverse_3d - transverse_2d)),
        0.0,
        0.02 * float(np.linalg.norm(transverse_2d)),
        relative=False,
    ),
    check("Hill: E1 − rule of mixtures", E1 - mixture, hill, 0.05),
]
summary = (
    f"Hexagonal glass/epoxy, fibre fraction {f2:.4f} ({results['dofs']} micro dofs)\n"
    f"  C1111 = {C[0, 0]:.4f}, C2222 = {C[1, 1]:.4f}, C1122 = {C[0, 1]:.4f}, C1212 = {mu:.4f}\n"
    f"  transverse bulk κ = {kappa:.4f} (bounds {kappa_low:.4f} … {kappa_high:.4f}), "
    f"shear μ = {mu:.4f} (bounds {mu_low:.4f} … {mu_high:.4f}), in-plane E = {E_T:.4f}\n"
    f"  3D cell ({result3d.dofs} dofs): E1 = {E1:.4f} (rule of mixtures {mixture:.4f}), "
    f"E2 = {E2:.4f}, ν12 = {nu12:.4f}, ν23 = {nu23:.4f}, G12 = {G12:.4f}, G23 = {G23:.4f}"
)
results |= {
    "kappa": kappa,
    "mu": mu,
    "E_inplane": E_T,
    "engineering_3d": {"E1": E1, "E2": E2, "nu12": nu12, "nu23": nu23, "G12": G12, "G23": G23},
    "bounds": {"kappa": [kappa_low, kappa_high], "mu": [mu_low, mu_high]},
}
finish(results, checks, args, summary)
# -

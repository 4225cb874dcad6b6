# # Effective properties of a fibre composite
#
# The transverse plane of a unidirectional glass/epoxy composite: glass fibres (E 70, ν 0.2) in
# epoxy (E 3, ν 0.35), fibre fraction 0.5, on a hexagonal packing, in plane strain. The run file
# (`demos/fiber_composite.toml`) has no macro problem: `hmm-fenics run` homogenizes the cell and
# writes the corrector field of each unit strain. This script adds the transverse engineering
# constants and checks them against what symmetry and bounds demand.
#
# Run: `python demos/fiber_composite.py` or `mpirun -n 2 python demos/fiber_composite.py`.

# +
import numpy as np
from demo_support import arguments, check, execute, finish, load, within

import hmm_fenics as hf

SIZES = {"small": 0.03, "medium": 0.012}  # micro h
# -

# +
args = arguments(
    "fiber_composite", "Effective properties of a hexagonal glass/epoxy fibre composite"
)
config = load("fiber_composite", {"rve": {"mesh_size": SIZES[args.size]}})
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
checks = [
    check("C1111 = C2222 (hexagonal isotropy)", C[1, 1], C[0, 0], 1e-3),
    check("C1212 = (C1111 − C1122)/2", mu, (C[0, 0] - C[0, 1]) / 2, 1e-3),
    within("κ within Hashin's bounds", kappa, kappa_low, kappa_high),
    within("μ within Hashin's bounds", mu, mu_low, mu_high),
    check("Hill–Mandel residual", results["hill_mandel_residual"], 0.0, 1e-10, relative=False),
    check("fraction", f2, 0.5, 2e-3),
]
summary = (
    f"Hexagonal glass/epoxy, fibre fraction {f2:.4f} ({results['dofs']} micro dofs)\n"
    f"  C1111 = {C[0, 0]:.4f}, C2222 = {C[1, 1]:.4f}, C1122 = {C[0, 1]:.4f}, C1212 = {mu:.4f}\n"
    f"  transverse bulk κ = {kappa:.4f} (bounds {kappa_low:.4f} … {kappa_high:.4f}), "
    f"shear μ = {mu:.4f} (bounds {mu_low:.4f} … {mu_high:.4f}), in-plane E = {E_T:.4f}"
)
results |= {
    "kappa": kappa,
    "mu": mu,
    "E_inplane": E_T,
    "bounds": {"kappa": [kappa_low, kappa_high], "mu": [mu_low, mu_high]},
}
finish(results, checks, args, summary)
# -

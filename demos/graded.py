# # A graded microstructure
#
# The fibre fraction of a conducting bar (matrix k = 1, fibres k = 10) rises linearly from 0.1 at
# the cold end (x = 0, T = 0) to 0.5 at the hot end (x = 1, T = 1); top and bottom are insulated.
# Each macro quadrature point solves the square fibre cell of its local fraction, rounded to
# 0.05: nine distinct cells, each meshed and factored once (`demos/graded.toml`).
#
# Run: `python demos/graded.py` or `mpirun -n 2 python demos/graded.py --size small`.

# +
from dataclasses import replace

import numpy as np
from demo_support import arguments, check, execute, finish, load

import hmm_fenics as hf

SIZES = {"small": (0.025, 0.04), "medium": (0.0125, 0.02)}  # macro H, micro h
# -

# ## FE² with a cell per fraction

# +
args = arguments("graded", "FE² through a bar with a graded fibre fraction")
H, h = SIZES[args.size]
config = load("graded", {"macro": {"mesh_size": H}, "rve": {"mesh_size": h}})
results = execute(config, args)
# -

# ## The reference: a bar in series
#
# The square fibre cell conducts isotropically, and the fraction varies along x only, so the bar
# is a series of slices: the heat flow is q = ΔT H / ∫₀ᴸ dx / k(f(x)). The conductivity of each
# rounded fraction comes from its own homogenization, independent of the FE² run; the integral
# of the step function k(f(x)) is taken on a fine grid. The FE² flux differs from it by the
# macro discretization: the jumps of k between fractions fall inside macro elements.

# +
graded, cell = config.graded, config.cell
values = sorted({graded.value_at([x, 0.0]) for x in np.linspace(0.0, 1.0, 2001)})
k_of = {}
for f in values:
    spec = replace(cell.rve, fraction=f)
    k_of[f] = hf.homogenize(spec, cell.physics, cell.materials, check=False).tensor
x = (np.arange(200000) + 0.5) / 200000  # midpoints: exact for the step function up to 5e-6
resistance = np.mean([1.0 / k_of[graded.value_at([xi, 0.0])][0, 0] for xi in x])
L, Hbar = config.macro.lengths["L"], config.macro.lengths["H"]
q_series = 1.0 * Hbar / (L * resistance)
q_fe2 = results["reactions"]["right"][0]
isotropy = max(abs(t[0, 0] - t[1, 1]) / t[0, 0] + abs(t[0, 1]) / t[0, 0] for t in k_of.values())
snapshots = results["snapshots"]
ratio = snapshots[1]["gradient"][0] / snapshots[0]["gradient"][0]
cold, hot = (graded.value_at(s["x"]) for s in snapshots)
k_ratio = k_of[cold][0, 0] / k_of[hot][0, 0]
checks = [
    check("heat flow = series bar ΔT H / ∫ dx/k", q_fe2, q_series, 5e-3),
    check("energy = ½ q ΔT (Clapeyron)", results["energy"], 0.5 * q_fe2 * 1.0, 1e-8),
    # square symmetry makes the cells isotropic; the unstructured cell meshes leave ~1e-5
    check("cells isotropic: |K11 − K22| + |K12|", isotropy, 0.0, 1e-3, relative=False),
    # the same heat flow crosses every slice: the gradient falls as k rises
    check("gradient ratio hot/cold end = k ratio cold/hot", ratio, k_ratio, 0.05),
]
summary = (
    f"Graded bar: {len(values)} cells (fraction {values[0]:.2f} … {values[-1]:.2f}), "
    f"k = {k_of[values[0]][0, 0]:.4f} … {k_of[values[-1]][0, 0]:.4f}\n"
    f"  heat flow {q_fe2:.6f}, series-bar reference {q_series:.6f}"
)
results |= {
    "fractions": values,
    "conductivities": [k_of[f][0, 0] for f in values],
    "heat_flow": q_fe2,
    "heat_flow_reference": q_series,
}
finish(results, checks, args, summary)
# -

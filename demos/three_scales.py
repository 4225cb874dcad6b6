# # The three scales of HMM: ε ≪ δ ≪ H, and what each one costs in error
#
# HMM has three lengths: the period ε of the medium, the window δ that samples it at a
# macro point, and the macro mesh size H. This demo runs the three studies of
# `hmm-fenics study` at small sizes and checks what theory says about each:
#
# 1. **oned**: on a 1D interval the HMM loop (macro gradient → micro window → averaged flux
#    → macro Newton) finds the *harmonic* mean of a = 2 + cos(2π x/ε), √3, not the
#    arithmetic mean 2; a window of a non-whole number of periods gives the harmonic mean
#    over that window (the resonance error).
# 2. **resonance**: in 2D, the error of the apparent coefficient of a window against δ/ε,
#    for the four micro boundary conditions: periodic windows are exact at whole δ/ε,
#    Dirichlet and Neumann windows are O(ε/δ), oversampling is much better.
# 3. **budget**: FE² on a manufactured problem with a locally periodic medium, its error
#    split into macro discretization (H), modeling (δ at fixed ε), the micro-scale term
#    (ε at fixed δ), and resonance (ε/δ and the micro BC).
#
# Run: `mpirun -n 2 python demos/three_scales.py --size small` (writes results.json and
# oned.png, oned_dirichlet.png, resonance.png, budget.png into out/demo_three_scales). `--size medium` runs the
# studies' default sizes (a few minutes).

# +
import math
import sys
from pathlib import Path

from mpi4py import MPI

import numpy as np
from demo_support import arguments, check, finish, within

from hmm_fenics.studies import budget, oned, resonance

args = arguments("three_scales", "The three scales of HMM: 1D case, resonance, error budget.")
comm = MPI.COMM_WORLD
out = Path(args.output)
if comm.rank == 0 and (out / "results.json").exists() and not args.overwrite:
    print(f"error: {out} holds results already; give --overwrite to replace them", file=sys.stderr)
    comm.Abort(2)
small = args.size == "small"
checks = []
# -

# ## 1. The 1D hands-on case
#
# Two micro periods per window (δ = 2ε), periodic: every window returns √3 (P3 windows of
# 64 cells per period: to ~1e-11), and P2 holds the homogenized solution x(1 − x)/(2√3)
# exactly. Then 2.5 periods, Dirichlet: each window returns the harmonic mean over itself,
# compared with δ / ∫ 1/a by adaptive quadrature (no finite elements).

# +
whole = oned.oned_hmm(macro_cells=8, epsilon=0.05, delta=0.1, bc="periodic")
partial = oned.oned_hmm(macro_cells=8, epsilon=0.05, delta=0.125, bc="dirichlet")
checks += [
    check(
        "oned: whole periodic windows give √3",
        float(np.abs(whole.coefficients - math.sqrt(3)).max()),
        0.0,
        1e-10,
        relative=False,
    ),
    check("oned: HMM = homogenized solution", whole.error_homogenized, 0.0, 1e-10, False),
    check(
        "oned: arithmetic mean model off by 1 − √3/2",
        whole.error_arithmetic,
        1 - math.sqrt(3) / 2,
        1e-12,
    ),
    check(
        "oned: a 2.5-period Dirichlet window = its own harmonic mean",
        float(np.abs(partial.coefficients - partial.references).max()),
        0.0,
        1e-10,
        relative=False,
    ),
    within(
        "oned: ... which is off √3 (resonance)",
        float(np.abs(partial.coefficients - math.sqrt(3)).max()),
        0.02,
        1.0,
    ),
]
# -

# ## 2. Resonance
#
# The window at a fixed point of the layered medium a = 2 + cos(2π x1/ε), A = diag(√3, 2),
# for whole and half δ/ε. P2 windows, 4 (small) or 8 (medium) elements per period: the
# mesh error of a periodic window at whole δ/ε is 1.3e-3 (small) / 1.3e-4 (medium).

# +
ratios = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0) if small else resonance.DEFAULT_RATIOS
cells = 4 if small else 8
mesh_error = 2e-3 if small else 2e-4
res = resonance.resonance_study(ratios, cells_per_epsilon=cells)
whole_ratio = [resonance.is_whole(r) for r in ratios]
periodic = np.asarray(res.errors["periodic"])
for bc in ("dirichlet", "neumann"):
    # O(ε/δ), with a phase-dependent constant at non-whole δ/ε: slope −1 ± 0.3
    checks.append(within(f"resonance: {bc} slope ≈ −1", res.rates[bc], -1.3, -0.7))
# periodic: the resonance alone, fitted on the non-whole δ/ε (same fractional phase ½)
checks.append(
    within("resonance: periodic slope ≈ −1 (non-whole δ/ε)", res.rates["periodic"], -1.3, -0.7)
)
checks += [
    within(
        "resonance: periodic at whole δ/ε = mesh error",
        float(periodic[whole_ratio].max()),
        0.0,
        mesh_error,
    ),
    within(
        "resonance: periodic at non-whole δ/ε / at whole (≥ 10)",
        float(periodic[~np.asarray(whole_ratio)].min() / periodic[whole_ratio].max()),
        10.0,
        math.inf,
    ),
    within(
        "resonance: oversampling / best of D, N at δ = 3ε (≤ 1/5)",
        res.errors["oversampling"][ratios.index(3.0)]
        / min(res.errors["dirichlet"][ratios.index(3.0)], res.errors["neumann"][ratios.index(3.0)]),
        0.0,
        0.2,
    ),
]
# -

# ## 3. The error budget
#
# FE² through the library's macro problem and Newton loop, on the unit square with the
# medium (1 + x1 x2)(2 + cos(2π x1/ε)) and u0 = sin πx1 sin πx2. Each configuration is also
# solved with the exact homogenized coefficient at the quadrature points, which isolates
# the macro error; the rest is the micro (windows') error.

# +
if small:
    sweeps = {
        "H": [0.5, 0.25],
        "delta_over_H": [0.1, 0.4],
        "eps_over_H": [0.1, 0.025],
        "bc": ["periodic", "dirichlet"],
    }
    base = {"H": 0.5}
else:
    sweeps, base = budget.SWEEPS, {}
study = budget.budget_study(sweeps, base, comm=comm)
rows = {(r.sweep, budget.sweep_value(r)): r for r in study.rows}
H = sweeps["H"]
macro_rate = math.log(rows["H", H[0]].macro_L2 / rows["H", H[1]].macro_L2) / math.log(H[0] / H[1])
delta = sweeps["delta_over_H"]
modeling = rows["delta_over_H", delta[-1]].coefficient / rows["delta_over_H", delta[0]].coefficient
by_eps = sorted(
    (r for (sweep, _), r in rows.items() if sweep == "eps_over_H"), key=lambda r: r.epsilon
)
micro_scale = by_eps[-1].coefficient / by_eps[0].coefficient
eps_factor = by_eps[-1].epsilon / by_eps[0].epsilon
checks += [
    within("budget: macro L2 rate (P2: 3)", macro_rate, 2.5, 3.5),
    within(
        f"budget: e_A is O(ε) at fixed δ (×{eps_factor:g} in ε)",
        micro_scale,
        0.6 * eps_factor,
        1.5 * eps_factor,
    ),
    within(
        f"budget: e_A changes less with δ at fixed ε (×{delta[-1] / delta[0]:g} in δ) than with ε",
        modeling,
        0.9,
        micro_scale,
    ),
    within(
        "budget: Dirichlet / periodic coefficient error",
        rows["bc", "dirichlet"].coefficient / rows["bc", "periodic"].coefficient,
        5.0,
        math.inf,
    ),
]
# -

# ## Results and pictures (rank 0)

# +
if comm.rank == 0:
    out.mkdir(parents=True, exist_ok=True)
    oned.draw(whole, out / "oned.png")
    oned.draw(partial, out / "oned_dirichlet.png")
    resonance.draw(res, out / "resonance.png")
    budget.draw(study, out / "budget.png")
results = {
    "ranks": comm.size,
    "oned": {"whole": whole.to_dict(), "partial": partial.to_dict()},
    "resonance": res.to_dict(),
    "budget": study.to_dict(),
}
parts = [oned.summary(whole), oned.summary(partial), resonance.summary(res), budget.summary(study)]
summary = "\n".join(["The three scales of HMM", *parts])
finish(results, checks, args, summary)
# -

# # Cyclic plasticity of a particle-reinforced aluminium plate with a hole (FE² with histories)
#
# A quarter of a square plate with a central hole (symmetry on the left and bottom edges) is
# pushed on its right edge, unloaded to zero displacement, and pushed again. The plate is an
# aluminium matrix (von Mises plasticity with linear isotropic and kinematic hardening) with 20%
# SiC particles (elastic): the plate has no material law of its own. Every macro quadrature
# point owns a periodic particle cell with its own plastic history: the matrix yields first
# next to the particles and at the hole, and what the plate remembers of the first loading
# (plastic strain, backstress) is what the cells remember. The job is
# `demos/plastic_composite.toml`; this script runs it and checks what can be known without it.
#
# Units: GPa and the plate's edge length (L = 1): reactions are forces per unit thickness,
# GPa·length.
#
# Run: `python demos/plastic_composite.py` or
# `mpirun -n 2 python demos/plastic_composite.py --size small`.

# +
import itertools
import time

from mpi4py import MPI

import numpy as np
from demo_support import arguments, check, execute, finish, load, within

from hmm_fenics.coupling.micro_models import CellModel
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.materials import IsotropicElastic
from hmm_fenics.micro.cell_problem import MicroResponse, cell_problem
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.point_laws import DEVIATOR, IN_PLANE, J2Plasticity, plane_strain_3d
from hmm_fenics.rve.mesh import build_rve
from hmm_fenics.solver import solve
from hmm_fenics.stepping import load_path, march

# macro H, micro h; steps after first yield to the peak, for the unloading and the reloading
SIZES = {"small": (0.15, 0.2, (3, 3, 3)), "medium": (0.08, 0.1, (6, 5, 5))}
HOMOGENEOUS_H = 0.25  # the cell of the homogeneous-limit check: any mesh gives the same answer
# -

# The run file fixes the physics; `--size` sets the element sizes and the steps.

# +
clock = {"start": (time.perf_counter(), time.process_time())}  # wall, CPU of this rank
args = arguments("plastic_composite", "FE² with plastic cells: a composite plate, cyclic load")
comm = MPI.COMM_WORLD
H, h, (n_load, n_unload, n_reload) = SIZES[args.size]
sizes = {"macro": {"mesh_size": H}, "rve": {"mesh_size": h}}
base = load("plastic_composite", sizes)
assert base.macro is not None
cell_config = base.cell
matrix = cell_config.materials["matrix"]
(t0, f0), (t1, f1) = base.loading.points[:2]  # the first segment: the loading
assert f0 == 0.0 and f1 != 0.0, "the run file's path starts by loading from 0"
# -

# ## The elastic limit, from the linear FE² solution
#
# Until the matrix yields somewhere, the plate is linear: FE² with the elastic phases (the
# linear cell, C_hom at every point) gives the macro strain G(x) at load factor 1, and the
# load scales it. The micro stress in a cell is linear in G too: σ(y) = Σ_j G_j S_j(y), where
# S_j is the micro stress of the unit gradient e_j (3D, with the σ33 of plane strain). The
# matrix of the cell at x first yields at the factor λ where λ max_y σ_vM(G(x), y) = σ_y, so
#
#     λ_y = σ_y / max_x max_{y in matrix} σ_vM(Σ_j G_j(x) S_j(y)).
#
# The S_j come from the history cell itself at a small gradient (δ e_j: elastic everywhere)
# and its snapshot fields (`micro_fields`, the stress at every micro quadrature point), so the
# peak is taken over exactly the points where the plastic run's cells evaluate their laws.

# +
rve = build_rve(cell_config.rve)
history_cell = history_cell_problem(
    cell_config.physics, rve, cell_config.materials, cell_config.degree, cell_config.solver
)
elastic = {**cell_config.materials, "matrix": IsotropicElastic(matrix.E, matrix.nu)}
linear_cell = cell_problem(
    cell_config.physics, rve, elastic, cell_config.degree, cell_config.solver
)
delta, virgin = 1e-6, np.zeros(history_cell.width_internal)
unit_stress, unit_flux = [], []
for j in range(3):
    G = delta * np.eye(3)[j]
    solution = history_cell.solve(G, virgin, np.zeros(len(G)))
    fields = history_cell.micro_fields(G, solution.fluctuation, solution.internal_row)
    unit_stress.append(fields.stress[history_cell.phase_points["matrix"]] / delta)
    unit_flux.append(solution.flux / delta)
deviators = np.asarray(unit_stress) @ DEVIATOR  # (3 unit gradients, matrix points, 6)


def linear_plate(factor: float) -> MacroProblem:
    """The plate of the run file with the linear cell (FE², elastic phases) at ``factor``."""
    assert base.macro is not None
    mesh = macro_mesh(base.macro.geometry, H, comm, params=base.macro.lengths)
    problem = MacroProblem(
        mesh,
        cell_config.physics,
        base.dirichlet,
        quadrature_degree=base.macro.quadrature_degree,
        degree=base.macro.degree,
    )
    problem.set_load(factor)
    solve(problem, CellModel(linear_cell), rtol=base.rtol, atol=base.atol, progress=False)
    return problem


linear = linear_plate(1.0)
strains = linear.gradients()  # macro strain at every owned quadrature point, factor 1
dev = np.einsum("qj,jmi->qmi", strains, deviators)
peaks = np.sqrt(1.5 * np.einsum("qmi,qmi->qm", dev, dev)).max(axis=1, initial=0.0)
peak = comm.allreduce(float(peaks.max(initial=0.0)), op=MPI.MAX)
lambda_y = matrix.sigma_y / peak
linear_reaction = linear.reactions()["right"][0]
clock["elastic limit"] = (time.perf_counter(), time.process_time())
# -

# ## The plastic run
#
# The run file's path (load to factor 1, unload to 0, reload to 1) gets two more points on its
# loading segment, at 0.98 λ_y and 1.02 λ_y, each reached in one step.

# +
below, above = 0.98 * lambda_y, 1.02 * lambda_y
path = [list(p) for p in base.loading.points]
path[1:1] = [[t0 + (t1 - t0) * f / f1, f] for f in (below, above)]
config = load(
    "plastic_composite",
    {**sizes, "loading": {"path": path, "steps": [1, 1, n_load, n_unload, n_reload]}},
)
results = execute(config, args)
steps = results["steps"]
value = config.dirichlet["right"][0]  # prescribed right-edge displacement at factor 1
u = np.array([0.0] + [s["factor"] * value for s in steps])
R = np.array([0.0] + [s["reactions"]["right"][0] for s in steps])
D = np.array([0.0] + [s["dissipated_energy"] for s in steps])
stored = np.array([0.0] + [s["stored_energy"] for s in steps])
times = np.array([t0] + [s["time"] for s in steps])
clock["plastic run"] = (time.perf_counter(), time.process_time())
# -

# ## What the plate remembers: the loop, the residual state, the plastic zone
#
# Unloading ends at zero displacement with a tensile reaction (the plastically shortened matrix
# is pulled back to the original length); the unloading branch crosses zero force at the
# residual shortening. Unloading starts on the initial elastic slope, then the matrix yields
# again in reverse (the residual stresses of the first loading, helped by the backstress of the
# kinematic hardening: the Bauschinger effect), and once more forward on reloading: the loop
# between the unloading and reloading branches is the energy dissipated in that cycle.

# +
t_peak, t_unloaded = base.loading.points[1][0], base.loading.points[2][0]
k_peak = int(np.argmin(np.abs(times - t_peak)))
k_zero = int(np.argmin(np.abs(times - t_unloaded)))
unloading = slice(k_peak, k_zero + 1)
u_un, R_un = u[unloading], R[unloading]
crossing = np.nonzero(np.sign(R_un[:-1]) != np.sign(R_un[1:]))[0]
if len(crossing):
    i = int(crossing[0])
    residual_u = float(u_un[i] - R_un[i] * (u_un[i + 1] - u_un[i]) / (R_un[i + 1] - R_un[i]))
else:
    residual_u = float("nan")
residual_R = float(R[k_zero])
K0 = R[1] / u[1]  # the first step ends at 0.98 λ_y: elastic
K_unload = (R[k_peak + 1] - R[k_peak]) / (u[k_peak + 1] - u[k_peak])


def hysteresis_picture(path: str) -> None:
    """Compressive reaction against shortening, coloured by load segment (rank 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    shortening, force = -u * 1e3, -R  # compression positive; shortening in 10⁻³ L
    figure, axes = plt.subplots(figsize=(6.5, 4.8))
    parts = [
        (slice(0, k_peak + 1), "loading", "C0"),
        (slice(k_peak, k_zero + 1), "unloading", "C3"),
        (slice(k_zero, len(u)), "reloading", "C2"),
    ]
    for part, label, colour in parts:
        axes.plot(shortening[part], force[part], "-o", color=colour, ms=3, lw=1.4, label=label)
    top = shortening.max()
    axes.plot([0, top], [0, K0 * top * 1e-3], "--", color="0.5", lw=0.8, label="initial slope")
    axes.plot(
        [-u[1] / 0.98 * 1e3],
        [-R[1] / 0.98],
        "k*",
        ms=10,
        label=f"first yield (λ_y = {lambda_y:.3f})",
    )
    if np.isfinite(residual_u):
        axes.plot([-residual_u * 1e3], [0.0], "kD", ms=5, label="residual shortening")
    axes.axhline(0.0, color="0.7", lw=0.6)
    axes.xaxis.set_major_locator(MaxNLocator(7))
    axes.set_xlabel("shortening of the plate −u₁ on the right edge [10⁻³ length]")
    axes.set_ylabel("compressive reaction −F₁ on the right edge [GPa·length]")
    axes.set_title(
        "Al/SiC plate with a hole: load, unload, reload (FE², plane strain)", fontsize=10
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)


if comm.rank == 0:
    hysteresis_picture(f"{args.output}/hysteresis.png")
# -

# ## The homogeneous-cell limit
#
# With both phases the matrix's J2 material, a cell is homogeneous: its fluctuation vanishes
# and its stress is the J2 law at the macro strain. FE² must then equal a macro solve where
# every macro quadrature point calls the J2 point law directly. That solve is written here: a
# micro model of a dozen lines with a state per point, committed and rolled back by the same
# time stepping (`stepping.march`). The path is the run file's, in fewer steps.


# +
class PointJ2:
    """Every macro point is one material point of the J2 law (no cell), with its state."""

    def __init__(self, law: J2Plasticity) -> None:
        self.law, self.dt = law, 1.0
        self.committed = self.trial = np.zeros((0, law.n_vars))
        self.strain = np.zeros((0, 6))

    def begin_step(self, time: float, dt: float) -> None:
        self.dt = dt

    def respond(self, gradients, points, ids=None) -> MicroResponse:
        if len(self.committed) != len(gradients):
            self.committed = np.zeros((len(gradients), self.law.n_vars))
        self.strain = plane_strain_3d(gradients)
        stress, tangent, self.trial = self.law.update(self.strain, self.committed, self.dt)
        return MicroResponse(stress[:, IN_PLANE], tangent[:, IN_PLANE[:, None], IN_PLANE])

    def commit(self) -> None:
        self.committed = self.trial

    def rollback(self) -> None:
        self.trial = self.committed

    def averages(self) -> dict[str, np.ndarray]:
        law, state = self.law, self.trial
        return {
            "stored_energy": law.free_energy(self.strain, state),
            "dissipation": law.dissipation(state),
            "plastic_strain": law.plastic_strain(state),
        }


homogeneous_steps = [2, 3, 3]  # no cut-backs at the small size (the J2 plate is stiff to solve)
homogeneous = load(
    "plastic_composite",
    {
        "macro": {"mesh_size": H},
        "rve": {"mesh_size": HOMOGENEOUS_H},
        "materials": {"inclusion": config.data["materials"]["matrix"]},
        "loading": {"steps": homogeneous_steps},
        "output": {"png": False, "fields": "none"},
    },
)
fe2_homogeneous = execute(
    homogeneous, type(args)(**{**vars(args), "output": f"{args.output}/homogeneous"})
)
plate = macro_mesh(base.macro.geometry, H, comm, params=base.macro.lengths)
direct = MacroProblem(
    plate,
    cell_config.physics,
    base.dirichlet,
    quadrature_degree=base.macro.quadrature_degree,
    degree=base.macro.degree,
)
law = J2Plasticity(matrix.E, matrix.nu, matrix.sigma_y, matrix.H_iso, matrix.H_kin)
increments = march(
    direct,
    PointJ2(law),
    load_path(base.loading.points, homogeneous_steps),
    rtol=base.rtol,
    atol=base.atol,
    progress=False,
)
R_fe2 = np.array([s["reactions"]["right"][0] for s in fe2_homogeneous["steps"]])
R_direct = np.array([i.record["reactions"]["right"][0] for i in increments])
same_steps = [s["time"] for s in fe2_homogeneous["steps"]] == [i.time for i in increments]
homogeneous_error = (
    float(np.abs(R_fe2 - R_direct).max() / np.abs(R_direct).max()) if same_steps else 1.0
)
D_direct = increments[-1].record["dissipated_energy"]
clock["homogeneous limit"] = (time.perf_counter(), time.process_time())
# -

# ## The checks
#
# - The history cell in its virgin state, at δ e_j, is the linear cell: the same C_hom to
#   1e-8 (both solve the same elastic cell problem, one by a Newton step to 1e-10, one by
#   one factorization).
# - Elastic limit: the plastic run dissipates nothing up to 0.98 λ_y and something by
#   1.02 λ_y. Below yield the run is the linear solution scaled by the load factor to solver
#   tolerance (≈1e-9), so the ±2% window fails only for a wrong prediction: leaving out the
#   σ33 of plane strain changes the matrix von Mises stress by ~10%, a peak taken over the
#   particles or from the macro stress by far more. The linear plate's reaction at 0.98 λ_y
#   must also be the plastic run's first step (to 1e-8: two Newton solves to rtol 1e-10).
# - Homogeneous limit: FE² with a homogeneous J2 cell = the macro solve with the J2 law at the
#   points, reaction by reaction along the path, to 1e-8: both Newtons stop at 1e-10 of their
#   first residual, the cell's fluctuation is zero to its own 1e-10 tolerance; a cell or
#   state-handling error would show at the first plastic step at the 1e-3 level or more.
# - Energy. In an elastic step the trapezoidal work of the reaction is exact: at 0.98 λ_y the
#   external work is the stored energy (1e-9: Newton tolerance). Along the whole path, the
#   backward-Euler return mapping of J2 gives at every micro point and in every step
#   σ_n : Δε ≤ Δψ + ΔD ≤ σ_{n+1} : Δε (convexity of the free energy, the yield condition
#   at both ends of the step; equalities for an elastic step), and more precisely
#   Δψ + ΔD − ½ (σ_n + σ_{n+1}) : Δε = ½ Δp (σ_y + H_iso p_n − √(3/2) (dev σ_n − α_n) : n_{n+1}) ≥ 0
#   (n_{n+1} the flow direction). Summed with the micro and macro quadrature weights,
#   equilibrium turns σ : Δε into the work of the reaction on the moving edge. So the
#   trapezoidal external work W_ext that the run reports can only fall short of Ψ + D, by at
#   most half the spread of the Riemann sums:
#   0 ≤ Ψ + D − W_ext ≤ ½ Σ_n |ΔR_n Δu_n|  (up to the Newton tolerance: a slack of
#   1e-9 (Ψ + D)). The shortfall comes from points that start to yield within a step
#   (dev σ_n − α_n inside the yield surface: first order in the step) and from flow
#   directions that turn (second order).
# - Unloading slope: a step in which no point yields (ΔD = 0) is linear with the elastic
#   tangents everywhere, the plastic strains frozen; its secant slope is the initial elastic
#   slope to the Newton tolerance (1e-8 relative).

# +
k_below = int(np.argmin(np.abs(u / value - below)))
k_above = int(np.argmin(np.abs(u / value - above)))
energy = stored[-1] + D[-1]
slack = 1e-9 * energy
bound = 0.5 * float(np.abs(np.diff(R) * np.diff(u)).sum())
external = steps[-1]["external_work"]
C_virgin = np.asarray(unit_flux).T
C_hom = linear_cell.effective_tensor
checks = [
    check(
        "virgin history cell = linear cell: C_hom",
        float(np.abs(C_virgin - C_hom).max()),
        0.0,
        1e-8 * float(np.abs(C_hom).max()),
        relative=False,
    ),
    check("dissipation at 0.98 λ_y (elastic)", float(D[k_below]), 0.0, 0.0, relative=False),
    within("dissipation at 1.02 λ_y (yielded)", float(D[k_above]), 1e-300, float(D[-1])),
    check(
        "first step = linear FE² plate at 0.98 λ_y: reaction",
        float(R[1]),
        below * linear_reaction,
        1e-8,
    ),
    check(
        "homogeneous cell: FE² = J2 law at the macro points (reactions)",
        homogeneous_error,
        0.0,
        1e-8,
        relative=False,
    ),
    check("elastic first step: W_ext = Ψ", steps[0]["external_work"], float(stored[1]), 1e-9),
    within("0 ≤ Ψ + D − W_ext ≤ ½ Σ|ΔR Δu|", energy - external, -slack, bound + slack),
    check(
        "first unloading step is elastic: ΔD",
        float(D[k_peak + 1] - D[k_peak]),
        0.0,
        0.0,
        relative=False,
    ),
    check("unloading slope = initial elastic slope", float(K_unload), float(K0), 1e-8),
]
points = results["macro_points"]
clock["checks"] = (time.perf_counter(), time.process_time())
stages = list(clock.items())
seconds = {b[0]: b[1][0] - a[1][0] for a, b in itertools.pairwise(stages)}
cpu = comm.allreduce(clock["checks"][1] - clock["start"][1], op=MPI.MAX)
timing = ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items())
timing += (
    f" (total {clock['checks'][0] - clock['start'][0]:.1f} s; CPU of the busiest rank "
    f"{cpu:.1f} s, after the imports)"
)
summary = (
    f"FE² Al/SiC plate with a hole, load-unload-reload: {points} macro points, each a periodic "
    f"particle cell ({results['micro_unknowns']} unknowns) with its plastic history, "
    f"{comm.size} rank(s), {len(steps)} steps\n"
    f"  first yield at λ_y = {lambda_y:.4f} (right-edge displacement {lambda_y * value:.3e}; "
    f"peak matrix von Mises {peak:.4f} GPa at factor 1)\n"
    f"  peak: u = {u[k_peak]:.4f}, reaction {R[k_peak]:.5f} GPa·length "
    f"({R[k_peak] / (K0 * u[k_peak]):.2f} of the elastic response)\n"
    f"  after unloading to u = 0: residual reaction {residual_R:+.5f} GPa·length; the unloading "
    f"branch crosses zero force at u = {residual_u:.3e} (residual shortening)\n"
    f"  dissipated {D[-1]:.4e}, stored {stored[-1]:.4e}, external work {external:.4e} "
    f"(bound on the time-integration error {bound:.1e})\n"
    f"  homogeneous cell vs J2 law at the points: max reaction difference {homogeneous_error:.1e}"
    f" (dissipated {fe2_homogeneous['steps'][-1]['dissipated_energy']:.4e} vs {D_direct:.4e})\n"
    f"  wall time: {timing}\n"
    f"  pictures: hysteresis.png, plastic_zone.png, curve.png, macro.png, rve.png"
)
results |= {
    "lambda_y": lambda_y,
    "peak_von_mises_at_factor_1": peak,
    "residual_reaction": residual_R,
    "residual_displacement": residual_u,
    "elastic_slope": K0,
    "unloading_slope": K_unload,
    "energy_bound": bound,
    "homogeneous_reaction_error": homogeneous_error,
    "stage_seconds": seconds,
    "cpu_seconds": cpu,
    "virgin_cell_tensor": C_virgin.tolist(),
}
finish(results, checks, args, summary)
# -

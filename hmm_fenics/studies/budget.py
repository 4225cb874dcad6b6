"""Error budget: macro discretization (H), modeling (δ/H) and resonance (ε/δ) of HMM, one at a time.

The medium is locally periodic, a(x, x/ε) = c(x)·(2 + cos(2π x1/ε)) with c(x) = 1 + x1 x2,
so the homogenized coefficient is A(x) = c(x)·diag(√3, 2) in closed form. The macro problem
on the unit square is −div(A ∇u0) = f with the manufactured u0 = sin(π x1) sin(π x2) (zero
on the boundary) and f computed from it. FE² runs through the library: the macro problem
(``macro.MacroProblem``, P2 on a structured mesh of size H, three quadrature points per
cell)
and the Newton loop (``solver.solve``) ask a micro model at every quadrature point x_Q,
whose answer is the apparent tensor of the window x_Q + δ·(−½, ½)² of the medium
(``coupling.sampling.SampledModel`` of ``studies.windows``, any micro BC).

Each configuration is solved twice: with the windows (u_HMM), and with the exact A(x_Q)
at the same points (u_H: the macro discretization alone). Its row of the budget:

- macro: ‖u_H − u0‖ (falls with H: O(H³) in L2, O(H²) in H1);
- micro: ‖u_HMM − u_H‖, the error the windows' coefficients make, and its source
  e_A = max_Q ‖A_δ(x_Q) − A(x_Q)‖₂/‖A(x_Q)‖₂: the modeling error (c varies over the window:
  O(ε|∇c|/c) from c against the oscillation, plus O(δ²|∇²c|/c), when δ/ε is whole and the
  BC periodic) plus the resonance error (O(ε/δ) for a non-whole δ/ε or a non-periodic BC)
  and the windows' own mesh error (~1e-4, P2, 8 cells per period);
- total: ‖u_HMM − u0‖ ≤ macro + micro.

Five sweeps vary one thing at a time around a base configuration (``BASE``: H = 1/4, δ/H = 1/5,
ε/δ = 1/2, periodic windows): H (macro); δ at the base's ε (modeling: c over the window);
ε at the base's δ (the micro-scale term O(ε|∇c|)); ε/δ under Dirichlet windows (resonance,
O(ε/δ), which shows at whole δ/ε too, where periodic windows are exact); and the micro BC.
Varying δ/H at fixed ε/δ would move the modeling and the micro-scale terms together.
"""

import argparse
import math
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.micro.boundary import BOUNDARY_CONDITIONS
from hmm_fenics.studies.output import StudyOutput, save_figure

BASE: dict[str, float | str] = {
    "H": 0.25,
    "delta_over_H": 0.2,
    "eps_over_delta": 0.5,
    "bc": "periodic",
}
"""The base configuration; each sweep varies one of its entries."""
SWEEPS: dict[str, list[float | str]] = {
    "H": [0.5, 0.25, 0.125],
    "delta_over_H": [0.1, 0.2, 0.4, 0.8],
    "eps_over_H": [0.1, 0.05, 0.025],
    "eps_over_delta": [0.5, 1 / 3, 0.25],
    "bc": list(BOUNDARY_CONDITIONS),
}
"""Default values of each sweep. ``delta_over_H`` varies δ at the base's ε (δ/ε = 1, 2, 4, 8
periods), ``eps_over_H`` varies ε at the base's δ (δ/ε = 2, 4, 8), ``eps_over_delta`` the
window in periods (2, 3, 4) under Dirichlet conditions."""
SWEEP_BASE: dict[str, dict[str, float | str]] = {"eps_over_delta": {"bc": "dirichlet"}}
"""Changes of the base for one sweep: the ε/δ sweep uses Dirichlet windows, whose resonance
error O(ε/δ) shows at whole δ/ε too (periodic windows would be exact there)."""
CELLS_PER_EPSILON = 8


def scale(x: Any) -> Any:
    """c(x) = 1 + x1 x2 (works on NumPy rows and on UFL coordinates)."""
    return 1.0 + x[0] * x[1]


def medium(x: npt.NDArray[np.float64], epsilon: float) -> npt.NDArray[np.float64]:
    """a(x, x/ε) = c(x)(2 + cos(2π x1/ε)); ``x`` of shape ``(dim, n)``, returns ``(n,)``."""
    x = np.asarray(x)
    return np.asarray(scale(x) * (2.0 + np.cos(2.0 * np.pi * x[0] / epsilon)), dtype=np.float64)


def homogenized(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A(x) = c(x)·diag(√3, 2) at points ``x`` of shape ``(n, dim)``: ``(n, 2, 2)``."""
    c = scale(np.asarray(x).T)
    return np.asarray(np.einsum("p,ij->pij", c, np.diag([math.sqrt(3.0), 2.0])), dtype=np.float64)


class ExactModel:
    """The micro model that answers with the homogenized A(x_Q): the macro error alone."""

    def respond(self, gradients: Any, points: Any, ids: Any = None) -> Any:
        """Flux A(x) G and tangent A(x) at every point."""
        from hmm_fenics.micro.cell_problem import MicroResponse

        tangent = homogenized(np.asarray(points)[:, :2])
        return MicroResponse(np.einsum("pij,pj->pi", tangent, gradients), tangent)


def unit_square(H: float, comm: Any) -> Any:
    """The unit square as a ``MacroMesh``: a structured mesh of right triangles of legs H.

    Structured so that H is the mesh size exactly (1/H cells per side); its boundary is one
    named group, ``boundary``.

    Raises:
        InputError: H not 1/n for a whole n (naming ``--H``).
    """
    from dolfinx import mesh as dmesh

    from hmm_fenics.macro.mesh import MacroMesh

    check_H(H)
    n = round(1.0 / H)
    square = dmesh.create_unit_square(comm, n, n, dmesh.CellType.triangle)
    fdim = square.topology.dim - 1
    square.topology.create_connectivity(fdim, fdim + 1)
    facets = dmesh.exterior_facet_indices(square.topology)
    tags = dmesh.meshtags(square, fdim, facets, np.ones(len(facets), dtype=np.int32))
    return MacroMesh(square, tags, {"boundary": 1})


class Row(NamedTuple):
    """One configuration of the budget.

    Attributes:
        sweep: Which parameter the row varies (``H``, ``delta_over_H``, ``eps_over_delta``).
        H, delta, epsilon, bc: The configuration (δ = (δ/H)·H, ε = (ε/δ)·δ).
        points: Macro quadrature points.
        windows: Micro windows solved (one per point: linear micro physics).
        coefficient: e_A, max over the points of ‖A_δ − A‖₂/‖A‖₂.
        total_L2, total_H1: ‖u_HMM − u0‖ (L2, and H1 seminorm), relative to ‖u0‖.
        macro_L2, macro_H1: ‖u_H − u0‖ (exact A at the points), relative.
        micro_L2, micro_H1: ‖u_HMM − u_H‖, relative.
        seconds: Wall time of the row.
    """

    sweep: str
    H: float
    delta: float
    epsilon: float
    bc: str
    points: int
    windows: int
    coefficient: float
    total_L2: float
    total_H1: float
    macro_L2: float
    macro_H1: float
    micro_L2: float
    micro_H1: float
    seconds: float


def check_H(H: Any) -> None:
    """Refuse an H that is not 1/n for a whole n (InputError naming ``--H``).

    The structured unit square has n cells per side, so its mesh size is 1/n: any other H
    would be reported but not used.
    """
    if not (isinstance(H, int | float) and math.isfinite(H) and 0 < H <= 1):
        raise InputError(f"--H values must be in (0, 1] (the unit square's mesh size), got {H!r}.")
    n = round(1.0 / H)
    if abs(n * H - 1.0) > 1e-9:
        raise InputError(
            f"--H values must be 1/n for a whole n (the unit square's n cells per side), got "
            f"{H!r} (1/H = {1.0 / H:.6g})."
        )


def check_row(
    H: float,
    delta_over_H: float,
    eps_over_delta: float,
    bc: str,
    cells_per_epsilon: int = CELLS_PER_EPSILON,
) -> None:
    """Refuse a configuration that cannot run (InputError naming the option)."""
    from hmm_fenics.rve.medium import check_window

    check_H(H)
    if not (math.isfinite(delta_over_H) and delta_over_H > 0):
        raise InputError(f"--delta-over-H values must be positive, got {delta_over_H!r}.")
    if not (math.isfinite(eps_over_delta) and 0 < eps_over_delta <= 1):
        raise InputError(f"--eps-over-delta values must be in (0, 1], got {eps_over_delta!r}.")
    if bc not in BOUNDARY_CONDITIONS:
        raise InputError(f"--bc must be one of {list(BOUNDARY_CONDITIONS)}, got {bc!r}.")
    cells = window_cells(cells_per_epsilon, eps_over_delta)
    check_window(delta_over_H * H, cells, 2, "--delta-over-H", "raise --eps-over-delta")


def window_cells(cells_per_epsilon: int, eps_over_delta: float) -> int:
    """Elements per direction of a window of δ with ``cells_per_epsilon`` per period."""
    cells = cells_per_epsilon / eps_over_delta
    if not math.isfinite(cells):  # a subnormal ε/δ: as many as a float holds
        cells = sys.float_info.max
    return max(1, math.ceil(cells - 1e-9))


def solve_row(
    sweep: str,
    H: float,
    delta_over_H: float,
    eps_over_delta: float,
    bc: str,
    cells_per_epsilon: int = CELLS_PER_EPSILON,
    comm: Any = None,
) -> Row:
    """FE² of the manufactured problem with the windows, and with the exact A: one row.

    Raises:
        InputError: a bad size or BC (naming the option).
    """
    from mpi4py import MPI

    import ufl
    from dolfinx import fem

    from hmm_fenics.coupling.sampling import SampledModel
    from hmm_fenics.macro.problem import MacroProblem
    from hmm_fenics.physics import Diffusion
    from hmm_fenics.solver import solve
    from hmm_fenics.studies.windows import boundary_windows

    comm = MPI.COMM_WORLD if comm is None else comm
    check_row(H, delta_over_H, eps_over_delta, bc, cells_per_epsilon)
    start = time.perf_counter()
    delta = delta_over_H * H
    epsilon = eps_over_delta * delta
    cells = window_cells(cells_per_epsilon, eps_over_delta)
    windows = boundary_windows(2, medium, delta, cells, bc, epsilon=epsilon)
    mesh = unit_square(H, comm)
    physics = Diffusion(2)
    x = ufl.SpatialCoordinate(mesh.mesh)
    u0 = ufl.sin(ufl.pi * x[0]) * ufl.sin(ufl.pi * x[1])
    A = scale(x) * ufl.as_matrix([[math.sqrt(3.0), 0.0], [0.0, 2.0]])
    f = -ufl.div(A * ufl.grad(u0))
    dx = ufl.Measure("dx", domain=mesh.mesh, metadata={"quadrature_degree": 6})
    solutions = []
    points = 0
    hmm = SampledModel(windows)
    for model in (hmm, ExactModel()):
        problem = MacroProblem(mesh, physics, {"boundary": 0.0}, degree=2)
        # the manufactured source, a UFL expression: the residual ∫ q·∇v − ∫ f v
        v = ufl.TestFunction(problem.V)
        q = problem.quadrature
        problem.residual_form = fem.form(ufl.inner(q.flux, ufl.grad(v)) * q.dx - f * v * dx)
        solve(problem, model, progress=False)
        solutions.append(problem.u)
        points = comm.allreduce(q.n_points)
        if model is hmm:
            local = q.coordinates()
            exact = homogenized(local[:, :2])
            errors = [
                float(np.linalg.norm(hmm.tensor_at(p) - e, 2) / np.linalg.norm(e, 2))
                for p, e in zip(local, exact, strict=True)
            ]
            coefficient = comm.allreduce(max(errors, default=0.0), op=MPI.MAX)
    u_hmm, u_h = solutions

    def norms(w: Any) -> tuple[float, float]:
        l2 = fem.assemble_scalar(fem.form(w**2 * dx))
        h1 = fem.assemble_scalar(fem.form(ufl.inner(ufl.grad(w), ufl.grad(w)) * dx))
        return (
            math.sqrt(comm.allreduce(float(np.real(l2)))),
            math.sqrt(comm.allreduce(float(np.real(h1)))),
        )

    ref_l2, ref_h1 = norms(u0)
    total, macro, micro = norms(u_hmm - u0), norms(u_h - u0), norms(u_hmm - u_h)
    return Row(
        sweep,
        H,
        delta,
        epsilon,
        bc,
        points,
        comm.allreduce(hmm.solves),
        coefficient,
        total[0] / ref_l2,
        total[1] / ref_h1,
        macro[0] / ref_l2,
        macro[1] / ref_h1,
        micro[0] / ref_l2,
        micro[1] / ref_h1,
        comm.allreduce(time.perf_counter() - start, op=MPI.MAX),
    )


class BudgetResult(NamedTuple):
    """The error budget: one ``Row`` per configuration, grouped by sweep."""

    rows: list[Row]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers, with the problem's description."""
        return {
            "medium": "a(x, x/ε) = (1 + x1 x2)(2 + cos(2π x1/ε)), A(x) = (1 + x1 x2) diag(√3, 2)",
            "u0": "sin(π x1) sin(π x2) on the unit square, u = 0 on the boundary",
            "errors": "relative to ‖u0‖ (L2) and |u0|_H1; coefficient: max_Q ‖A_δ − A‖₂/‖A‖₂",
            "rows": [row._asdict() for row in self.rows],
        }


def budget_study(
    sweeps: Mapping[str, Sequence[float | str]] | None = None,
    base: dict[str, Any] | None = None,
    cells_per_epsilon: int = CELLS_PER_EPSILON,
    comm: Any = None,
) -> BudgetResult:
    """Every sweep: each value of one parameter, the others at ``base``.

    Args:
        sweeps: Parameter → values (``SWEEPS`` by default; a subset runs fewer rows).
        base: The configuration around which one parameter varies (``BASE``).
        cells_per_epsilon: Micro P2 elements per period.
        comm: Communicator of the macro problems.
    """
    chosen: Mapping[str, Sequence[float | str]] = SWEEPS if sweeps is None else sweeps
    base = BASE | dict(base or {})
    unknown = sorted(set(chosen) - set(SWEEPS))
    if unknown:
        raise InputError(f"a sweep varies one of {sorted(SWEEPS)}, got {unknown}.")
    configs = []
    for sweep, values in chosen.items():
        for value in values:
            H, ratio, eps, bc = _configuration(base, sweep, value)
            check_row(
                float(H), float(ratio), float(eps), str(bc), cells_per_epsilon
            )  # before solves
            configs.append((sweep, float(H), float(ratio), float(eps), str(bc)))
    rows = [solve_row(*config, cells_per_epsilon, comm) for config in configs]
    return BudgetResult(rows)


def _configuration(
    base: Mapping[str, Any], sweep: str, value: float | str
) -> tuple[Any, Any, Any, Any]:
    """(H, δ/H, ε/δ, bc) of one sweep value, the rest at ``base``.

    δ and ε are varied one at a time, each at the base's value of the other: the modeling error
    of a window (c varying over δ) and the micro-scale error O(ε|∇c|) then show apart, where a
    sweep at fixed ε/δ would move both at once.
    """
    config = dict(base) | SWEEP_BASE.get(sweep, {}) | {sweep: value}
    H, ratio, eps, bc = (config[k] for k in ("H", "delta_over_H", "eps_over_delta", "bc"))
    if sweep in ("delta_over_H", "eps_over_H"):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            option = "--delta-over-H" if sweep == "delta_over_H" else "--eps-over-H"
            raise InputError(f"{option} values must be positive, got {value!r}.")
        epsilon = float(base["eps_over_delta"]) * float(base["delta_over_H"]) * float(H)
        if sweep == "delta_over_H":  # δ = value·H at the base's ε
            eps = epsilon / (float(value) * float(H))
        else:  # ε = value·H at the base's δ
            ratio = base["delta_over_H"]
            eps = float(value) / float(ratio)
    return H, ratio, eps, bc


def summary(result: BudgetResult) -> str:
    """The budget table."""
    head = (
        f"{'varies':<15}{'H':>7}{'δ':>8}{'ε':>9}{'bc':>13}{'e_A':>10}"
        f"{'macro L2':>10}{'micro L2':>10}{'total L2':>10}{'macro H1':>10}{'micro H1':>10}"
        f"{'total H1':>10}"
    )
    lines = [head]
    for r in result.rows:
        lines.append(
            f"{r.sweep:<15}{r.H:>7.3g}{r.delta:>8.3g}{r.epsilon:>9.3g}{r.bc:>13}"
            f"{r.coefficient:>10.2e}{r.macro_L2:>10.2e}{r.micro_L2:>10.2e}{r.total_L2:>10.2e}"
            f"{r.macro_H1:>10.2e}{r.micro_H1:>10.2e}{r.total_H1:>10.2e}"
        )
    lines.append(
        "macro: u_H (exact A at the points) − u0; micro: u_HMM − u_H; total: u_HMM − u0; "
        "e_A: max relative coefficient error of the windows"
    )
    return "\n".join(lines)


CURVES = (
    ("macro (u_H − u0)", "macro_L2", "s-"),
    ("micro (u_HMM − u_H)", "micro_L2", "o-"),
    ("total (u_HMM − u0)", "total_L2", "k--"),
    ("coefficient e_A", "coefficient", "^:"),
)
LABELS = {
    "H": "macro mesh size H",
    "delta_over_H": "δ/H (ε fixed)",
    "eps_over_H": "ε/H (δ fixed)",
    "eps_over_delta": "ε/δ",
    "bc": "micro BC",
}
SLOPES = {"H": 3.0, "delta_over_H": 2.0, "eps_over_H": 1.0, "eps_over_delta": 1.0}
"""Reference slopes: P2 macro O(H³) in L2; modeling O(δ²) at fixed ε (c over the window; for
this c it stays below the micro-scale term at these δ); micro-scale O(ε) at fixed δ;
resonance O(ε/δ)."""


def sweep_value(row: Row) -> float | str:
    """The value of the parameter the row varies."""
    values: dict[str, float | str] = {
        "H": row.H,
        "delta_over_H": row.delta / row.H,
        "eps_over_H": row.epsilon / row.H,
        "eps_over_delta": row.epsilon / row.delta,
        "bc": row.bc,
    }
    return values[row.sweep]


def draw(result: BudgetResult, path: Any) -> Any:
    """One panel per sweep: macro, micro and total L2 errors and e_A against the parameter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = list(dict.fromkeys(r.sweep for r in result.rows))
    figure, axes = plt.subplots(1, len(sweeps), figsize=(4.6 * len(sweeps), 4.4), squeeze=False)
    for ax, sweep in zip(axes[0], sweeps, strict=True):
        rows = [r for r in result.rows if r.sweep == sweep]
        if sweep == "bc":  # categories: grouped bars on a log axis
            where = np.arange(len(rows))
            for k, (name, key, _) in enumerate(CURVES):
                heights = [max(getattr(r, key), 1e-16) for r in rows]
                ax.bar(where + (k - 1.5) * 0.2, heights, 0.2, label=name, log=True)
            ax.set_xticks(where, [r.bc for r in rows])
        else:
            values = np.array([float(sweep_value(r)) for r in rows])
            for name, key, style in CURVES:
                ax.loglog(values, [max(getattr(r, key), 1e-16) for r in rows], style, label=name)
            guide = np.array([values.min(), values.max()])
            anchor = max(
                max(r.micro_L2, r.coefficient) if sweep != "H" else r.macro_L2 for r in rows
            )
            slope = SLOPES[sweep]
            ax.loglog(
                guide,
                anchor * (guide / guide.max()) ** slope,
                color="0.5",
                lw=0.8,
                label=f"slope {slope:g}",
            )
            ax.set_xticks(values, [f"{v:.3g}" for v in values], minor=False)
            ax.set_xticks([], minor=True)
        ax.set_xlabel(LABELS[sweep])
        ax.set_ylabel("relative L2 error, coefficient error")
        title = f"varying {LABELS[sweep]}"
        ax.set_title(title if sweep == "bc" else f"{title} ({rows[0].bc} windows)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle("HMM error budget: a = (1 + x1 x2)(2 + cos(2π x1/ε)), u0 = sin πx1 sin πx2")
    return save_figure(figure, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--H``, ``--delta-over-H``, ``--eps-over-delta``, ``--bc`` (the sweeps' values)."""
    for name, key in (
        ("--H", "H"),
        ("--delta-over-H", "delta_over_H"),
        ("--eps-over-H", "eps_over_H"),
        ("--eps-over-delta", "eps_over_delta"),
    ):
        parser.add_argument(
            name,
            type=float,
            nargs="*",
            default=list(SWEEPS[key]),
            dest=key,
            help=f"values of the {key} sweep (default {' '.join(f'{v:g}' for v in SWEEPS[key])}; "
            f"base {BASE.get(key, 'the base ε')}; none: skip the sweep)",
        )
    parser.add_argument(
        "--bc",
        nargs="*",
        default=list(SWEEPS["bc"]),
        choices=BOUNDARY_CONDITIONS,
        help="micro BCs of the BC sweep (default all; base periodic; none: skip)",
    )


def run(args: argparse.Namespace, comm: Any) -> StudyOutput:
    """The budget: the macro problems on ``comm``."""
    sweeps = {key: getattr(args, key) for key in SWEEPS if getattr(args, key)}
    result = budget_study(sweeps, comm=comm)
    return StudyOutput(
        "budget",
        result.to_dict(),
        summary(result),
        lambda folder: [draw(result, folder / "budget.png")],
    )

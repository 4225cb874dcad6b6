"""The 1D hands-on case: the HMM loop on an interval, where the harmonic mean emerges.

Macro problem: −(A u')' = f on (0, 1) with u(0) = u(1) = 0 and f = 1, on a DOLFINx interval
mesh (P2, two Gauss points per cell). The fine medium is a(x) = 2 + cos(2π x/ε). HMM does
not know A: at each macro quadrature point x_Q it takes the macro gradient G, solves the
micro window [x_Q − δ/2, x_Q + δ/2] with data u = G y at its ends (``micro.interval``:
Dirichlet, or periodic, the same problem in 1D), and returns the averaged flux ⟨a u'⟩ and
the tangent d⟨a u'⟩/dG. The macro Newton loop assembles those and solves.

In 1D the flux a u' is constant in the window, so the returned coefficient is the harmonic
mean of a over the window, δ / ∫ 1/a: for a whole number of periods that is exactly the
homogenized A = 1/⟨1/a⟩ = √3, and HMM reproduces the homogenized solution
u0 = x(1 − x)/(2√3) (P2 holds it exactly). The arithmetic mean ⟨a⟩ = 2 (what a naive
"average the coefficient" model uses) gives x(1 − x)/4, 13% too small everywhere, while the
fine-scale solution (DNS, −(a u')' = 1 integrated exactly with quadrature) oscillates around
u0. A window of a non-whole number of periods returns the harmonic mean over that window:
the resonance error, O(ε/δ).
"""

import argparse
import math
import sys
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.studies.output import StudyOutput, save_figure

SQRT3 = math.sqrt(3.0)
"""The homogenized coefficient of a = 2 + cos(2π y): 1/⟨1/a⟩ (references.md)."""
ARITHMETIC = 2.0
"""⟨a⟩, the arithmetic mean of a over a period: the wrong answer."""


def coefficient(x: npt.NDArray[np.float64], epsilon: float) -> npt.NDArray[np.float64]:
    """The fine medium a(x) = 2 + cos(2π x1/ε); ``x`` of shape ``(dim, n)``, returns ``(n,)``."""
    return np.asarray(2.0 + np.cos(2.0 * np.pi * np.asarray(x)[0] / epsilon), dtype=np.float64)


def window_harmonic_mean(center: float, delta: float, epsilon: float) -> float:
    """δ / ∫ 1/a over [center − δ/2, center + δ/2], by adaptive quadrature (scipy).

    An independent reference for the micro solve (no finite elements): in 1D the window's
    apparent coefficient is exactly this.
    """
    from scipy.integrate import quad

    lower = center - 0.5 * delta
    periods = max(1, math.ceil(delta / epsilon))
    integral, _ = quad(
        lambda s: 1.0 / float(coefficient(np.array([[s]]), epsilon)[0]),
        lower,
        lower + delta,
        limit=200 * periods,
        epsabs=1e-14,
        epsrel=1e-13,
    )
    return float(delta / integral)


def homogenized_solution(x: npt.NDArray[np.float64], A: float) -> npt.NDArray[np.float64]:
    """The solution x(1 − x)/(2A) of −(A u')' = 1, u(0) = u(1) = 0."""
    return np.asarray(x * (1.0 - x) / (2.0 * A), dtype=np.float64)


def fine_solution(x: npt.NDArray[np.float64], epsilon: float) -> npt.NDArray[np.float64]:
    """The fine-scale solution of −(a u')' = 1, u(0) = u(1) = 0, at ``x`` (shape ``(n,)``).

    a u' = C − x, so u(x) = ∫_0^x (C − s)/a(s) ds with C = ∫ s/a / ∫ 1/a (u(1) = 0); the
    integrals by quadrature, period by period.
    """
    from scipy.integrate import quad

    def a(s: float) -> float:
        return float(coefficient(np.array([[s]]), epsilon)[0])

    def integral(function: Any, lower: float, upper: float) -> float:
        if upper <= lower:
            return 0.0
        limit = 50 * max(1, math.ceil((upper - lower) / epsilon))
        return float(quad(function, lower, upper, limit=limit, epsabs=1e-13)[0])

    C = integral(lambda s: s / a(s), 0.0, 1.0) / integral(lambda s: 1.0 / a(s), 0.0, 1.0)
    order = np.argsort(x)
    values = np.zeros(len(x))
    total, last = 0.0, 0.0
    for i in order:
        total += integral(lambda s: (C - s) / a(s), last, float(x[i]))
        last = float(x[i])
        values[i] = total
    return values


class OneDResult(NamedTuple):
    """The 1D HMM run.

    Attributes:
        epsilon, delta: The period ε and the window δ.
        bc: The micro BC of the windows.
        points: Macro quadrature points, ``(n_points,)``.
        coefficients: The window coefficient returned at each point, ``(n_points,)``.
        references: δ / ∫ 1/a over each window (scipy quad), ``(n_points,)``.
        gradients: Macro gradients u'(x_Q) of the converged solution, ``(n_points,)``.
        fluxes: The averaged micro fluxes ⟨a u'⟩ at the converged state, ``(n_points,)``.
        residuals: Macro residual norms, one per Newton iteration.
        nodes, u: The macro solution at the mesh's dofs (sorted), ``(n_dofs,)`` each.
        error_homogenized: max |u_HMM − u0| at the dofs over max |u0| (u0 with A = √3).
        error_arithmetic: max |u_arith − u0| over max |u0| (the arithmetic-mean model).
        micro_solves: Windows solved.
    """

    epsilon: float
    delta: float
    bc: str
    points: npt.NDArray[np.float64]
    coefficients: npt.NDArray[np.float64]
    references: npt.NDArray[np.float64]
    gradients: npt.NDArray[np.float64]
    fluxes: npt.NDArray[np.float64]
    residuals: list[float]
    nodes: npt.NDArray[np.float64]
    u: npt.NDArray[np.float64]
    error_homogenized: float
    error_arithmetic: float
    micro_solves: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers."""
        return {
            key: value.tolist() if isinstance(value, np.ndarray) else value
            for key, value in self._asdict().items()
        }


MAX_MACRO_CELLS = 10_000
"""Upper bound of ``--macro-cells`` (every macro point solves its own window)."""


def check_oned(macro_cells: int, epsilon: float, delta: float, cells_per_epsilon: int) -> None:
    """Refuse bad sizes (InputError naming the option)."""
    from hmm_fenics.rve.medium import check_window

    if not (isinstance(macro_cells, int) and 1 <= macro_cells <= MAX_MACRO_CELLS):
        raise InputError(
            f"--macro-cells must be a whole number in [1, {MAX_MACRO_CELLS}], got {macro_cells!r}."
        )
    for name, value in (("--epsilon", epsilon), ("--delta", delta)):
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a positive length, got {value!r}.")
    if not (isinstance(cells_per_epsilon, int) and cells_per_epsilon >= 1):
        raise InputError(
            f"--cells-per-epsilon must be a positive whole number, got {cells_per_epsilon!r}."
        )
    cells = window_cells(delta, epsilon, cells_per_epsilon)
    check_window(delta, cells, 1, "--delta", "lower --cells-per-epsilon or --delta")


def window_cells(delta: float, epsilon: float, cells_per_epsilon: int) -> int:
    """Elements of a window of δ with ``cells_per_epsilon`` per period (at least one)."""
    cells = delta / epsilon * cells_per_epsilon
    if not math.isfinite(cells):  # δ/ε overflows: as many as a float holds
        cells = sys.float_info.max
    return max(1, math.ceil(cells - 1e-9))


def oned_hmm(
    macro_cells: int = 8,
    epsilon: float = 0.05,
    delta: float = 0.1,
    bc: str = "periodic",
    cells_per_epsilon: int = 64,
    micro_degree: int = 3,
) -> OneDResult:
    """Run the 1D HMM loop (on ``MPI.COMM_SELF``: a 1D problem is small).

    Args:
        macro_cells: Cells of the macro mesh of (0, 1).
        epsilon: The period ε of a.
        delta: The window δ (a whole number of periods: exact; otherwise resonance).
        bc: ``periodic`` or ``dirichlet`` (the same problem in 1D, ``micro.interval``).
        cells_per_epsilon: Micro elements per period (P3: the window coefficient to ~1e-11
            at 64).
        micro_degree: Lagrange degree of the micro windows.

    Raises:
        InputError: bad sizes or BC.
    """
    from mpi4py import MPI
    from petsc4py import PETSc

    import basix
    import basix.ufl
    import ufl
    from dolfinx import fem, mesh
    from dolfinx.fem import petsc as fem_petsc

    from hmm_fenics.micro.interval import interval_window
    from hmm_fenics.rve.medium import CoefficientMedium

    check_oned(macro_cells, epsilon, delta, cells_per_epsilon)
    medium = CoefficientMedium(coefficient, epsilon)
    cells = window_cells(delta, epsilon, cells_per_epsilon)
    domain = mesh.create_interval(MPI.COMM_SELF, macro_cells, [0.0, 1.0])
    V = fem.functionspace(domain, ("Lagrange", 2))
    element = basix.ufl.quadrature_element(domain.basix_cell(), value_shape=(), degree=2)
    Q = fem.functionspace(domain, element)
    flux, tangent = fem.Function(Q), fem.Function(Q)
    dxq = ufl.Measure("dx", domain=domain, metadata={"quadrature_degree": 2})
    u, v, du = fem.Function(V), ufl.TestFunction(V), ufl.TrialFunction(V)
    residual = fem.form(flux * v.dx(0) * dxq - 1.0 * v * ufl.dx)
    jacobian = fem.form(tangent * du.dx(0) * v.dx(0) * dxq)
    n_cells = domain.topology.index_map(1).size_local
    cell_ids = np.arange(n_cells, dtype=np.int32)
    dofs = Q.dofmap.list[:n_cells].reshape(-1)  # cell by cell, as Expression.eval orders points
    points = Q.tabulate_dof_coordinates()[dofs, 0]
    reference_points, _ = basix.make_quadrature(basix.CellType.interval, 2)
    gradient = fem.Expression(u.dx(0), np.asarray(reference_points))
    ends = mesh.locate_entities_boundary(
        domain, 0, lambda x: np.isclose(x[0], 0) | np.isclose(x[0], 1)
    )
    bcs = [fem.dirichletbc(0.0, fem.locate_dofs_topological(V, 0, ends), V)]

    # the micro answers: the window at x_Q returns its coefficient (flux per unit gradient);
    # linear micro physics, so one solve per point serves every Newton iteration
    windows = [interval_window(medium, float(x), delta, cells, bc, micro_degree) for x in points]
    A = np.array([w.coefficient for w in windows])
    references = np.array([window_harmonic_mean(float(x), delta, epsilon) for x in points])

    residuals: list[float] = []
    solver = PETSc.KSP().create(PETSc.COMM_SELF)
    solver.setType("preonly")
    solver.getPC().setType("lu")
    for _ in range(5):
        G = np.asarray(gradient.eval(domain, cell_ids), dtype=np.float64).reshape(-1)
        flux.x.array[dofs] = A * G  # restriction: the averaged micro flux ⟨a u'⟩
        tangent.x.array[dofs] = A
        b = fem_petsc.assemble_vector(residual)
        fem_petsc.apply_lifting(b, [jacobian], [bcs], x0=[u.x.petsc_vec], alpha=-1.0)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fem_petsc.set_bc(b, bcs, u.x.petsc_vec, -1.0)
        residuals.append(float(b.norm()))  # type: ignore[arg-type]
        if len(residuals) > 1 and residuals[-1] <= 1e-12 * max(residuals[0], 1.0):
            b.destroy()
            break
        K = fem_petsc.assemble_matrix(jacobian, bcs=bcs)
        K.assemble()
        solver.setOperators(K)
        step = b.duplicate()
        b.scale(-1.0)
        solver.solve(b, step)
        u.x.petsc_vec.axpy(1.0, step)
        u.x.scatter_forward()
        for vec in (b, step):
            vec.destroy()
        K.destroy()
    solver.destroy()
    G = np.asarray(gradient.eval(domain, cell_ids), dtype=np.float64).reshape(-1)
    order = np.argsort(V.tabulate_dof_coordinates()[:, 0])
    nodes = V.tabulate_dof_coordinates()[order, 0]
    values = np.asarray(u.x.array[order], dtype=np.float64)
    u0 = homogenized_solution(nodes, SQRT3)
    scale = float(np.abs(u0).max())
    return OneDResult(
        epsilon,
        delta,
        bc,
        points,
        A,
        references,
        G,
        A * G,
        residuals,
        nodes,
        values,
        float(np.abs(values - u0).max()) / scale,
        float(np.abs(homogenized_solution(nodes, ARITHMETIC) - u0).max()) / scale,
        len(windows),
    )


def summary(result: OneDResult) -> str:
    """A few lines for the terminal."""
    worst = float(np.abs(result.coefficients - result.references).max())
    return "\n".join(
        [
            f"1D HMM: ε = {result.epsilon:g}, δ = {result.delta:g} (δ/ε = "
            f"{result.delta / result.epsilon:g}), {result.bc} windows, "
            f"{result.micro_solves} micro solves, macro residuals "
            + ", ".join(f"{r:.1e}" for r in result.residuals),
            f"  window coefficients {result.coefficients.min():.10f} … "
            f"{result.coefficients.max():.10f} (√3 = {SQRT3:.10f}); max |A − δ/∫1/a| = {worst:.1e}",
            f"  max |u_HMM − u0|/max|u0| = {result.error_homogenized:.1e}; "
            f"arithmetic-mean model: {result.error_arithmetic:.1%} off",
        ]
    )


def draw(result: OneDResult, path: Any) -> Any:
    """The fine solution, HMM, the homogenized and the arithmetic-mean solutions (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.linspace(0.0, 1.0, 801)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(
        x,
        fine_solution(x, result.epsilon),
        color="0.6",
        lw=1.0,
        label=f"fine scale (ε = {result.epsilon:g})",
    )
    left.plot(
        x, homogenized_solution(x, SQRT3), "k-", lw=1.5, label="homogenized, A = √3 (harmonic mean)"
    )
    left.plot(
        x, homogenized_solution(x, ARITHMETIC), "r--", lw=1.5, label="arithmetic mean, A = ⟨a⟩ = 2"
    )
    left.plot(
        result.nodes,
        result.u,
        "o",
        ms=4,
        color="tab:blue",
        label=f"HMM ({result.bc} windows, δ = {result.delta:g})",
    )
    left.set_xlabel("x")
    left.set_ylabel("u(x)")
    left.set_title("−(a u')' = 1: HMM finds the harmonic mean")
    left.legend(fontsize=8)
    right.plot(
        result.points, result.coefficients, "o", color="tab:blue", label="HMM window coefficient"
    )
    right.axhline(SQRT3, color="k", label="√3 (harmonic mean)")
    right.axhline(ARITHMETIC, color="r", ls="--", label="2 (arithmetic mean)")
    right.set_xlabel("macro quadrature point x_Q")
    right.set_ylabel("apparent coefficient A(x_Q)")
    right.set_ylim(min(1.6, float(result.coefficients.min()) - 0.02), 2.1)
    right.legend(fontsize=8)
    return save_figure(figure, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--epsilon``, ``--delta``, ``--bc``, ``--macro-cells``, ``--cells-per-epsilon``."""
    parser.add_argument("--epsilon", type=float, default=0.05, help="period ε of a (default 0.05)")
    parser.add_argument(
        "--delta", type=float, default=0.1, help="micro window δ (default 0.1: two periods)"
    )
    parser.add_argument(
        "--bc",
        choices=("periodic", "dirichlet"),
        default="periodic",
        help="micro BC of the windows",
    )
    parser.add_argument("--macro-cells", type=int, default=8, help="macro cells (default 8)")
    parser.add_argument(
        "--cells-per-epsilon", type=int, default=64, help="micro P3 cells per period (default 64)"
    )


def run(args: argparse.Namespace, comm: Any) -> StudyOutput:
    """The 1D study (every rank runs it: it is small)."""
    result = oned_hmm(args.macro_cells, args.epsilon, args.delta, args.bc, args.cells_per_epsilon)
    return StudyOutput(
        "oned",
        result.to_dict(),
        summary(result),
        lambda folder: [draw(result, folder / "oned.png")],
    )

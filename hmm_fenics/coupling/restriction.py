"""Restriction: explicit volume averages of micro fields, and the Hill–Mandel check.

``CellProblem`` returns averages through an algebraic identity (no extra assembly); here the
same quantities are integrated from the actual micro field u = G·(y − O) + w, which checks
the solve, the periodic map and the identity at once.
"""

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.micro.cell_problem import CellProblem
from hmm_fenics.rve.mesh import cell_volumes as _cell_volumes


class CellAverages(NamedTuple):
    """Volume averages over the cell Y of one micro solution.

    Attributes:
        gradient: ⟨ε⟩ (or ⟨∇u⟩), shape ``(n_components,)``, Mandel for elasticity.
        flux: ⟨σ⟩ (or ⟨q⟩), same layout.
        energy: ⟨σ : ε⟩ (or ⟨q · ∇u⟩), a scalar.
    """

    gradient: npt.NDArray[np.float64]
    flux: npt.NDArray[np.float64]
    energy: float

    def hill_mandel_residual(self, macro: npt.NDArray[np.float64]) -> float:
        """|⟨σ:ε⟩ − ⟨σ⟩:G| / |⟨σ:ε⟩| — zero up to round-off for admissible BCs.

        G is the macro gradient, which equals ⟨ε⟩ over the whole cell; in a porous cell the
        strain integrated over the solid alone misses the pore boundaries, so G is used.
        """
        return abs(self.energy - float(self.flux @ macro)) / abs(self.energy)


class VolumeAverager:
    """Integrates ⟨ε⟩, ⟨σ⟩ and ⟨σ:ε⟩ of a cell's micro field; one compiled form for all three.

    The integrand vector [Mandel(σ), Mandel(ε), σ:ε] is tested against piecewise constants,
    so one assembly gives every average.
    """

    def __init__(self, cell: CellProblem) -> None:
        import basix.ufl
        import ufl
        from dolfinx import fem

        physics = cell.physics
        mesh = cell.rve.mesh
        n = physics.n_components
        self.cell = cell
        self.G = fem.Constant(mesh, np.zeros(n))
        self.w = fem.Function(cell.V)
        eps = physics.from_mandel(self.G) + physics.gradient(self.w)
        element = basix.ufl.element("DG", mesh.basix_cell(), 0, shape=(2 * n + 1,))
        q = ufl.TestFunction(fem.functionspace(mesh, element))
        terms = []
        for tag, law in cell.laws.items():
            sigma = law(eps)
            integrand = ufl.as_vector(
                [*physics.to_mandel(sigma), *physics.to_mandel(eps), ufl.inner(sigma, eps)]
            )
            terms.append(ufl.inner(integrand, q) * cell.dx(tag))
        self.form = fem.form(sum(terms[1:], start=terms[0]))
        self._n = n

    def __call__(self, gradient: npt.NDArray[np.float64]) -> CellAverages:
        """Averages of the micro solution for the macro gradient ``gradient`` (shape ``(n,)``)."""
        from dolfinx import fem

        G = np.asarray(gradient, dtype=np.float64).reshape(self._n)
        self.G.value[:] = G
        self.w.x.array[:] = self.cell.fluctuation(G).x.array
        per_cell = fem.assemble_vector(self.form).array.reshape(-1, 2 * self._n + 1)
        total = per_cell.sum(axis=0) / self.cell.rve.volume
        return CellAverages(total[self._n : 2 * self._n], total[: self._n], float(total[-1]))


class AverageChecks(NamedTuple):
    """How well the integrated averages agree with theory, worst case over the gradients.

    Attributes:
        hill_mandel_residual: max |⟨σ:ε⟩ − ⟨σ⟩:G| / |⟨σ:ε⟩|.
        gradient_error: max ‖⟨ε⟩ − G‖ / ‖G‖ (zero for periodic fluctuations); NaN for a
            porous cell, whose ⟨ε⟩ would need the pore boundaries.
        flux_mismatch: max ‖⟨σ⟩_integrated − ⟨σ⟩_algebraic‖ / ‖⟨σ⟩‖.
    """

    hill_mandel_residual: float
    gradient_error: float
    flux_mismatch: float


def check_averages(
    cell: CellProblem, gradients: npt.NDArray[np.float64] | None = None
) -> AverageChecks:
    """Integrate the micro fields of ``gradients`` (default: the unit gradients) and compare.

    Args:
        cell: A factored cell problem.
        gradients: Macro gradients, shape ``(n_points, n_components)``.
    """
    averager = VolumeAverager(cell)
    cases = np.eye(cell.physics.n_components) if gradients is None else np.atleast_2d(gradients)
    hill_mandel = gradient_error = flux_mismatch = 0.0
    for G in cases:
        avg = averager(G)
        algebraic = cell.flux_tensor @ G  # what a query returns, without solving again
        scale = max(float(np.linalg.norm(avg.flux)), np.finfo(float).tiny)
        hill_mandel = max(hill_mandel, avg.hill_mandel_residual(G))
        gradient_error = max(
            gradient_error, float(np.linalg.norm(avg.gradient - G) / np.linalg.norm(G))
        )
        flux_mismatch = max(flux_mismatch, float(np.linalg.norm(avg.flux - algebraic)) / scale)
    if abs(cell.rve.volume - float(_cell_volumes(cell.rve.mesh).sum())) > 1e-12 * cell.rve.volume:
        gradient_error = float("nan")  # porous: see AverageChecks
    return AverageChecks(hill_mandel, gradient_error, flux_mismatch)


def volume_average(cell: CellProblem, gradient: npt.NDArray[np.float64]) -> CellAverages:
    """⟨ε⟩, ⟨σ⟩ and ⟨σ:ε⟩ of the micro solution for one macro gradient, integrated."""
    return VolumeAverager(cell)(gradient)

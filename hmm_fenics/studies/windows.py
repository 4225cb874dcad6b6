"""Windows of a coefficient medium under any micro boundary condition, for the error studies.

``coupling.sampling.CoefficientWindows`` solves the window x + δ·(−½, ½)^d of a medium a(x)
as a periodic cell. The studies of the resonance and of the error budget need every micro
boundary condition (``micro.boundary``): ``BoundaryWindows`` builds the same structured
window (``rve.medium.window_mesh``, a sampled at its quadrature points) and solves it as a
``CellProblem`` with ``bc`` = periodic, dirichlet, neumann or oversampling. Oversampling
solves the window of ``ratio``·δ around the point (an odd ratio: the inner δ-box is a union
of mesh cells, conforming) with affine Dirichlet data and averages over the inner δ-box.

It answers ``window_at(x)`` like ``CoefficientWindows``, so ``coupling.sampling.SampledModel``
runs it in FE².
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.materials import Conductivity
from hmm_fenics.micro.boundary import check_bc
from hmm_fenics.micro.cell_problem import CellProblem
from hmm_fenics.physics import Diffusion
from hmm_fenics.rve.medium import (
    CoefficientMedium,
    as_medium,
    check_window,
    quadrature_space,
    sample,
    window_mesh,
    window_origin,
    window_rve,
)
from hmm_fenics.rve.tiling import Window, check_ratio

DEFAULT_RATIO = 3
"""Oversampling: the solved window is this many δ per axis, the averaged one the middle."""


class SolvedWindow(NamedTuple):
    """A window's cell, as ``coupling.sampling.SampledModel`` reads it.

    Attributes:
        cell: The factored cell problem (its ``effective_tensor`` is the apparent tensor).
        sigma33: Always None (diffusion: no out-of-plane stress).
    """

    cell: CellProblem
    sigma33: None


class BoundaryWindows:
    """Windows of a conductivity medium k(x) = a(x)·k under the micro BC ``bc``.

    Args:
        dim: 2 or 3 (1D windows: ``micro.interval``).
        medium: a(x) (a ``CoefficientMedium`` or a callable a(x) / a(x, ε)).
        delta: Window edge δ.
        cells: Elements per direction of the δ-window.
        bc: ``periodic``, ``dirichlet``, ``neumann`` or ``oversampling``.
        ratio: Oversampling only: the solved window is ``ratio``·δ (odd whole number).
        degree: Lagrange degree of the micro field.
        conductivity: The constant k that a(x) scales.
        petsc_options: ``hmm_micro_`` options.
        epsilon: ε passed to a callable a(x, ε).

    Raises:
        InputError: a bad size, BC or ratio (naming its key).
    """

    def __init__(
        self,
        dim: int,
        medium: CoefficientMedium | Callable[..., Any],
        delta: float,
        cells: int,
        bc: str = "periodic",
        ratio: int = DEFAULT_RATIO,
        degree: int = 2,
        conductivity: float = 1.0,
        petsc_options: Mapping[str, Any] | None = None,
        epsilon: float | None = None,
    ) -> None:
        if dim not in (2, 3):
            raise InputError(f"windows of a coefficient medium here are 2D or 3D, got dim = {dim}.")
        self.bc = check_bc(bc)
        self.ratio = check_ratio(ratio) if bc == "oversampling" else 1
        check_window(delta, cells * self.ratio, dim)
        self.physics = Diffusion(dim)
        self.medium = as_medium(medium, epsilon)
        self.delta, self.cells, self.degree = float(delta), int(cells), degree
        self.petsc_options = dict(petsc_options or {})
        self.size = self.ratio * self.delta
        self.mesh = window_mesh(dim, self.size, self.cells * self.ratio)
        self.space = quadrature_space(self.mesh, 2 * degree + 2)
        self._law = Conductivity(conductivity).law(self.mesh, self.physics)
        self._window: Window | None = None
        if bc == "oversampling":
            self._window = self._inner_box(dim)

    def _inner_box(self, dim: int) -> Window:
        """The middle δ-box of the ratio·δ window: cells whose midpoint lies inside it."""
        from dolfinx import mesh as dmesh

        lower = np.full(dim, 0.5 * (self.ratio - 1) * self.delta)
        upper = lower + self.delta
        n_cells = self.mesh.topology.index_map(dim).size_local
        middle = dmesh.compute_midpoints(self.mesh, dim, np.arange(n_cells, dtype=np.int32))
        inner = np.all((middle[:, :dim] > lower) & (middle[:, :dim] < upper), axis=1)
        rve = window_rve(self.mesh, self.size, "oversampling window")
        return Window(rve, inner, lower, upper, self.ratio)

    def window_at(self, x: npt.NDArray[np.float64]) -> SolvedWindow:
        """The solved window centred at macro point ``x`` (shape ``(dim,)`` or longer)."""
        dim = self.physics.dim
        a = sample(self.medium, self.space, window_origin(x, self.size, dim))
        law = self._law
        where = ", ".join(f"{c:.6g}" for c in np.asarray(x).reshape(-1)[:dim])
        rve = window_rve(self.mesh, self.size, f"{self.bc} window at ({where})")
        cell = CellProblem(
            self.physics,
            rve,
            {1: lambda g: a * law(g)},
            self.degree,
            self.petsc_options,
            self.bc,
            self._window,
        )
        return SolvedWindow(cell, None)

    def tensor_at(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The apparent conductivity of the window at ``x``, shape ``(dim, dim)``."""
        return np.asarray(self.window_at(x).cell.effective_tensor, dtype=np.float64).copy()

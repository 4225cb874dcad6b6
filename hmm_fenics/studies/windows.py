"""Windows of a coefficient medium under every micro boundary condition, oversampling included.

``coupling.sampling.CoefficientWindows`` solves the window x + δ·(−½, ½)^d of a medium a(x)
under the periodic, Dirichlet or Neumann condition. The studies of the resonance and of the
error budget also need oversampling: ``OversampledWindows`` meshes the window of
``ratio``·δ around the point (structured, an odd ratio, so the middle δ-box is a union of
mesh cells), samples a(x) on it, solves it with affine Dirichlet data and averages over the
middle δ-box (``micro.core``'s oversampling path). ``boundary_windows`` picks the builder
for a BC; both answer ``window_at(x)``, so ``coupling.sampling.SampledModel`` runs them in
FE².
"""

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from hmm_fenics.coupling.sampling import CoefficientWindows, Window
from hmm_fenics.errors import InputError
from hmm_fenics.materials import Conductivity
from hmm_fenics.micro.boundary import check_bc
from hmm_fenics.micro.cell_problem import CellProblem
from hmm_fenics.physics import Diffusion
from hmm_fenics.rve import tiling
from hmm_fenics.rve.medium import CoefficientMedium, window_rve

DEFAULT_RATIO = 3
"""Oversampling: the solved window is this many δ per axis, the averaged one the middle."""


class OversampledWindows(CoefficientWindows):
    """Oversampled windows of a conductivity medium k(x) = a(x)·k.

    The mesh, the sampled coefficient and ``delta`` are those of the outer window
    (``ratio``·δ, ``ratio``·``cells`` elements per direction); ``inner_delta`` is δ.

    Args:
        physics: ``Diffusion`` (2D or 3D).
        medium: a(x) (a ``CoefficientMedium`` or a callable a(x) / a(x, ε)).
        delta: The averaged window's edge δ.
        cells: Elements per direction of the δ-window.
        material: The ``Conductivity`` that a(x) scales.
        ratio: The solved window is ``ratio``·δ (an odd whole number).
        degree, petsc_options, quadrature_degree, epsilon: As ``CoefficientWindows``.

    Raises:
        InputError: elasticity (its plane-strain σ33 average is not built here), a bad ratio
            (naming ``micro.oversampling``) or what ``CoefficientWindows`` refuses.
    """

    def __init__(
        self,
        physics: Diffusion,
        medium: CoefficientMedium | Callable[..., Any],
        delta: float,
        cells: int,
        material: Conductivity,
        ratio: int = DEFAULT_RATIO,
        degree: int = 1,
        petsc_options: Mapping[str, Any] | None = None,
        quadrature_degree: int | None = None,
        epsilon: float | None = None,
    ) -> None:
        if not isinstance(physics, Diffusion):
            raise InputError(
                'micro.bc = "oversampling" of a coefficient medium is built for diffusion only, '
                f"got {physics.name}."
            )
        k = tiling.check_ratio(ratio)
        super().__init__(
            physics,
            medium,
            k * delta,
            k * cells,
            material,
            degree,
            petsc_options,
            quadrature_degree,
            epsilon,
            bc="dirichlet",
        )
        self.bc, self.ratio, self.inner_delta = "oversampling", k, float(delta)
        dim = physics.dim
        lower = np.full(dim, 0.5 * (k - 1) * delta)
        upper = lower + delta
        self._box = tiling.Window(
            window_rve(self.mesh, self.delta, "oversampling window"),
            inner_cells(self.mesh, lower, upper),
            lower,
            upper,
            k,
        )

    def window_at(self, x: npt.NDArray[np.float64]) -> Window:
        """The solved window centred at macro point ``x``, averaged over its middle δ-box."""
        a = self.coefficient_at(x)
        law = self._law
        cell = CellProblem(
            self.physics,
            self._box.rve,
            {1: lambda g: a * law(g)},
            self.degree,
            self.petsc_options,
            "oversampling",
            self._box,
        )
        return Window(cell, None)


def inner_cells(
    mesh: Any, lower: npt.NDArray[np.float64], upper: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Whether each local cell's midpoint lies inside the box [lower, upper], ``(n_cells,)``."""
    from dolfinx import mesh as dmesh

    dim = mesh.topology.dim
    n_cells = mesh.topology.index_map(dim).size_local
    middle = dmesh.compute_midpoints(mesh, dim, np.arange(n_cells, dtype=np.int32))[:, :dim]
    return np.asarray(np.all((middle > lower) & (middle < upper), axis=1))


def boundary_windows(
    dim: int,
    medium: CoefficientMedium | Callable[..., Any],
    delta: float,
    cells: int,
    bc: str = "periodic",
    ratio: int = DEFAULT_RATIO,
    degree: int = 2,
    epsilon: float | None = None,
) -> CoefficientWindows:
    """Windows of the conductivity a(x) (k = 1) under ``bc``, any of the four.

    Args:
        dim: 2 or 3.
        medium: a(x) or a(x, ε).
        delta: Window edge δ (the averaged one for oversampling).
        cells: Elements per direction of the δ-window.
        bc: ``periodic``, ``dirichlet``, ``neumann`` or ``oversampling``.
        ratio: Oversampling only: the solved window is ``ratio``·δ.
        degree: Lagrange degree of the micro field.
        epsilon: ε passed to a(x, ε).

    Raises:
        InputError: naming the key of a bad BC, ratio or size.
    """
    physics, k = Diffusion(dim), Conductivity(1.0)
    if check_bc(bc) == "oversampling":
        return OversampledWindows(physics, medium, delta, cells, k, ratio, degree, epsilon=epsilon)
    return CoefficientWindows(physics, medium, delta, cells, k, degree, epsilon=epsilon, bc=bc)

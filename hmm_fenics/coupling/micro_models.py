"""Micro models: what answers a macro quadrature point (flux and tangent for a gradient).

One protocol, three linear implementations that share the cell-problem machinery:
``EffectiveModel`` (the fast path: one effective tensor for the whole part),
``CellModel`` (a micro solve per point with the factor reused, batched), and
``GradedModel`` (the RVE depends on the macro position; one cached cell per distinct RVE).
"""

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from hmm_fenics.materials import Material
from hmm_fenics.micro.cell_problem import CellProblem, MicroResponse, cell_problem
from hmm_fenics.physics import Physics
from hmm_fenics.rve.mesh import build_rve
from hmm_fenics.rve.spec import RVESpec


class MicroModel(Protocol):
    """Answers macro quadrature points."""

    def respond(
        self, gradients: npt.NDArray[np.float64], points: npt.NDArray[np.float64]
    ) -> MicroResponse:
        """Flux ``(n, c)`` and tangent ``(n, c, c)`` for gradients ``(n, c)`` at points ``(n, gdim)``."""
        ...


class EffectiveModel:
    """The fast path for a linear template: flux = C_hom G with one tensor everywhere."""

    def __init__(self, tensor: npt.NDArray[np.float64]) -> None:
        self.tensor = np.asarray(tensor, dtype=np.float64)

    def respond(
        self, gradients: npt.NDArray[np.float64], points: npt.NDArray[np.float64]
    ) -> MicroResponse:
        """C_hom G at every point; the tangent is C_hom."""
        n = len(gradients)
        return MicroResponse(
            gradients @ self.tensor.T, np.broadcast_to(self.tensor, (n, *self.tensor.shape))
        )


class CellModel:
    """A micro solve per quadrature point on one template, the factorization reused.

    All points go to the cell as one batch (one MatMatSolve).
    """

    def __init__(self, cell: CellProblem) -> None:
        self.cell = cell

    def respond(
        self, gradients: npt.NDArray[np.float64], points: npt.NDArray[np.float64]
    ) -> MicroResponse:
        """Lift, solve and average every point's gradient."""
        if len(gradients) == 0:
            n = self.cell.physics.n_components
            return MicroResponse(np.zeros((0, n)), np.zeros((0, n, n)))
        return self.cell.query(gradients)


class GradedModel:
    """Spatially varying microstructure: ``rve_at(x)`` gives the RVE spec at a macro point.

    Cell problems are built once per distinct spec (specs are hashable) and reused; points
    sharing a spec are answered in one batch. Round the parameters in ``rve_at`` (e.g. a
    fibre fraction to 0.01) to bound the number of templates.
    """

    def __init__(
        self,
        rve_at: Callable[[npt.NDArray[np.float64]], RVESpec],
        physics: Physics,
        materials: Mapping[str, Material],
        degree: int = 1,
        petsc_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.rve_at, self.physics, self.materials = rve_at, physics, materials
        self.degree, self.petsc_options = degree, petsc_options
        self.cells: dict[RVESpec, CellProblem] = {}

    def cell(self, spec: RVESpec) -> CellProblem:
        """The cached cell problem of ``spec``."""
        if spec not in self.cells:
            self.cells[spec] = cell_problem(
                self.physics, build_rve(spec), self.materials, self.degree, self.petsc_options
            )
        return self.cells[spec]

    def respond(
        self, gradients: npt.NDArray[np.float64], points: npt.NDArray[np.float64]
    ) -> MicroResponse:
        """Group the points by their RVE and query each template once."""
        n = self.physics.n_components
        flux = np.zeros((len(gradients), n))
        tangent = np.zeros((len(gradients), n, n))
        specs = [self.rve_at(x) for x in points]
        groups: dict[RVESpec, list[int]] = {}
        for i, spec in enumerate(specs):
            groups.setdefault(spec, []).append(i)
        for spec, members in groups.items():
            response = self.cell(spec).query(gradients[members])
            flux[members], tangent[members] = response.flux, response.tangent
        return MicroResponse(flux, tangent)

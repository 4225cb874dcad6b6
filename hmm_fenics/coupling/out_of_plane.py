"""The out-of-plane stress ⟨σ33⟩ of plane-strain cells, for the 3×3 stress written for viewing.

In plane strain (ε33 = 0) the in-plane problem does not involve σ33, but the stress is not
plane: an isotropic phase carries σ33 = λ tr ε = ν (σ11 + σ22). A von Mises stress computed
from σ33 = 0 is wrong, so the averaged σ33 of every macro point is computed here:

- a linear cell: ⟨σ33⟩ is linear in the macro strain G, ⟨σ33⟩ = r · G, with the row
  r_j = ⟨λ_phase tr(E_j + ε(w_j))⟩ from the unit fluctuations w_j, computed once per cell;
- a nonlinear cell: the average of the law's σ33 (the 3D law at ε33 = 0) over the converged
  fluctuation of each point.

Plane stress (σ33 = 0), 3D and diffusion have nothing to add.
"""

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from hmm_fenics.coupling.micro_models import (
    BalancedModel,
    CellModel,
    EffectiveModel,
    GradedModel,
    MicroModel,
)
from hmm_fenics.materials import IsotropicElastic, Material, PowerLawElastic
from hmm_fenics.micro.cell_problem import CellProblem
from hmm_fenics.micro.history_model import HistoryCellModel
from hmm_fenics.micro.nonlinear import NonlinearCellModel, NonlinearCellProblem
from hmm_fenics.parallel.collective import agree
from hmm_fenics.physics import Elasticity, Physics


def has_out_of_plane_stress(physics: Physics) -> bool:
    """Whether ``physics`` has a σ33 that its Mandel stress does not hold (2D plane strain)."""
    return isinstance(physics, Elasticity) and physics.dim == 2 and physics.plane == "strain"


def out_of_plane_law(material: Material, physics: Elasticity) -> Any:
    """σ33(ε) of a phase in plane strain, a function of the in-plane UFL strain (2×2).

    Isotropic: λ tr ε. Power law: the 3D law at ε33 = 0, (λ + 2μ/3) tr ε − (2/3) μ(ε_eq) tr ε,
    with ε_eq from the 3D deviator (dev ε : dev ε = ε : ε − (tr ε)²/3).

    Raises:
        TypeError: a material without a plane-strain σ33 here.
    """
    import ufl

    if not isinstance(material, IsotropicElastic | PowerLawElastic):
        raise TypeError(f"no plane-strain σ33 for {type(material).__name__}.")
    lmbda, mu = Elasticity(3).lame(material.E, material.nu)  # plane strain: the 3D moduli
    if isinstance(material, IsotropicElastic):
        return lambda eps: lmbda * ufl.tr(eps)
    eps0, n = material.eps0, material.n

    def sigma33(eps: Any) -> Any:
        trace = ufl.tr(eps)
        eq2 = 2.0 / 3.0 * (ufl.inner(eps, eps) - trace**2 / 3.0)
        secant = mu * (1 + eq2 / eps0**2) ** ((n - 1) / 2)
        return (lmbda + 2 * mu / 3) * trace - 2.0 / 3.0 * secant * trace

    return sigma33


class _CellAverage:
    """⟨σ33⟩ over a cell for a macro gradient and a fluctuation, the form compiled once."""

    def __init__(
        self, cell: CellProblem | NonlinearCellProblem, materials: Mapping[str, Material]
    ) -> None:
        import ufl
        from dolfinx import fem

        physics, rve = cell.physics, cell.rve
        assert isinstance(physics, Elasticity)
        mesh = rve.mesh
        self.G = fem.Constant(mesh, np.zeros(physics.n_components))
        self.w = fem.Function(cell.V)
        dx = ufl.Measure("dx", domain=mesh, subdomain_data=rve.cell_tags)
        eps = physics.from_mandel(self.G) + physics.gradient(self.w)
        per_volume = 1.0 / cell.volume  # over the averaging domain (a window's inner cell)
        if cell.indicator is not None:
            per_volume = per_volume * cell.indicator
        integrand = sum(
            (
                per_volume * out_of_plane_law(materials[name], physics)(eps) * dx(tag)
                for name, tag in rve.phases.items()
            ),
            start=ufl.as_ufl(0) * dx,
        )
        self.form = fem.form(integrand)

    def __call__(
        self, gradient: npt.NDArray[np.float64], fluctuation: npt.NDArray[np.float64]
    ) -> float:
        """⟨σ33⟩ for one gradient (Mandel) and its full fluctuation dof vector."""
        from dolfinx import fem

        self.G.value[:] = gradient
        self.w.x.array[:] = fluctuation
        return float(np.real(fem.assemble_scalar(self.form)))


class OutOfPlaneStress:
    """⟨σ33⟩ at macro points from the micro model that answered them (plane strain).

    Args:
        model: The micro model of the last macro solve.
        materials: Phase name → material (the model's).
        template: The template cell of an ``EffectiveModel`` (it keeps its tensor only).
    """

    def __init__(
        self, model: MicroModel, materials: Mapping[str, Material], template: Any = None
    ) -> None:
        self.model, self.materials, self.template = model, materials, template
        self._rows: dict[int, tuple[CellProblem, npt.NDArray[np.float64]]] = {}
        self._averages: dict[int, _CellAverage] = {}

    def row(self, cell: CellProblem) -> npt.NDArray[np.float64]:
        """The row r with ⟨σ33⟩ = r · G of a linear cell, shape ``(n,)``; computed once per cell."""
        if id(cell) not in self._rows:
            average = _CellAverage(cell, self.materials)
            unit = np.eye(cell.physics.n_components)
            r = [average(e, cell.fluctuation(e).x.array) for e in unit]
            self._rows[id(cell)] = (cell, np.array(r))  # the cell keeps its id unique
        return self._rows[id(cell)][1]

    def __call__(
        self, gradients: npt.NDArray[np.float64], points: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """⟨σ33⟩ of the owned points, shape ``(n_points,)``, for the gradients last answered.

        Collective when the model is a ``BalancedModel`` (the points go where they were
        computed, whose nonlinear states are there).
        """
        return self._of(self.model, gradients, points)

    def _of(
        self,
        model: MicroModel,
        gradients: npt.NDArray[np.float64],
        points: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        if isinstance(model, BalancedModel):
            assert model.exchange is not None, "σ33 is asked for before any micro solve"
            G, X = model.exchange.forward(gradients), model.exchange.forward(points)
            # rank-local work before the exchange back: a failure is raised on every rank
            values = agree(model.comm, partial(self._of, model.inner, G, X))
            return model.exchange.backward(values[:, None], (1,))[:, 0]
        if isinstance(model, EffectiveModel):
            return gradients @ self.row(self.template)
        if isinstance(model, CellModel):
            return gradients @ self.row(model.cell)
        if isinstance(model, GradedModel):
            values = np.zeros(len(gradients))
            for i, x in enumerate(points):  # cells are cached by the model; rows here
                values[i] = self.row(model.cell(model.rve_at(x))) @ gradients[i]
            return values
        if isinstance(model, NonlinearCellModel):
            return self._nonlinear(model, len(gradients))
        if isinstance(model, HistoryCellModel):  # the cell averaged σ33 of the last answers
            return model.averages().get("sigma33", np.zeros(len(gradients)))
        raise TypeError(f"no σ33 for the micro model {type(model).__name__}.")

    def _nonlinear(self, model: NonlinearCellModel, n_points: int) -> npt.NDArray[np.float64]:
        """The average of the law's σ33 over each point's converged micro state."""
        if n_points == 0:
            return np.zeros(0)
        cell = model.cell
        assert model.states is not None and model.converged is not None
        if id(cell) not in self._averages:
            self._averages[id(cell)] = _CellAverage(cell, self.materials)
        average = self._averages[id(cell)]
        return np.array(
            [
                average(G, cell.P @ state)
                for G, state in zip(model.converged, model.states, strict=True)
            ]
        )

"""Sampling domains: the micro model whose cell at a macro point x is a window of the medium.

HMM's micro domain at x is x + δ·(−½, ½)^d cut from the fine-scale medium. Two media:

- ``CoefficientWindows``: a coefficient a(x) > 0 (``rve.medium.CoefficientMedium``) that
  scales the law of one linear phase: diffusion k(x) = a(x)·k, elasticity E(x) = a(x)·E
  with ν fixed. One structured window mesh serves every point; a(x) is sampled at its
  quadrature points, shifted to x (a new coefficient, the same mesh and compiled form).
- ``LatticeWindows``: the medium of a generated periodic cell whose first edge is one
  period ε; the window of δ (any number of periods) is cut from the lattice at x's phase
  (``rve.window``) and meshed with gmsh.

Each window is solved as a periodic cell problem (``micro.cell_problem``) and answers with
its apparent tensor, Mandel for elasticity. ``SampledModel`` is the FE² micro model: one
window per distinct macro point, its tensor computed once and kept (linear micro physics:
the flux is C(x) G for any later gradient).
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.coupling.out_of_plane import has_out_of_plane_stress, out_of_plane_law
from hmm_fenics.errors import InputError
from hmm_fenics.materials import Conductivity, IsotropicElastic, Law, Material
from hmm_fenics.micro.boundary import check_bc
from hmm_fenics.micro.cell_problem import CellProblem, MicroResponse, cell_problem, check_finite
from hmm_fenics.physics import Elasticity, Physics
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
from hmm_fenics.rve.spec import RVESpec
from hmm_fenics.rve.window import lattice_window, window_in_cell_units

LINEAR = (Conductivity, IsotropicElastic)


class Window(NamedTuple):
    """A solved window and what its plane-strain σ33 is made of.

    Attributes:
        cell: The factored periodic cell problem of the window.
        sigma33: Cell tag → σ33(ε) of the phase there (2D plane-strain elasticity), else None.
    """

    cell: CellProblem
    sigma33: dict[int, Law] | None


def window_cells(delta: float, epsilon: float, cells_per_epsilon: int) -> int:
    """Elements per direction of a structured window: ⌈δ/ε · cells_per_epsilon⌉, at least 1."""
    return max(1, int(np.ceil(delta / epsilon * cells_per_epsilon - 1e-9)))


def window_bc(bc: str) -> str:
    """``bc`` if a window can take it: an oversampled window is not cut from a medium yet.

    Raises:
        InputError: naming ``micro.bc``.
    """
    if check_bc(bc) == "oversampling":
        raise InputError(
            'micro.bc = "oversampling" is not available with micro.medium (the window is cut '
            'from the medium): use "periodic", "dirichlet" or "neumann".'
        )
    return bc


class CoefficientWindows:
    """Windows of a coefficient medium on one structured mesh; build cells with ``cell_at``.

    Args:
        physics: ``Diffusion`` or ``Elasticity`` (2D or 3D; 1D: ``micro.interval``).
        medium: a(x) (a ``CoefficientMedium`` or a callable a(x) / a(x, ε)).
        delta: Window edge δ (macro units).
        cells: Elements per direction of the window mesh.
        material: The phase law a(x) scales: ``Conductivity`` (constant k) or
            ``IsotropicElastic``.
        degree: Lagrange degree of the micro field.
        petsc_options: ``hmm_micro_`` options.
        quadrature_degree: Points of the coefficient (default 2·degree + 2).
        epsilon: ε passed to a callable a(x, ε) (ignored for a ``CoefficientMedium``).
        bc: The window's boundary condition: ``"periodic"``, ``"dirichlet"`` or
            ``"neumann"`` (an oversampled window of a coefficient medium is not built).

    Raises:
        InputError: a bad size, a nonlinear or variable material, a dimension mismatch,
            an unsupported ``bc``.
    """

    def __init__(
        self,
        physics: Physics,
        medium: CoefficientMedium | Callable[..., Any],
        delta: float,
        cells: int,
        material: Material,
        degree: int = 1,
        petsc_options: Mapping[str, Any] | None = None,
        quadrature_degree: int | None = None,
        epsilon: float | None = None,
        bc: str = "periodic",
    ) -> None:
        self.bc = window_bc(bc)
        if not isinstance(material, LINEAR) or callable(getattr(material, "k", None)):
            raise InputError(
                "a coefficient medium scales one linear phase: give [materials.matrix] with a "
                f"constant k (diffusion) or E, nu (elasticity), got {type(material).__name__}."
            )
        if degree not in (1, 2, 3):
            raise InputError(f"physics.degree must be 1, 2 or 3, got {degree}.")
        check_window(delta, cells, physics.dim)
        self.physics, self.medium = physics, as_medium(medium, epsilon)
        self.delta, self.cells, self.material, self.degree = float(delta), cells, material, degree
        self.petsc_options = dict(petsc_options or {})
        self.mesh = window_mesh(physics.dim, delta, cells)
        self.space = quadrature_space(self.mesh, quadrature_degree or 2 * degree + 2)
        self._law = material.law(self.mesh, physics)  # checks the physics of the material

    def coefficient_at(self, x: npt.NDArray[np.float64]) -> Any:
        """A sampled on the window centred at ``x``: a quadrature ``Function``."""
        return sample(self.medium, self.space, window_origin(x, self.delta, self.physics.dim))

    def window_at(self, x: npt.NDArray[np.float64]) -> Window:
        """The solved window centred at macro point ``x``."""
        a = self.coefficient_at(x)
        law = self._law
        laws: dict[int, Law] = {1: lambda g: a * law(g)}
        where = ", ".join(f"{c:.6g}" for c in np.asarray(x).reshape(-1)[: self.physics.dim])
        rve = window_rve(self.mesh, self.delta, f"window of {self.medium.key} at ({where})")
        cell = CellProblem(self.physics, rve, laws, self.degree, self.petsc_options, self.bc)
        sigma33 = None
        if has_out_of_plane_stress(self.physics):
            assert isinstance(self.physics, Elasticity)
            base = out_of_plane_law(self.material, self.physics)
            sigma33 = {1: lambda eps: a * base(eps)}
        return Window(cell, sigma33)

    def cell_at(self, x: npt.NDArray[np.float64]) -> CellProblem:
        """The factored cell problem of the window centred at macro point ``x``."""
        return self.window_at(x).cell


class LatticeWindows:
    """Windows of the periodic medium of a generated cell; build cells with ``cell_at``.

    Args:
        physics: ``Diffusion`` or ``Elasticity`` of the cell's dimension.
        spec: The generated cell; its first edge is one period ε.
        materials: Phase name → material (linear phases).
        delta: Window edge δ (macro units).
        epsilon: The period ε (macro units).
        degree: Lagrange degree of the micro field.
        petsc_options: ``hmm_micro_`` options.
        bc: The window's boundary condition: ``"periodic"``, ``"dirichlet"`` or
            ``"neumann"``.

    Raises:
        InputError: a bad size or period, an unsupported ``bc``.
    """

    def __init__(
        self,
        physics: Physics,
        spec: RVESpec,
        materials: Mapping[str, Material],
        delta: float,
        epsilon: float,
        degree: int = 1,
        petsc_options: Mapping[str, Any] | None = None,
        bc: str = "periodic",
    ) -> None:
        self.bc = window_bc(bc)
        check_window(delta, 1, spec.dim)
        if not (np.isfinite(epsilon) and epsilon > 0):
            raise InputError(f"micro.epsilon must be a positive length, got {epsilon}.")
        self.physics, self.spec, self.materials = physics, spec, materials
        self.delta, self.epsilon, self.degree = float(delta), float(epsilon), degree
        self.petsc_options = dict(petsc_options or {})

    def window_at(self, x: npt.NDArray[np.float64]) -> Window:
        """The solved window centred at macro point ``x``."""
        origin, size = window_in_cell_units(self.spec, x, self.delta, self.epsilon)
        rve = lattice_window(self.spec, origin, size)
        cell = cell_problem(
            self.physics, rve, self.materials, self.degree, self.petsc_options, bc=self.bc
        )
        sigma33 = None
        if has_out_of_plane_stress(self.physics):
            assert isinstance(self.physics, Elasticity)
            sigma33 = {
                tag: out_of_plane_law(self.materials[name], self.physics)
                for name, tag in rve.phases.items()
            }
        return Window(cell, sigma33)

    def cell_at(self, x: npt.NDArray[np.float64]) -> CellProblem:
        """The factored cell problem of the window centred at macro point ``x``."""
        return self.window_at(x).cell


Windows = CoefficientWindows | LatticeWindows


class WindowAnswer(NamedTuple):
    """What a window leaves behind for its macro point.

    Attributes:
        tensor: The apparent tensor (under the window's BC), shape ``(n, n)``, Mandel for elasticity.
        unknowns: Micro unknowns solved for.
        sigma33: The row r with ⟨σ33⟩ = r · G (2D plane strain), shape ``(n,)``, else None.
    """

    tensor: npt.NDArray[np.float64]
    unknowns: int
    sigma33: npt.NDArray[np.float64] | None


def sigma33_row(cell: CellProblem, laws: Mapping[int, Law]) -> npt.NDArray[np.float64]:
    """The row r with ⟨σ33⟩ = r · G of a linear plane-strain cell, shape ``(n,)``.

    r_j = ⟨σ33(E_j + ε(w_j))⟩ over the cell box, with w_j the fluctuation of the unit strain
    E_j and ``laws`` the σ33 of the phase of each cell tag.
    """
    import ufl
    from dolfinx import fem

    physics, rve = cell.physics, cell.rve
    n = physics.n_components
    G = fem.Constant(rve.mesh, np.zeros(n))
    w = fem.Function(cell.V)
    eps = physics.from_mandel(G) + physics.gradient(w)
    dx = ufl.Measure("dx", domain=rve.mesh, subdomain_data=rve.cell_tags)
    form = fem.form(
        sum((law(eps) * dx(tag) for tag, law in laws.items()), start=ufl.as_ufl(0) * dx)
    )
    row = np.zeros(n)
    for j, unit in enumerate(np.eye(n)):
        G.value[:] = unit
        w.x.array[:] = cell.fluctuation(unit).x.array
        row[j] = float(np.real(fem.assemble_scalar(form))) / rve.volume
    return row


class SampledModel:
    """FE² micro model: the cell of every macro point is the window of the medium there.

    A window is built and solved the first time its point is seen (points are keyed by
    their coordinates rounded to 1e-12 of the largest); its apparent tensor is kept, so a
    later macro iteration answers with C(x) G and no solve.

    Attributes:
        windows: The window builder (``CoefficientWindows`` or ``LatticeWindows``).
        answers: Point key → ``WindowAnswer``.
        solves: Windows built and solved so far.
    """

    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        self.answers: dict[tuple[float, ...], WindowAnswer] = {}
        self.solves = 0
        self._sigma33: npt.NDArray[np.float64] = np.zeros(0)

    @staticmethod
    def _key(x: npt.NDArray[np.float64]) -> tuple[float, ...]:
        scale = max(float(np.abs(x).max(initial=0.0)), 1.0)
        return tuple(float(v) for v in np.round(np.asarray(x, dtype=np.float64) / scale, 12))

    def tensor_at(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The apparent tensor of the window at ``x`` (solved once, then kept)."""
        return self._answer(x).tensor

    def _answer(self, x: npt.NDArray[np.float64]) -> WindowAnswer:
        key = self._key(x)
        if key not in self.answers:
            cell, laws33 = self.windows.window_at(x)
            row = None if laws33 is None else sigma33_row(cell, laws33)
            self.answers[key] = WindowAnswer(cell.effective_tensor.copy(), cell.n_unknowns, row)
            self.solves += 1
        return self.answers[key]

    def cell_at(self, x: npt.NDArray[np.float64]) -> CellProblem:
        """The cell problem of the window at ``x``, built again (micro snapshots)."""
        return self.windows.cell_at(x)

    def respond(
        self,
        gradients: npt.NDArray[np.float64],
        points: npt.NDArray[np.float64],
        ids: npt.NDArray[np.int64] | None = None,
    ) -> MicroResponse:
        """C(x) G at every point, with the tangent C(x)."""
        n = self.windows.physics.n_components
        tangent = np.zeros((len(gradients), n, n))
        rows = np.zeros((len(gradients), n))
        for i, x in enumerate(points):
            answer = self._answer(x)
            tangent[i] = answer.tensor
            if answer.sigma33 is not None:
                rows[i] = answer.sigma33
        flux = np.einsum("pij,pj->pi", tangent, gradients)
        response = check_finite(MicroResponse(flux, tangent), gradients, points, ids)
        self._sigma33 = np.einsum("pj,pj->p", rows, gradients)
        return response

    def averages(self) -> dict[str, npt.NDArray[np.float64]]:
        """``{"sigma33": ⟨σ33⟩ per point}`` of the last ``respond`` (2D plane strain), else {}."""
        if not has_out_of_plane_stress(self.windows.physics):
            return {}
        return {"sigma33": self._sigma33.copy()}

# petsc4py's stubs and DOLFINx's singledispatch in-place assemblers are stricter than what runs.
# mypy: disable-error-code="arg-type, misc, operator, index"
"""History-dependent cells: phase point laws at micro quadrature points, one compiled problem.

The micro stress and tangent live at the quadrature points (a basix quadrature element of
degree q = max(2(p − 1), 1) for Lagrange degree p, exact for the stiffness of affine
simplices; q = 2p on quadrilaterals and hexahedra, whose gradients are of degree p in each
coordinate: exact on parallelograms, and without the hourglass modes of a coarser rule). Their values come from the phases' NumPy point laws (``point_laws.PointLaw``),
called once per Newton iteration for all quadrature points of a phase. A sparse strain
operator S, built once, maps the full nodal fluctuation to the Mandel strains at every
quadrature point (rows: point × component); with the quadrature weights w (|det J| times
the rule's weights) and SP = S P:

    strain    ε_q = G + (SP w_r)_q
    residual  Pᵀ r = (SP)ᵀ (w σ_q)          (= Pᵀ ∫ σ_q : ε(v), without an assembly)
    average   ⟨σ⟩ = Σ_q w_q σ_q / |Y|,   Uᵀ K U = Σ_q w_q C_q,   B = −(SP)ᵀ (w C_q)

and the Jacobian ∫ (C_q ε(du)) : ε(v) is assembled from the compiled form with C_q in a
quadrature function. The consistent macro tangent is the core's (Uᵀ K U − Bᵀ X)/|Y| with the
algorithmic micro tangent. Newton always starts from the committed state it is given (its
fluctuation derived from the committed gradient and internal variables: ``committed_fluctuation``).

A point's internal variables are one row of floats: for each history phase (in the order of
``rve.phases``), its quadrature points × its law's ``n_vars``, concatenated; elastic
phases carry nothing. 2D cells are plane strain: laws see the 3D strain with ε33 = 0 and
the cell also returns ⟨σ33⟩.
"""

import logging
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.materials import Material
from hmm_fenics.micro.core import MicroCore, cell_domain, solid_phases
from hmm_fenics.micro.nonlinear import MicroNewtonError
from hmm_fenics.micro.shortcut import (
    ElasticShortcut,
    affine_solve,
    elastic_trial,
    krylov_solve,
    krylov_tangent,
    law_predictor,
)
from hmm_fenics.micro.sparse import CSRMatrix
from hmm_fenics.physics import Elasticity, Physics
from hmm_fenics.point_laws import DEVIATOR, IN_PLANE, PointLaw
from hmm_fenics.rve.mesh import RVEMesh

log = logging.getLogger(__name__)

Array = npt.NDArray[np.float64]


class HistorySolution(NamedTuple):
    """Converged micro state of one macro point for one step.

    Attributes:
        flux: ⟨σ⟩, shape ``(n,)`` (Mandel).
        tangent: d⟨σ⟩/dG, the consistent macro tangent, ``(n, n)``.
        fluctuation: Reduced fluctuation, ``(n_unknowns,)``.
        internal_row: New internal variables, ``(width_internal,)`` (bitwise
            ``internal_after(G, fluctuation, committed row, dt)``).
        iterations: Newton steps taken.
        stored_energy: Cell average of the free energy density.
        dissipation: Cell average of the dissipated energy density (accumulated).
        plastic_strain: Cell average of the equivalent plastic strain.
        sigma33: ⟨σ33⟩ (the out-of-plane stress of a plane-strain cell; in 3D ``flux[2]``).
        viscous_dissipation: The part of ``dissipation`` by rate-dependent (viscous) laws;
            the rest is plastic.
        method: ``"shortcut"`` (the elastic trial was the answer) or ``"newton"``.
        factorizations: Micro factorizations this solve made (the cached elastic ones
            included when made here).
        krylov_iterations: CG iterations of the Newton steps and tangent (Krylov mode).
    """

    flux: Array
    tangent: Array
    fluctuation: Array
    internal_row: Array
    iterations: int
    stored_energy: float
    dissipation: float
    plastic_strain: float
    sigma33: float
    viscous_dissipation: float = 0.0
    method: str = "newton"
    factorizations: int = 0
    krylov_iterations: int = 0


class MicroFields(NamedTuple):
    """Fields at the micro quadrature points of a converged state, in the cell's point order.

    Attributes:
        stress: 3D Mandel stress ``(m, 6)`` (σ33 of a plane-strain cell included).
        plastic_strain: Equivalent plastic strain ``(m,)`` (0 in phases without plasticity).
        dissipation: Accumulated dissipated energy density ``(m,)``.
        stored_energy: Free energy density ``(m,)``.
        von_mises: Von Mises stress √(3/2) |dev σ| ``(m,)``.
    """

    stress: Array
    plastic_strain: Array
    dissipation: Array
    stored_energy: Array
    von_mises: Array


def point_law_of(name: str, material: Any) -> PointLaw:
    """The NumPy point law of a phase: ``material.point_law()``, or ``material`` if it is one.

    Raises:
        InputError: the material has no point law (diffusion, a power law).
    """
    if hasattr(material, "point_law"):
        law: PointLaw = material.point_law()
        return law
    if hasattr(material, "update") and hasattr(material, "n_vars"):
        return material  # type: ignore[no-any-return]
    raise InputError(
        f"materials.{name}: {type(material).__name__} has no point law for a history cell; "
        'use an elastic phase or law = "j2" / "maxwell".'
    )


def history_cell_problem(
    physics: Physics,
    rve: RVEMesh,
    materials: Mapping[str, Material | PointLaw],
    degree: int = 1,
    petsc_options: Mapping[str, Any] | None = None,
    rtol: float = 1e-10,
    max_iterations: int = 30,
    shortcut: bool = True,
    linear_solver: str = "direct",
    bc: str = "periodic",
    oversampling: float | None = None,
) -> "HistoryCellProblem":
    """Compile the history cell of ``rve`` once; solve per point and step later.

    Args:
        physics: ``Elasticity`` (2D plane strain or 3D).
        rve: Periodic RVE mesh on ``MPI.COMM_SELF``.
        materials: Phase → material with ``.point_law()`` (or a point law itself).
        degree: Lagrange degree of the micro displacement.
        petsc_options: ``hmm_micro_`` options over the direct-solver defaults.
        rtol: Newton tolerance: ‖Pᵀ r‖ ≤ rtol (|Y| ‖⟨σ⟩‖ + ‖Pᵀ r₀‖).
        max_iterations: Newton steps before ``MicroNewtonError`` (no micro substeps: the
            macro step is cut instead).
        shortcut: Try the exact elastic shortcut first (``micro.shortcut``). The elastic
            factorization is built and kept whatever this says: it derives the committed
            fluctuation a Newton starts from (``committed_fluctuation``; for Maxwell the
            glassy, Δt = 0 one, besides the Δt one of the shortcut and the Krylov solver).
        linear_solver: ``"direct"`` (refactor the tangent every Newton step) or ``"krylov"``
            (CG preconditioned with the elastic factorization; needs the shortcut's laws).
        bc: The micro boundary condition (``micro.boundary.BOUNDARY_CONDITIONS``).
        oversampling: Periods per axis of an oversampling window (``cell_problem``).

    Raises:
        InputError: diffusion, plane stress, a phase without point law or whose law is not
            ``Predictable``, an unknown ``linear_solver``, or the checks of
            ``core.solid_phases``.
    """
    if linear_solver not in LINEAR_SOLVERS:
        raise InputError(
            f"micro.linear_solver must be one of {list(LINEAR_SOLVERS)}, got {linear_solver!r}."
        )
    if not isinstance(physics, Elasticity):
        raise InputError("a history cell needs elasticity physics (J2 and Maxwell are solid laws).")
    if physics.dim == 2 and physics.plane == "stress":
        raise InputError(
            "laws with internal variables are 3D laws: in 2D they run in plane strain only "
            '(plane stress would need σ33 = 0 solved at every point); set physics.plane = "strain".'
        )
    mesh, window = cell_domain(rve, bc, oversampling)
    solid = solid_phases(physics, mesh, materials, degree)  # type: ignore[arg-type]
    laws = {name: point_law_of(name, m) for name, m in solid.items()}
    cell = HistoryCellProblem(
        physics, mesh, laws, degree, dict(petsc_options or {}), rtol, max_iterations, bc, window
    )
    cell.shortcut, cell.linear_solver = shortcut, linear_solver
    return cell


LINEAR_SOLVERS = ("direct", "krylov")
KRYLOV_FORCING = 1e-3
"""CG tolerance of a Krylov Newton step relative to the residual (tighter near the end)."""


class HistoryCellProblem(MicroCore):
    """A cell whose phases carry internal variables; build it with :func:`history_cell_problem`.

    Attributes:
        laws: Phase name → point law.
        quadrature_degree: q of the micro quadrature.
        n_points_q: Micro quadrature points of the cell.
        weights: Their weights (volume), ``(n_points_q,)``; points are numbered phase by
            phase.
        average_weights: The weights of the averages: ``weights``, but zero outside the
            inner cell of an oversampling window.
        quadrature_dofs: The quadrature-space dof of every point (the layout of ``C_q``).
        point_cells: The mesh cells in the point numbering (points of a cell are
            consecutive, in the rule's order).
        strain_operator: SP, the reduced fluctuation → Mandel strains at the quadrature
            points, rows point × component.
        phase_points: Phase → the slice of its quadrature points.
        offsets: History phase → (start, stop) of its block in an internal row.
        width_internal: Length of an internal row.
        shortcut: Whether ``solve`` tries the elastic shortcut first (settable).
        linear_solver: ``"direct"`` or ``"krylov"`` Newton steps (settable).
        krylov_forcing: CG tolerance of a Krylov Newton step relative to its residual.
        newton_start: Where the Newton of a flowing point starts: ``"committed"`` (the
            committed fluctuation, derived by ``committed_fluctuation``; as without the
            shortcut: the same iterates) or
            ``"trial"`` (the elastic trial; a step fewer mostly, but it diverged on a
            reversal at weak hardening in bench_fewer_solves, so not the default).
        elastic: The elastic factorizations (every law is ``Predictable``: checked here).
    """

    def __init__(
        self,
        physics: Physics,
        rve: RVEMesh,
        laws: dict[str, PointLaw],
        degree: int,
        petsc_options: dict[str, Any],
        rtol: float,
        max_iterations: int,
        bc: str = "periodic",
        window: Any = None,
    ) -> None:
        import basix
        import basix.ufl
        import ufl
        from dolfinx import fem
        from dolfinx.fem import petsc as fem_petsc

        super().__init__(physics, rve, degree, petsc_options, bc=bc, window=window)
        clock = time.perf_counter()
        self.laws, self.rtol, self.max_iterations = laws, rtol, max_iterations
        mesh = rve.mesh
        n = physics.n_components
        self._n = n
        self.components = IN_PLANE if physics.dim == 2 else np.arange(6)
        cell = mesh.basix_cell()
        simplex = cell in (basix.CellType.triangle, basix.CellType.tetrahedron)
        q = max(2 * (degree - 1), 1) if simplex else 2 * degree
        self.quadrature_degree = q
        X, _ = basix.make_quadrature(cell, q)
        tensor_element = basix.ufl.quadrature_element(cell, value_shape=(n, n), degree=q)
        scalar_element = basix.ufl.quadrature_element(cell, value_shape=(), degree=q)
        self.C_q = fem.Function(fem.functionspace(mesh, tensor_element))
        Qs = fem.functionspace(mesh, scalar_element)
        dx = ufl.Measure("dx", domain=mesh, metadata={"quadrature_degree": q})
        mandel = physics.to_mandel
        du, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        eps_du, eps_v = mandel(physics.gradient(du)), mandel(physics.gradient(v))
        self.jacobian_form = fem.form(ufl.inner(ufl.dot(self.C_q, eps_du), eps_v) * dx)
        weights = np.array(
            fem.assemble_vector(fem.form(ufl.TestFunction(Qs) * dx)).array, dtype=np.float64
        )
        self.n_points_q = len(weights)
        # Points are numbered phase by phase (each phase a contiguous slice, its cells in
        # order, their points in rule order); ``quadrature_dofs`` maps them to C_q's layout.
        n_cells = mesh.topology.index_map(mesh.topology.dim).size_local
        qdofs = np.asarray(Qs.dofmap.list, dtype=np.int64)[:n_cells]
        self.phase_points: dict[str, slice] = {}
        self.offsets: dict[str, tuple[int, int]] = {}
        blocks, cell_blocks, start, width = [], [], 0, 0
        for name in rve.phases:
            cells = np.sort(rve.cell_tags.find(rve.phases[name])).astype(np.int64)
            blocks.append(qdofs[cells].ravel())
            cell_blocks.append(cells)
            self.phase_points[name] = slice(start, start + blocks[-1].size)
            start += blocks[-1].size
            size = blocks[-1].size * laws[name].n_vars
            if size:
                self.offsets[name] = (width, width + size)
                width += size
        self.width_internal = width
        self.quadrature_dofs = np.concatenate(blocks)
        if start != self.n_points_q:
            raise InputError(
                f"{self.n_points_q - start} micro quadrature points lie in cells of no phase; "
                "every cell of the RVE mesh needs a phase tag."
            )
        self.point_cells = np.concatenate(cell_blocks)
        self.weights = weights[self.quadrature_dofs]
        per_cell = self.n_points_q // max(len(self.point_cells), 1)
        inner = np.repeat(self.inner_cells[self.point_cells], per_cell)
        self.average_weights = np.where(inner, self.weights, 0.0)
        self.strain_operator = self._strain_operator(X, self.point_cells)
        self._K = fem_petsc.create_matrix(self.jacobian_form)
        for stage in ("strain", "law", "assemble", "ptap", "factor", "solve", "krylov"):
            self.timings.setdefault(stage, 0.0)
        self.shortcut, self.linear_solver, self.krylov_forcing = True, "direct", KRYLOV_FORCING
        self.newton_start = "committed"
        for name, law in laws.items():
            if not (hasattr(law, "predictor") and hasattr(law, "flowed")):
                raise InputError(
                    f"materials.{name}: the point law {type(law).__name__} has no affine "
                    "predictor (point_laws.Predictable: predictor and flowed); a history cell "
                    "derives the committed fluctuation from it (micro.state)."
                )
            law_predictor(name, law, np.zeros((1, law.n_vars)), 0.0)  # a virgin state at Δt = 0
        self.elastic = ElasticShortcut(self)
        self.lap("compile", clock)

    def _strain_operator(self, X: Array, cells: npt.NDArray[np.int64]) -> CSRMatrix:
        """SP: reduced fluctuation → Mandel strains at the quadrature points (built once).

        Rows are point × component in the phase-by-phase point numbering; ``cells`` lists
        the cells in that order (each with all of its points).
        """
        import ufl
        from dolfinx import fem

        physics, mesh = self.physics, self.rve.mesh
        n, bs = self._n, self.V.dofmap.bs
        du = ufl.TrialFunction(self.V)
        expression = fem.Expression(physics.to_mandel(physics.gradient(du)), X)
        values = expression.eval(mesh, cells.astype(np.int32))  # (cells, points, n, dofs)
        nodes = np.asarray(self.V.dofmap.list, dtype=np.int64)[cells]
        full = (nodes[:, :, None] * bs + np.arange(bs)).reshape(len(cells), -1)  # blocked
        # P has one 1 per row (none for the pinned corner): compose S with it column-wise.
        column = np.full(self.boundary.n_full, -1, dtype=np.int64)
        P = self.P
        column[np.repeat(np.arange(P.shape[0]), np.diff(P.indptr))] = P.indices
        cols = np.broadcast_to(column[full][:, None, None, :], values.shape)
        rows = np.broadcast_to(
            np.arange(values[..., 0].size).reshape(values.shape[:3])[..., None], values.shape
        )
        keep = (cols >= 0) & (values != 0.0)
        counts = np.bincount(rows[keep], minlength=self.n_points_q * n)
        indptr = np.concatenate([[0], np.cumsum(counts)])  # rows[keep] is sorted already
        return CSRMatrix(indptr, cols[keep], values[keep], (self.n_points_q * n, self.n_unknowns))

    def strains(self, gradient: Array, fluctuation: Array) -> Array:
        """Mandel strains at the quadrature points, ``(n_points_q, n)``."""
        eps = (self.strain_operator @ fluctuation).reshape(self.n_points_q, self._n)
        eps += gradient
        return eps

    def _embed(self, strain: Array) -> Array:
        if self._n == 6:
            return strain
        out = np.zeros((len(strain), 6))
        out[:, IN_PLANE] = strain
        return out

    def _update(
        self, eps: Array, internal_row: Array, dt: float
    ) -> tuple[Array, Array, Array, dict[str, Array], bool]:
        """Stress ``(m, n)``, tangent ``(m, n, n)``, σ33 ``(m,)``, phase states, any flow."""
        m, n, comps = self.n_points_q, self._n, self.components
        stress, tangent, sigma33 = np.empty((m, n)), np.empty((m, n, n)), np.empty(m)
        states: dict[str, Array] = {}
        flowed = False
        for name, law in self.laws.items():
            points = self.phase_points[name]
            state = self.phase_state(name, internal_row)
            s, C, new = law.update(self._embed(eps[points]), state, dt)
            flows = getattr(law, "flowed", None)
            flowed = flowed or flows is None or bool(flows(state, new).any())
            if n == 6:
                stress[points], tangent[points] = s, C
            else:
                stress[points] = s[:, comps]
                tangent[points] = C[:, comps[:, None], comps]
            sigma33[points] = s[:, 2]
            states[name] = new
        return stress, tangent, sigma33, states, flowed

    def phase_state(self, name: str, internal_row: Array) -> Array:
        """The internal variables of phase ``name`` in a row, ``(its points, n_vars)`` (a view)."""
        points, n_vars = self.phase_points[name], self.laws[name].n_vars
        m = points.stop - points.start
        if name not in self.offsets:
            return np.zeros((m, 0))
        start, stop = self.offsets[name]
        return internal_row[start:stop].reshape(m, n_vars)

    def internal_after(
        self, gradient: Array, fluctuation: Array, internal_row: Array, dt: float = 1.0
    ) -> Array:
        """The internal row of a converged solve, recomputed from what it converged to.

        The laws' update from ``internal_row`` at the strains ``strains(gradient,
        fluctuation)``: the operations ``solve`` applied to the same numbers at its last
        iterate (Newton or elastic shortcut: both return the fluctuation whose strains gave
        the states), so the row is bitwise its ``HistorySolution.internal_row``. One return
        mapping, no solve: what lets a state store keep no trial internal variables.

        Args:
            gradient: The step's macro strain, ``(n,)`` (Mandel).
            fluctuation: The converged reduced fluctuation, ``(n_unknowns,)``.
            internal_row: The committed internal variables the solve started from,
                ``(width_internal,)`` (not modified).
            dt: The step's Δt (> 0), as given to ``solve``.
        """
        eps = self.strains(np.asarray(gradient, dtype=np.float64), fluctuation)
        row = np.empty(self.width_internal)
        for name, (start, stop) in self.offsets.items():
            points, state = self.phase_points[name], self.phase_state(name, internal_row)
            row[start:stop] = self.laws[name].update(self._embed(eps[points]), state, dt)[2].ravel()
        return row

    def hill_mandel_of(self, gradient: Array, fluctuation: Array, internal_row: Array) -> float:
        """|⟨σ:ε⟩ − ⟨σ⟩·⟨ε⟩| / |⟨σ:ε⟩| of a converged state (arguments: ``micro_fields``).

        Quadrature sums over the averaging domain; ⟨ε⟩ = G + Aᵀ P w/|Y| (``MicroCore``).
        """
        G = np.asarray(gradient, dtype=np.float64)
        eps = self.strains(G, fluctuation)
        stress = self.micro_fields(G, fluctuation, internal_row).stress[:, self.components]
        w, volume = self.average_weights, self.volume
        energy = float(w @ np.einsum("qi,qi->q", stress, eps)) / volume
        mean_strain = G + self.average_functional.T @ (self.P @ fluctuation) / volume
        return abs(energy - float((w @ stress) @ mean_strain) / volume) / abs(energy)

    def micro_fields(self, gradient: Array, fluctuation: Array, internal_row: Array) -> MicroFields:
        """The micro fields of a converged state (for snapshots), at every quadrature point.

        Stresses come from the laws' ``stress`` at the updated state, so no step is repeated.

        Args:
            gradient: Macro strain ``(n,)`` (Mandel) of the step.
            fluctuation: Its converged reduced fluctuation (``HistorySolution.fluctuation``).
            internal_row: Its updated internal variables (``HistorySolution.internal_row``).
        """
        eps = self._embed(self.strains(np.asarray(gradient, dtype=np.float64), fluctuation))
        m = self.n_points_q
        stress = np.empty((m, 6))
        plastic, dissipation, energy = np.empty(m), np.empty(m), np.empty(m)
        for name, law in self.laws.items():
            points = self.phase_points[name]
            state = self.phase_state(name, internal_row)
            stress[points] = law.stress(eps[points], state)
            plastic[points] = law.plastic_strain(state)
            dissipation[points] = law.dissipation(state)
            energy[points] = law.free_energy(eps[points], state)
        deviator = stress @ DEVIATOR
        von_mises = np.sqrt(1.5 * np.einsum("mi,mi->m", deviator, deviator))
        return MicroFields(stress, plastic, dissipation, energy, von_mises)

    def cell_values(self, values: Array) -> Array:
        """Cell averages (DG0) of point values ``(n_points_q, ...)``, ``(n_cells, ...)``.

        The quadrature-weighted mean over each cell's points (its exact L2 projection on
        DG0), rows ordered by the mesh's local cell index.
        """
        n_cells = len(self.point_cells)
        per_cell = values.reshape(n_cells, -1, *values.shape[1:])
        w = self.weights.reshape(n_cells, -1)
        sums: Array = np.einsum("cq,cq...->c...", w, per_cell)
        out = np.empty_like(sums)
        out[self.point_cells] = sums / w.sum(axis=1).reshape(-1, *([1] * (sums.ndim - 1)))
        return out

    def assemble_jacobian(self, tangent: Array) -> Any:
        """The full stiffness ∫ (C_q ε(du)) : ε(v) with ``tangent`` ``(m, n, n)`` at the points."""
        from dolfinx.fem import petsc as fem_petsc

        start = time.perf_counter()
        self.C_q.x.array.reshape(self.n_points_q, -1)[self.quadrature_dofs] = tangent.reshape(
            self.n_points_q, -1
        )
        K = self._K
        K.zeroEntries()
        fem_petsc.assemble_matrix(K, self.jacobian_form)
        K.assemble()
        self.lap("assemble", start)
        return K

    def tangent_parts(self, tangent: Array) -> tuple[Array, Array, Array]:
        """Uᵀ K_avg U / |Y| ``(n, n)``, B = −Pᵀ K U and B_avg = −Pᵀ K_avg U ``(n_unknowns, n)``.

        K_avg: the stiffness of micro tangents ``(m, n, n)`` over the averaging domain (all
        the cell but for an oversampling window, whose inner cell it is).
        """

        def load_of(weights: Array) -> Array:
            wC = (weights[:, None, None] * tangent).reshape(len(tangent), -1)
            return -np.column_stack(
                [self.strain_operator.T @ wC[:, a :: self._n].ravel() for a in range(self._n)]
            )

        load = load_of(self.weights)
        load_average = load if self.window is None else load_of(self.average_weights)
        mean = np.einsum("q,qij->ij", self.average_weights, tangent) / self.volume
        return mean, load, load_average

    def macro_tangent(self, tangent: Array, ksp: Any = None) -> Array:
        """The consistent macro tangent of micro tangents ``(m, n, n)`` (``ksp``: factored)."""
        mean, load, load_average = self.tangent_parts(tangent)
        return self.tangent(mean, load, ksp, load_average)

    def committed_fluctuation(self, gradient: Array, internal_row: Array) -> Array:
        """The reduced fluctuation of a committed state, derived from its gradient and row.

        A committed state is in equilibrium at its gradient G_c, and every law is affine
        where it does not flow (``Predictable``): the affine cell problem at (G_c, the
        committed internal row, Δt = 0), one solve with a cached elastic factorization,
        returns the converged fluctuation w_c up to K_p⁻¹ r_c, r_c the residual the Newton
        stopped at (J2: σ₀ = −C εᵖ with the updated εᵖ, so C_p ε + σ₀ is the committed
        stress at ε_c; Maxwell at Δt = 0: the glassy modulus with σ₀ = Σ σ_i − Σ E_i C(1, ν)
        ε_n, ε_n = ε_c, the committed stress again). A function of the committed state
        only: what lets a state store keep no fluctuation (``micro.state``).

        Args:
            gradient: The committed macro strain G_c, ``(n,)`` (Mandel).
            internal_row: The committed internal variables, ``(width_internal,)``.
        """
        G = np.asarray(gradient, dtype=np.float64)
        if G.shape != (self._n,):
            raise ValueError(f"a committed gradient has shape ({self._n},), got {G.shape}.")
        elastic, sigma0 = self.elastic.predictor(internal_row, 0.0)
        return affine_solve(self, elastic, sigma0, G)[0]

    def solve(
        self,
        gradient: Array,
        internal_row: Array,
        committed_gradient: Array,
        dt: float = 1.0,
        start: Array | None = None,
    ) -> HistorySolution:
        """Micro Newton for one macro point and step, from its committed state.

        With ``shortcut`` the elastic trial comes first: one solve with the cached elastic
        factorization; when no point flows it is the answer (``method = "shortcut"``), else
        the Newton runs (from ``newton_start``). The committed fluctuation, the default
        start, is derived only then (``committed_fluctuation``).

        Args:
            gradient: Macro strain at the end of the step, ``(n,)`` (Mandel).
            internal_row: Committed internal variables, ``(width_internal,)`` (not modified).
            committed_gradient: The committed macro strain, ``(n,)``.
            dt: Time step (> 0).
            start: A Newton start (reduced fluctuation) over ``newton_start`` (tests and
                benchmarks: the stored converged fluctuation).

        Raises:
            MicroNewtonError: no convergence in ``max_iterations`` steps, or a non-finite
                state.
        """
        G = np.asarray(gradient, dtype=np.float64)
        weights, volume = self.weights[:, None], self.volume
        factorizations, krylov = self.factorizations, 0
        krylov_mode = self.linear_solver == "krylov"
        elastic = trial = None
        if self.shortcut or krylov_mode:
            elastic, sigma0 = self.elastic.predictor(internal_row, dt)
        if self.shortcut and elastic is not None:
            done, trial = elastic_trial(self, elastic, sigma0, G, internal_row, dt)
            if done is not None:
                solution: HistorySolution = done
                return solution._replace(factorizations=self.factorizations - factorizations)
        if start is not None:
            wr = np.array(start, dtype=np.float64)
        elif self.newton_start == "trial" and trial is not None:
            wr = trial
        else:
            wr = self.committed_fluctuation(committed_gradient, internal_row)
        first, norm = None, np.inf
        for iteration in range(self.max_iterations + 1):
            clock = time.perf_counter()
            eps = self.strains(G, wr)
            clock = self.lap("strain", clock)
            stress, tangent, sigma33, states, _ = self._update(eps, internal_row, dt)
            weighted = weights * stress
            rr = self.strain_operator.T @ weighted.ravel()
            clock = self.lap("law", clock)
            norm = self.free_norm(rr)
            if not (np.isfinite(norm) and np.isfinite(tangent).all()):
                break  # a non-finite state: no Newton step can recover from it
            first = norm if first is None else first
            total = self.average_weights @ stress
            target = self.rtol * (float(np.linalg.norm(total)) + first)
            if norm <= target or norm == 0.0:
                if krylov_mode and elastic is not None:
                    macro_tangent, steps = krylov_tangent(self, tangent, elastic.ksp)
                    krylov += steps
                else:
                    self._factor(tangent)
                    macro_tangent = self.macro_tangent(tangent)
                solution = self._solution(
                    total / volume, macro_tangent, wr, eps, states, sigma33, iteration
                )
                return solution._replace(
                    factorizations=self.factorizations - factorizations, krylov_iterations=krylov
                )
            if iteration == self.max_iterations:
                break
            if krylov_mode and elastic is not None:
                eta = min(self.krylov_forcing, max(0.1 * target / norm, 1e-12))
                step, steps = krylov_solve(self, tangent, rr, eta, elastic.ksp)
                krylov += steps
                wr -= step
            else:
                self._factor(tangent)
                wr -= self.solve_reduced(rr)
        raise MicroNewtonError(
            f"micro Newton did not converge in {self.max_iterations} steps for G = "
            f"{np.round(G, 8).tolist()} (|Pᵀr| = {norm:.3e}, start "
            f"{norm if first is None else first:.3e}); the macro step is cut."
        )

    def _factor(self, tangent: Array) -> None:
        self.reduce(self.assemble_jacobian(tangent))

    def _solution(
        self,
        flux: Array,
        tangent: Array,
        wr: Array,
        eps: Array,
        states: dict[str, Array],
        sigma33: Array,
        iterations: int,
    ) -> HistorySolution:
        row = np.empty(self.width_internal)
        energy = dissipation = viscous = plastic = 0.0
        for name, law in self.laws.items():
            points = self.phase_points[name]
            w, new = self.average_weights[points], states[name]
            if name in self.offsets:
                start, stop = self.offsets[name]
                row[start:stop] = new.ravel()
            energy += float(w @ law.free_energy(self._embed(eps[points]), new))
            dissipated = float(w @ law.dissipation(new))
            dissipation += dissipated
            if getattr(law, "dissipates", "") == "viscous":
                viscous += dissipated
            plastic += float(w @ law.plastic_strain(new))
        volume = self.volume
        return HistorySolution(
            flux,
            tangent,
            wr,
            row,
            iterations,
            energy / volume,
            dissipation / volume,
            plastic / volume,
            float(self.average_weights @ sigma33) / volume,
            viscous / volume,
        )

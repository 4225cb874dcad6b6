# petsc4py's stubs reject the NumPy arrays and mpi4py communicators it accepts at run time.
# mypy: disable-error-code="arg-type, assignment, operator, index"
"""The micro core: what every cell problem shares, set up once per template.

A cell problem (linear, nonlinear, with history) is a function space V on the RVE, the
prolongation P of its boundary condition (n_full × n_independent, ``micro.boundary``:
periodic, affine Dirichlet, minimal kinematic (Neumann) or oversampling), the nodal values
U of the affine lifts of the unit macro gradients (n_full × n), and the ``hmm_micro_``
solver of the reduced operator Pᵀ K P. With K the (tangent) stiffness of the full space:

    lifting:   Pᵀ K P X = B,   B = −Pᵀ K U      (Neumann: + C Λ, Cᵀ X = 0)
    averaging: C_t = (Uᵀ K U − Bᵀ X) / |Y|

the consistent macro tangent (the effective tensor of a linear cell). The Neumann
constraints are solved through a Schur complement on the factored operator: with
Z = Kr⁻¹ C and S = Cᵀ Z (n × n), x = y − Z S⁻¹ Cᵀ y for y = Kr⁻¹ b. The energy formula
above still holds then (Cᵀ X = 0). Oversampling averages over the inner cell of the
window only: C_t = (Uᵀ K_in U − B_inᵀ X)/|Y_in|, B_in = −Pᵀ K_in U (not symmetric).
``MicroCore`` holds these pieces and the operations on them; the cell problems add their
forms and answers.
"""

import time
from collections.abc import Mapping
from typing import Any

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError, MicroFailure
from hmm_fenics.materials import Material, Void
from hmm_fenics.micro.boundary import (
    BoundaryMap,
    boundary_map,
    check_bc,
    gradient_functional,
    rigid_modes,
)
from hmm_fenics.micro.sparse import CSRMatrix, to_csr
from hmm_fenics.petsc_options import INPUT_ERROR_CODES, merge_solver_options, prefixed_options
from hmm_fenics.physics import Physics
from hmm_fenics.rve.mesh import RVEMesh
from hmm_fenics.rve.tiling import Window, oversampling_window

OPTIONS_PREFIX = "hmm_micro_"
DEFAULT_OVERSAMPLING = 3.0
"""Periods per axis of an oversampling window when none is given."""
GAMG_THRESHOLD = 5000
SCHUR = "hmm_schur"
"""The attribute of a set-up solver that holds its Neumann Schur complement (Z, S⁻¹)."""


def default_solver_options(dim: int, n_unknowns: int) -> dict[str, Any]:
    """Micro solver defaults, measured fastest here (BENCHMARKS.md).

    MUMPS Cholesky in 2D; in 3D MUMPS LU for small cells (Cholesky is erratic there) and,
    above ``GAMG_THRESHOLD`` unknowns, CG with smoothed-aggregation multigrid: the periodic
    3D factor fills in badly (5 s against 1.4 s at 32k unknowns). rtol 1e-7 leaves the
    effective tensor (energy form) exact to ~1e-14: its error is quadratic in the solve error.
    """
    if dim == 3 and n_unknowns > GAMG_THRESHOLD:
        return {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-7, "ksp_atol": 1e-50}
    return {
        "ksp_type": "preonly",
        "pc_type": "cholesky" if dim == 2 else "lu",
        "pc_factor_mat_solver_type": "mumps",
    }


def solid_phases(
    physics: Physics, rve: RVEMesh, materials: Mapping[str, Material], degree: int
) -> dict[str, Material]:
    """Phase name → material of every meshed phase, after checking materials against phases.

    Raises:
        InputError: a dimension mismatch, a void phase that is meshed, a phase without
            material, a material for no phase, or an unsupported degree.
    """
    if physics.dim != rve.mesh.geometry.dim:
        raise InputError(f"physics is {physics.dim}D but the RVE mesh is {rve.mesh.geometry.dim}D.")
    solid: dict[str, Material] = {
        name: m for name, m in materials.items() if not isinstance(m, Void)
    }
    meshed_voids = sorted((set(materials) - set(solid)) & set(rve.phases))
    if meshed_voids:
        raise InputError(
            f"phase(s) {meshed_voids} are void but meshed; build the RVE with void=True."
        )
    missing = sorted(set(rve.phases) - set(solid))
    if missing:
        raise InputError(
            f"phase(s) {missing} of the RVE have no material; add [materials.<phase>]."
        )
    unknown = sorted(set(solid) - set(rve.phases))
    if unknown:
        raise InputError(
            f"material(s) {unknown} name no phase of the RVE (phases: {sorted(rve.phases)})."
        )
    if degree not in (1, 2, 3):
        raise InputError(f"physics.degree must be 1, 2 or 3, got {degree}.")
    return solid


def cell_domain(
    rve: RVEMesh, bc: str = "periodic", oversampling: float | None = None
) -> tuple[RVEMesh, Window | None]:
    """The mesh a cell of boundary condition ``bc`` is solved on, and its window.

    ``oversampling`` (periods per axis, default ``DEFAULT_OVERSAMPLING``) only with
    ``bc = "oversampling"``: the cell is then solved on a tiled window around it.

    Raises:
        InputError: an unknown ``bc`` or a bad ratio (naming ``micro.bc`` /
            ``micro.oversampling``).
    """
    check_bc(bc, oversampling)
    if bc != "oversampling":
        return rve, None
    window = oversampling_window(
        rve, DEFAULT_OVERSAMPLING if oversampling is None else oversampling
    )
    return window.rve, window


class MicroCore:
    """Function space, boundary map, affine lifts and the reduced solver of one cell template.

    Args:
        physics: ``Diffusion`` or ``Elasticity`` of the RVE's dimension.
        rve: Periodic RVE mesh on ``MPI.COMM_SELF``.
        degree: Lagrange degree of the micro field.
        petsc_options: ``hmm_micro_`` options over ``default_solver_options``.
        iterative: Whether the defaults may choose an iterative solver for a large 3D cell
            (a cell factored once); cells refactored every Newton step stay direct.
        spd: Mark the reduced operator symmetric positive definite (a linear cell).
        bc: The boundary condition (``micro.boundary.BOUNDARY_CONDITIONS``).
        window: For ``oversampling``: the window ``rve`` is (``cell_domain``), which tells
            the inner cell.

    Attributes:
        V: The micro function space.
        boundary: The boundary map (PETSc ``P``, ``n_full``, ``n_independent``, constraints).
        P: The same P as a ``CSRMatrix`` (NumPy products).
        volume: The measure averages are taken over: |Y|, or |Y_in| of a window.
        indicator: DG0 indicator of the inner cell of a window (None: average over all).
        inner_cells: Whether each mesh cell is averaged over, ``(n_cells,)`` (all True
            but for a window).
        U: Nodal values of the affine lifts of the unit gradients, ``(n_full, n)``.
        Kr: The reduced operator Pᵀ K P (None until the first ``reduce``).
        ksp: The ``hmm_micro_`` solver of ``Kr``.
        timings: Seconds per stage, accumulated.
        factorizations: Solver set-ups (numeric factorizations of a direct solver) so far.
    """

    def __init__(
        self,
        physics: Physics,
        rve: RVEMesh,
        degree: int,
        petsc_options: Mapping[str, Any],
        iterative: bool = False,
        spd: bool = False,
        bc: str = "periodic",
        window: Window | None = None,
    ) -> None:
        from dolfinx import fem

        check_bc(bc)
        if (bc == "oversampling") != (window is not None):
            raise ValueError("an oversampling cell needs its window (cell_domain), others none.")
        self.physics, self.rve, self.degree, self.spd = physics, rve, degree, spd
        self.bc, self.window = bc, window
        self.timings: dict[str, float] = {}
        self.factorizations = 0
        clock = time.perf_counter()
        self.V = fem.functionspace(rve.mesh, ("Lagrange", degree, physics.value_shape))
        self.boundary: BoundaryMap = boundary_map(self.V, physics, rve, bc)
        self.P: CSRMatrix = to_csr(self.boundary.P)
        n_nodes = self.V.dofmap.index_map.size_local
        x = self.V.tabulate_dof_coordinates()[:n_nodes, : physics.dim] - rve.lower
        self.U: npt.NDArray[np.float64] = physics.affine_nodal_values(x)
        n_cells = rve.mesh.topology.index_map(rve.mesh.topology.dim).size_local
        self.indicator: Any = None
        self.inner_cells = np.ones(n_cells, dtype=bool)
        self.volume = rve.volume
        if window is not None:
            self.inner_cells = window.inner
            self.volume = window.volume
            self.indicator = fem.Function(fem.functionspace(rve.mesh, ("DG", 0)))
            cell_dofs = self.indicator.function_space.dofmap.list[:n_cells, 0]
            self.indicator.x.array[cell_dofs] = window.inner
        constraints = self.boundary.constraints
        self._normal: Any = None  # (CᵀC)⁻¹ of the Neumann constraints
        if constraints is not None:
            self._normal = np.linalg.inv(constraints.T @ constraints)
        self._average: npt.NDArray[np.float64] | None = self.boundary.average
        self.Kr: Any = None
        self.ksp = PETSc.KSP().create(MPI.COMM_SELF)
        self.ksp.setOptionsPrefix(OPTIONS_PREFIX)
        n_defaults = self.boundary.n_independent if iterative else 0
        self._options = merge_solver_options(
            default_solver_options(physics.dim, n_defaults), dict(petsc_options)
        )
        self.lap("boundary", clock)

    def lap(self, stage: str, since: float) -> float:
        """Add the seconds since ``since`` to ``timings[stage]``; return the time now."""
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - since
        return now

    @property
    def n_dofs(self) -> int:
        """Dofs of the full micro space (before the boundary condition)."""
        return self.boundary.n_full

    @property
    def n_unknowns(self) -> int:
        """Unknowns solved for (after the boundary condition and the pins)."""
        return self.boundary.n_independent

    def reduce(self, K: Any) -> None:
        """Form Kr = Pᵀ K P and (re)factor it; K is the assembled full stiffness.

        The first call forms the product fresh, reads the ``hmm_micro_`` options and sets up
        the solver; later calls reuse the product's pattern (``ptap(result=Kr)``, 3–5× cheaper)
        and refactor numerically.

        Raises:
            MicroFailure: the factorization failed (see ``set_up_solver``).
        """
        clock = time.perf_counter()
        if self.Kr is None:
            self.Kr = K.ptap(self.boundary.P)
            if self.spd:
                self.Kr.setOption(PETSc.Mat.Option.SYMMETRIC, True)
                self.Kr.setOption(PETSc.Mat.Option.SPD, True)
            if self.physics.value_shape:  # near null space for multigrid: the translations
                self._set_translations(self.Kr)
            self.ksp.setOperators(self.Kr)
            clock = self.lap("ptap", clock)
            with prefixed_options(OPTIONS_PREFIX, self._options, "micro"):
                self.ksp.setFromOptions()
                set_up_solver(self.ksp, self.rve)
        else:
            K.ptap(self.boundary.P, result=self.Kr)  # same pattern: reuse the product
            self.ksp.setOperators(self.Kr)
            clock = self.lap("ptap", clock)
            set_up_solver(self.ksp, self.rve)
        self.factorizations += 1
        self.lap("factor", clock)
        self._set_schur(self.ksp)

    def factored_copy(self, K: Any) -> tuple[Any, Any]:
        """A separate reduced operator Pᵀ K P and its own ``hmm_micro_`` solver, set up now.

        For operators kept beside the Newton's (the elastic factorization of a history
        cell); ``reduce`` leaves them alone. Returns ``(Kr, ksp)``; the caller keeps both.

        Raises:
            MicroFailure: the factorization failed (see ``set_up_solver``).
        """
        clock = time.perf_counter()
        Kr = K.ptap(self.boundary.P)
        if self.physics.value_shape:
            self._set_translations(Kr)
        ksp = PETSc.KSP().create(MPI.COMM_SELF)
        ksp.setOptionsPrefix(OPTIONS_PREFIX)
        ksp.setOperators(Kr)
        with prefixed_options(OPTIONS_PREFIX, self._options, "micro"):
            ksp.setFromOptions()
            set_up_solver(ksp, self.rve)
        self.factorizations += 1
        self.lap("factor", clock)
        self._set_schur(ksp)
        return Kr, ksp

    def _set_schur(self, ksp: Any) -> None:
        """Z = Kr⁻¹ C and S⁻¹ = (Cᵀ Z)⁻¹ of a freshly set-up ``ksp``, kept on it (Neumann only).

        n solves per factorization; the pair lives and dies with the solver object.
        """
        C = self.boundary.constraints
        if C is None:
            return
        clock = time.perf_counter()
        Z = solve_columns(ksp, C, self.rve)
        ksp.setAttr(SCHUR, (Z, np.linalg.inv(C.T @ Z)))
        self.lap("solve", clock)

    def free_part(self, reduced: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """A reduced residual without its part in the range of the Neumann constraints.

        The multipliers take that part. ``reduced``: ``(n_independent,)`` or
        ``(n_independent, m)``; returned as it is under the other boundary conditions.
        """
        C = self.boundary.constraints
        if C is None:
            return reduced
        return np.asarray(reduced - C @ (self._normal @ (C.T @ reduced)), dtype=np.float64)

    def free_norm(self, reduced_residual: npt.NDArray[np.float64]) -> float:
        """‖Pᵀ r‖ of the free part (``free_part``): the norm a Newton drives to zero."""
        return float(np.linalg.norm(self.free_part(reduced_residual)))

    @property
    def average_functional(self) -> npt.NDArray[np.float64]:
        """A with Aᵀ u = |Y| ⟨∇u⟩ over the averaging domain, ``(n_full, n)`` (built once)."""
        if self._average is None:
            self._average = gradient_functional(self.V, self.physics, self.rve, self.indicator)
        return self._average

    def hill_mandel(
        self,
        gradients: npt.NDArray[np.float64],
        fluctuations: npt.NDArray[np.float64],
        residuals: npt.NDArray[np.float64],
    ) -> float:
        """Relative Hill–Mandel residual of states (columns j: one macro gradient each).

        Args:
            gradients: G_j, ``(n, m)``.
            fluctuations: Their full fluctuations w_j = P x_j, ``(n_full, m)``.
            residuals: r_j = ∫ σ(u_j) : ∇φ over the averaging domain, ``(n_full, m)``
                (K_avg u_j in a linear cell), u_j = U G_j + w_j.

        Returns:
            max |⟨σ_i:ε_j⟩ − ⟨σ_i⟩·⟨ε_j⟩| / max |⟨σ_i:ε_j⟩| with ⟨σ:ε⟩ = uᵀ r/|Y|,
            ⟨σ⟩ = Uᵀ r/|Y| and ⟨ε⟩ = G + Aᵀ w/|Y| (the affine part counts as G, also where
            pores cut the faces, as in ``coupling.restriction``). Round-off for periodic,
            Dirichlet and Neumann conditions; not zero for oversampling.
        """
        G, w, r = (np.atleast_2d(np.asarray(a).T).T for a in (gradients, fluctuations, residuals))
        return self.hill_mandel_of_sums(G, w, r.T @ (self.U @ G + w), self.U.T @ r)

    def hill_mandel_of_sums(
        self,
        gradients: npt.NDArray[np.float64],
        fluctuations: npt.NDArray[np.float64],
        energies: npt.NDArray[np.float64],
        flux_sums: npt.NDArray[np.float64],
    ) -> float:
        """``hill_mandel`` from the residuals' small products, ``(m, m)`` and ``(n, m)``.

        ``energies`` = rᵀ u (|Y| ⟨σ_i:ε_j⟩) and ``flux_sums`` = Uᵀ r (|Y| ⟨σ_j⟩): what a caller
        keeps to ask later without holding the residuals, ``(n_full, m)``.
        """
        mean_strain = gradients * self.volume + self.average_functional.T @ fluctuations
        mixed = flux_sums.T @ mean_strain / self.volume
        scale = max(np.abs(energies).max(), np.finfo(float).tiny)
        return float(np.abs(energies - mixed).max() / scale)

    def _set_translations(self, Kr: Any) -> None:
        """Give multigrid the rigid modes of the unknowns as the near null space of ``Kr``.

        Node blocks of ``dim`` unknowns: the translations (GAMG adds the rotations from the
        coordinates). Neumann pins break the blocks: the rigid modes restricted to the
        unknowns, Pᵀ R, orthonormalised, without a block size (without them CG + GAMG took
        6× the iterations of the periodic cell).
        """
        dim = self.physics.dim
        if self.boundary.constraints is not None:
            n_nodes = self.V.dofmap.index_map.size_local
            x = self.V.tabulate_dof_coordinates()[:n_nodes, :dim]
            modes = self.P.T @ rigid_modes(
                self.physics, x - 0.5 * (self.rve.lower + self.rve.upper)
            )
            basis, _ = np.linalg.qr(modes)
            vectors = []
            for column in basis.T:
                v = Kr.createVecRight()
                v.array[:] = column
                vectors.append(v)
            Kr.setNearNullSpace(PETSc.NullSpace().create(vectors=vectors, comm=MPI.COMM_SELF))
            return
        Kr.setBlockSize(dim)
        translations = []
        for c in range(dim):
            t = Kr.createVecRight()
            t.array[c::dim] = 1.0
            t.normalize()
            translations.append(t)
        Kr.setNearNullSpace(PETSc.NullSpace().create(vectors=translations, comm=MPI.COMM_SELF))

    @property
    def factor(self) -> Any:
        """The factor matrix of a direct solver (None for an iterative one)."""
        return self.ksp.getPC().getFactorMatrix() if self.ksp.getType() == "preonly" else None

    def solve_reduced(
        self, rhs: npt.NDArray[np.float64], ksp: Any = None
    ) -> npt.NDArray[np.float64]:
        """Solve Kr x = rhs for a vector ``(n_independent,)`` or columns ``(n_independent, m)``.

        ``ksp``: another set-up solver of the same size (``factored_copy``); default ``self.ksp``.

        Returns:
            A new array of the shape of ``rhs``.

        Raises:
            MicroFailure: the iterative solver did not converge.
        """
        clock = time.perf_counter()
        ksp = self.ksp if ksp is None else ksp
        columns = solve_columns(ksp, rhs[:, None] if rhs.ndim == 1 else rhs, self.rve)
        C = self.boundary.constraints
        if C is not None:  # the multipliers' Schur complement: x = y − Z S⁻¹ Cᵀ y
            Z, S_inv = ksp.getAttr(SCHUR)
            columns -= Z @ (S_inv @ (C.T @ columns))
        self.lap("solve", clock)
        return columns[:, 0] if rhs.ndim == 1 else columns

    def tangent(
        self,
        mean: npt.NDArray[np.float64],
        load: npt.NDArray[np.float64],
        ksp: Any = None,
        load_average: npt.NDArray[np.float64] | None = None,
    ) -> npt.NDArray[np.float64]:
        """Consistent macro tangent C_t = (Uᵀ K U − Bᵀ X)/|Y| with X = Kr⁻¹ B (Kr factored).

        Args:
            mean: Uᵀ K_avg U / |Y| (K_avg: over the averaging domain), shape ``(n, n)``.
            load: B = −Pᵀ K U, shape ``(n_independent, n)``.
            ksp: The solver of Kr (default ``self.ksp``).
            load_average: B_in = −Pᵀ K_in U of a window's inner cell (default ``load``).
        """
        X = self.solve_reduced(load, ksp)
        average = load if load_average is None else load_average
        return np.asarray(mean - average.T @ X / self.volume, dtype=np.float64)


def solve_columns(ksp: Any, rhs: npt.NDArray[np.float64], rve: RVEMesh) -> npt.NDArray[np.float64]:
    """Solve the (set-up) ``ksp``'s system for every column of ``rhs``, ``(n, m)`` → ``(n, m)``.

    A direct solve of several columns is one MatMatSolve of the factor (one pass over it for
    all columns), of one column a plain KSPSolve; an iterative one goes column by column,
    each checked, for a KSPMatSolve reports the convergence of its last column only.

    Raises:
        MicroFailure: an iterative solve did not converge.
    """
    B = np.asfortranarray(rhs, dtype=np.float64)
    X = np.zeros_like(B, order="F")
    if ksp.getType() == "preonly" and B.shape[1] > 1:
        Bp = PETSc.Mat().createDense(B.shape, array=B, comm=MPI.COMM_SELF)
        Xp = PETSc.Mat().createDense(X.shape, array=X, comm=MPI.COMM_SELF)
        ksp.matSolve(Bp, Xp)
        Bp.destroy()
        Xp.destroy()
        return X
    for j in range(B.shape[1]):
        b = PETSc.Vec().createWithArray(B[:, j], comm=MPI.COMM_SELF)
        x = PETSc.Vec().createWithArray(X[:, j], comm=MPI.COMM_SELF)
        ksp.solve(b, x)
        check_converged(ksp, rve)
        b.destroy()
        x.destroy()
    return X


def check_converged(ksp: Any, rve: RVEMesh) -> None:
    """Raise if the last solve of the iterative ``ksp`` did not converge."""
    reason = ksp.getConvergedReason()
    if reason < 0:
        raise MicroFailure(
            f"the micro solver ({ksp.getType()}/{ksp.getPC().getType()}) did not converge on "
            f"the {cell_name(rve)}: reason {reason}; check the hmm_micro_ options (e.g. "
            "-hmm_micro_pc_type lu)."
        )


def cell_name(rve: RVEMesh) -> str:
    """How errors name a cell: its file, or its kind, dimension and fraction."""
    spec = rve.spec
    if spec.kind in ("file", "image"):
        return f"cell {spec.path}"
    return f"{spec.dim}D {spec.kind} cell (fraction {spec.fraction:g})"


MUMPS_SINGULAR = (-6, -10)
"""MUMPS INFOG(1) of a structurally or numerically singular matrix."""
MUMPS_MEMORY = (-8, -9, -13, -14, -15, -19, -20)
"""MUMPS INFOG(1) of a workspace or memory limit."""


def set_up_solver(ksp: Any, rve: RVEMesh) -> None:
    """Set up (factor) the micro solver of ``ksp`` and check that the factorization worked.

    PETSc records a failed numeric factorization (a zero pivot, MUMPS INFOG(1) < 0) without
    raising; solving with the failed factor raises an unhelpful library error later, or
    returns garbage. Iterative solvers are checked after each solve instead. Misspelled
    solver types pass through as the ``PETSc.Error`` that ``prefixed_options`` turns into
    an input error.

    Raises:
        MicroFailure: naming the cell, the failure and what to change.
    """
    try:
        ksp.setUp()
    except PETSc.Error as err:
        if getattr(err, "ierr", None) in INPUT_ERROR_CODES:
            raise
        ksp.reset()  # else the failed state sticks: every later setUp is skipped
        raise MicroFailure(
            f"the micro solver set-up failed on the {cell_name(rve)} ({_last_line(err)}): "
            "its stiffness is singular or the solver options do not fit it. Check that every "
            "phase has a positive modulus (conductivity) and that the solid percolates; with "
            "PETSc's own LU on a cell of tiny moduli, scale the units or use MUMPS (the default)."
        ) from err
    pc = ksp.getPC()
    if pc.getType() not in ("lu", "cholesky"):
        return
    reason = int(pc.getFailedReason())
    infog = pc.getFactorMatrix().getMumpsInfog(1) if pc.getFactorSolverType() == "mumps" else 0
    if infog < 0:
        detail = f"MUMPS INFOG(1) = {infog}"
    elif reason != 0:
        names = {v: k for k, v in vars(PETSc.PC.FailedReason).items() if not k.startswith("_")}
        detail = f"PCFailedReason {names.get(reason, reason)}"
    else:
        return
    # FACTOR_STRUCT_ZEROPIVOT, FACTOR_NUMERIC_ZEROPIVOT: a zero pivot of PETSc's own factor
    if infog in MUMPS_SINGULAR or (infog == 0 and reason in (1, 2)):
        advice = (
            "its stiffness is singular. Check that every phase has a positive modulus "
            "(conductivity), that the solid percolates across the cell (no floating inclusion "
            "in a void or zero-stiffness matrix), and that the mesh has no degenerate elements."
        )
    elif infog in MUMPS_MEMORY:
        advice = (
            "MUMPS ran out of workspace or memory. Raise its workspace "
            "(-hmm_micro_mat_mumps_icntl_14 50), lift a memory cap (icntl_23), or use a "
            "coarser cell or CG + GAMG (-hmm_micro_ksp_type cg -hmm_micro_pc_type gamg)."
        )
    else:
        advice = "see the MUMPS or PETSc documentation of this code; try the default solver."
    # PETSc skips the numeric factorization of a PC whose last one failed: without a reset,
    # a retry (a cut-back, the next point) would fail again with a valid matrix
    ksp.reset()
    raise MicroFailure(f"the factorization of the {cell_name(rve)} failed ({detail}): {advice}")


def _last_line(error: Exception) -> str:
    """The reason in a PETSc error message (its last line), without the call stack."""
    lines = str(error).strip().splitlines()
    return lines[-1].removeprefix("[0]").strip() if lines else type(error).__name__

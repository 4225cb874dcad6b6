# petsc4py's stubs reject the NumPy arrays and mpi4py communicators it accepts at run time.
# mypy: disable-error-code="arg-type, assignment, operator, index"
"""The micro core: what every periodic cell problem shares, set up once per template.

A cell problem (linear, nonlinear, with history) is a function space V on the RVE, the
periodic prolongation P (n_full × n_independent, origin corner pinned), the nodal values U
of the affine lifts of the unit macro gradients (n_full × n), and the ``hmm_micro_`` solver
of the reduced operator Pᵀ K P. With K the (tangent) stiffness of the full space:

    lifting:   Pᵀ K P X = B,   B = −Pᵀ K U
    averaging: C_t = (Uᵀ K U − Bᵀ X) / |Y|

the consistent macro tangent (the effective tensor of a linear cell). ``MicroCore`` holds
these pieces and the operations on them; the cell problems add their forms and answers.
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
from hmm_fenics.micro.sparse import CSRMatrix, to_csr
from hmm_fenics.petsc_options import INPUT_ERROR_CODES, merge_solver_options, prefixed_options
from hmm_fenics.physics import Physics
from hmm_fenics.rve.mesh import RVEMesh
from hmm_fenics.rve.periodic import PeriodicMap, periodic_map

OPTIONS_PREFIX = "hmm_micro_"
GAMG_THRESHOLD = 5000


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


class MicroCore:
    """Function space, periodic map, affine lifts and the reduced solver of one cell template.

    Args:
        physics: ``Diffusion`` or ``Elasticity`` of the RVE's dimension.
        rve: Periodic RVE mesh on ``MPI.COMM_SELF``.
        degree: Lagrange degree of the micro field.
        petsc_options: ``hmm_micro_`` options over ``default_solver_options``.
        iterative: Whether the defaults may choose an iterative solver for a large 3D cell
            (a cell factored once); cells refactored every Newton step stay direct.
        spd: Mark the reduced operator symmetric positive definite (a linear cell).

    Attributes:
        V: The micro function space.
        periodic: The periodic prolongation (PETSc ``P``, ``n_full``, ``n_independent``).
        P: The same P as a ``CSRMatrix`` (NumPy products).
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
    ) -> None:
        from dolfinx import fem

        self.physics, self.rve, self.degree, self.spd = physics, rve, degree, spd
        self.timings: dict[str, float] = {}
        self.factorizations = 0
        clock = time.perf_counter()
        self.V = fem.functionspace(rve.mesh, ("Lagrange", degree, physics.value_shape))
        self.periodic: PeriodicMap = periodic_map(self.V, rve.lower, rve.upper)
        self.P: CSRMatrix = to_csr(self.periodic.P)
        n_nodes = self.V.dofmap.index_map.size_local
        x = self.V.tabulate_dof_coordinates()[:n_nodes, : physics.dim] - rve.lower
        self.U: npt.NDArray[np.float64] = physics.affine_nodal_values(x)
        self.Kr: Any = None
        self.ksp = PETSc.KSP().create(MPI.COMM_SELF)
        self.ksp.setOptionsPrefix(OPTIONS_PREFIX)
        n_defaults = self.periodic.n_independent if iterative else 0
        self._options = merge_solver_options(
            default_solver_options(physics.dim, n_defaults), dict(petsc_options)
        )
        self.lap("periodic", clock)

    def lap(self, stage: str, since: float) -> float:
        """Add the seconds since ``since`` to ``timings[stage]``; return the time now."""
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - since
        return now

    @property
    def n_dofs(self) -> int:
        """Dofs of the full micro space (before periodicity)."""
        return self.periodic.n_full

    @property
    def n_unknowns(self) -> int:
        """Unknowns solved for (periodic, origin pinned)."""
        return self.periodic.n_independent

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
            self.Kr = K.ptap(self.periodic.P)
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
            K.ptap(self.periodic.P, result=self.Kr)  # same pattern: reuse the product
            self.ksp.setOperators(self.Kr)
            clock = self.lap("ptap", clock)
            set_up_solver(self.ksp, self.rve)
        self.factorizations += 1
        self.lap("factor", clock)

    def factored_copy(self, K: Any) -> tuple[Any, Any]:
        """A separate reduced operator Pᵀ K P and its own ``hmm_micro_`` solver, set up now.

        For operators kept beside the Newton's (the elastic factorization of a history
        cell); ``reduce`` leaves them alone. Returns ``(Kr, ksp)``; the caller keeps both.

        Raises:
            MicroFailure: the factorization failed (see ``set_up_solver``).
        """
        clock = time.perf_counter()
        Kr = K.ptap(self.periodic.P)
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
        return Kr, ksp

    def _set_translations(self, Kr: Any) -> None:
        dim = self.physics.dim
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
        if rhs.ndim == 1:
            out = solve_columns(ksp, rhs[:, None], self.rve)[:, 0]
        else:
            out = solve_columns(ksp, rhs, self.rve)
        self.lap("solve", clock)
        return out

    def tangent(
        self, mean: npt.NDArray[np.float64], load: npt.NDArray[np.float64], ksp: Any = None
    ) -> npt.NDArray[np.float64]:
        """Consistent macro tangent C_t = (Uᵀ K U − Bᵀ X)/|Y| with X = Kr⁻¹ B (Kr factored).

        Args:
            mean: Uᵀ K U / |Y|, shape ``(n, n)``.
            load: B = −Pᵀ K U, shape ``(n_independent, n)``.
            ksp: The solver of Kr (default ``self.ksp``).
        """
        X = self.solve_reduced(load, ksp)
        return np.asarray(mean - load.T @ X / self.rve.volume, dtype=np.float64)


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
    if spec.kind == "file":
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

# petsc4py's stubs reject the NumPy arrays and mpi4py communicators it accepts at run time.
# mypy: disable-error-code="arg-type, assignment, operator, index"
"""The affine-periodic cell problem: compiled once, factored once, queried for any gradient.

For a macro gradient G (Mandel vector) the micro field is u = u_G + w: u_G(y) = G·(y − O) is
the affine lift (interpolated exactly by Lagrange elements) and w the periodic fluctuation,
pinned at the origin corner O. With K the stiffness of the full space, P the periodic
prolongation and U the nodal values of the affine lifts of the unit gradients
(``n_full × n``), everything follows from K alone:

    lifting:      Pᵀ K P x = B G,   B = −Pᵀ K U               (one factorization, many G)
    restriction:  ⟨σ⟩ = ⟨C⟩ G − Bᵀ x / |Y|,   ⟨C⟩ = Uᵀ K U / |Y|

so C_hom = ⟨C⟩ − Bᵀ X / |Y| with X the fluctuations of all unit gradients. The
volume averages are recovered without any extra assembly; ``coupling.restriction`` checks
them against explicitly integrated fields (Hill–Mandel).
"""

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError, MicroFailure, point_label
from hmm_fenics.materials import NONLINEAR, Law, Material, Void
from hmm_fenics.micro.sparse import to_csr
from hmm_fenics.petsc_options import INPUT_ERROR_CODES, merge_solver_options, prefixed_options
from hmm_fenics.physics import Physics
from hmm_fenics.rve.mesh import RVEMesh
from hmm_fenics.rve.periodic import PeriodicMap, periodic_map

OPTIONS_PREFIX = "hmm_micro_"
GAMG_THRESHOLD = 5000
DIRECT_RESIDUAL = 1e-8
"""Largest relative residual of a direct solve of the unit problems (MUMPS gives ~1e-14)."""


class MicroResponse(NamedTuple):
    """Volume-averaged micro response to a batch of macro gradients.

    Attributes:
        flux: Averaged flux/stress, shape ``(n_points, n_components)`` (Mandel for elasticity).
        tangent: d flux / d gradient, shape ``(n_points, n_components, n_components)``.
    """

    flux: npt.NDArray[np.float64]
    tangent: npt.NDArray[np.float64]


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


def phase_laws(
    physics: Physics, rve: RVEMesh, materials: Mapping[str, Material], degree: int
) -> dict[int, Law]:
    """Cell tag → UFL law of every meshed phase, after checking materials against phases.

    Raises:
        InputError: a dimension mismatch, a void phase that is meshed, a phase without
            material, a material for no phase, or an unsupported degree.
    """
    if physics.dim != rve.mesh.geometry.dim:
        raise InputError(f"physics is {physics.dim}D but the RVE mesh is {rve.mesh.geometry.dim}D.")
    solid = {name: m for name, m in materials.items() if not isinstance(m, Void)}
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
    return {rve.phases[name]: material.law(rve.mesh, physics) for name, material in solid.items()}


def cell_problem(
    physics: Physics,
    rve: RVEMesh,
    materials: Mapping[str, Material],
    degree: int = 1,
    petsc_options: Mapping[str, Any] | None = None,
) -> "CellProblem":
    """Compile, assemble and factor the periodic cell problem of ``rve``.

    Args:
        physics: ``Diffusion`` or ``Elasticity`` of the RVE's dimension.
        rve: Periodic RVE mesh on ``MPI.COMM_SELF``.
        materials: Phase name → material, one per phase of ``rve.phases``.
        degree: Lagrange degree of the micro field.
        petsc_options: Options for the ``hmm_micro_`` solver, over ``default_solver_options``
            (which are chosen per problem: ``ksp_type`` and ``pc_type`` given here replace the
            whole default choice).

    Raises:
        InputError: a phase without material, a material for no phase, a dimension mismatch.
    """
    nonlinear = sorted(name for name, m in materials.items() if isinstance(m, NONLINEAR))
    if nonlinear:
        raise InputError(
            f"phase(s) {nonlinear} are nonlinear: use nonlinear_cell_problem (a micro Newton solve)."
        )
    laws = phase_laws(physics, rve, materials, degree)
    return CellProblem(physics, rve, laws, degree, dict(petsc_options or {}))


class CellProblem:
    """A factored periodic cell problem; build it with :func:`cell_problem`.

    Attributes:
        physics, rve, laws, degree: What it was built from (laws: cell tag → UFL law).
        V: The micro function space.
        periodic: The periodic prolongation.
        mean_tensor: ⟨C⟩ (Voigt average), shape ``(n, n)``.
        effective_tensor: C_hom from the energy of the unit fluctuations, shape ``(n, n)``
            (Mandel for elasticity); symmetric by construction.
        flux_tensor: C_hom from the averaged fluxes ⟨C⟩ − BᵀX/|Y|; equal to
            ``effective_tensor`` up to the solve error (linear in it, where the energy form
            is quadratic): a check of the solve, not what ``query`` uses.
        timings: Seconds per set-up stage.
    """

    def __init__(
        self,
        physics: Physics,
        rve: RVEMesh,
        laws: dict[int, Law],
        degree: int,
        petsc_options: dict[str, Any],
    ) -> None:
        import ufl
        from dolfinx import fem
        from dolfinx.fem import petsc as fem_petsc

        self.physics, self.rve, self.laws, self.degree = physics, rve, laws, degree
        self.timings: dict[str, float] = {}
        clock = time.perf_counter()
        mesh = rve.mesh
        self.V = fem.functionspace(mesh, ("Lagrange", degree, physics.value_shape))
        self.dx = ufl.Measure("dx", domain=mesh, subdomain_data=rve.cell_tags)
        u, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        grad = physics.gradient
        a = sum(
            (ufl.inner(law(grad(u)), grad(v)) * self.dx(tag) for tag, law in laws.items()),
            start=ufl.as_ufl(0) * self.dx,
        )
        form = fem.form(a)
        clock = self._lap("compile", clock)

        K = fem_petsc.assemble_matrix(form)
        K.assemble()
        clock = self._lap("assemble", clock)

        self.periodic: PeriodicMap = periodic_map(self.V, rve.lower, rve.upper)
        n_nodes = self.V.dofmap.index_map.size_local
        x = self.V.tabulate_dof_coordinates()[:n_nodes, : physics.dim] - rve.lower
        U = physics.affine_nodal_values(x)  # (n_full, n)
        KU = to_csr(K) @ U
        self.mean_tensor = U.T @ KU / rve.volume
        # B = −Pᵀ K U: the lifting of the unit gradients, shape (n_independent, n), F-ordered.
        self.load = np.asfortranarray(-(to_csr(self.periodic.P).T @ KU))
        self.Kr = K.ptap(self.periodic.P)
        self.Kr.setOption(PETSc.Mat.Option.SYMMETRIC, True)
        self.Kr.setOption(PETSc.Mat.Option.SPD, True)
        K.destroy()
        clock = self._lap("ptap", clock)

        self.ksp = PETSc.KSP().create(MPI.COMM_SELF)
        self.ksp.setOperators(self.Kr)
        self.ksp.setOptionsPrefix(OPTIONS_PREFIX)
        petsc_options = merge_solver_options(
            default_solver_options(physics.dim, self.periodic.n_independent), petsc_options
        )
        if physics.value_shape:  # near null space for algebraic multigrid: the translations
            self.Kr.setBlockSize(physics.dim)
            translations = []
            for c in range(physics.dim):
                t = self.Kr.createVecRight()
                t.array[c :: physics.dim] = 1.0
                t.normalize()
                translations.append(t)
            self.Kr.setNearNullSpace(
                PETSc.NullSpace().create(vectors=translations, comm=MPI.COMM_SELF)
            )
        with prefixed_options(OPTIONS_PREFIX, petsc_options, "micro"):
            self.ksp.setFromOptions()
            set_up_solver(self.ksp, rve)
        # A direct solver's factor is applied without the KSP layer; iterative ones use the KSP.
        self._factor = (
            self.ksp.getPC().getFactorMatrix() if self.ksp.getType() == "preonly" else None
        )
        clock = self._lap("factor", clock)

        n = physics.n_components
        X = self.solve(self.load)
        BX = self.load.T @ X
        # Two estimators of C_hom from the same fluctuations. The flux average ⟨C⟩ − BᵀX/|Y|
        # is what a query returns; its error is linear in the solve error. The energy
        # (Galerkin) form (U + PX)ᵀ K (U + PX)/|Y| is symmetric by construction and its error
        # is quadratic, so an iterative solve at rtol 1e-7 still gives C_hom to ~1e-14.
        KX = to_csr(self.Kr) @ X
        self.flux_tensor = self.mean_tensor - BX / rve.volume
        self.effective_tensor = self.mean_tensor - (BX + BX.T - X.T @ KX) / rve.volume
        residual = float(np.linalg.norm(KX - self.load) / np.linalg.norm(self.load))
        if self._factor is not None and not residual < DIRECT_RESIDUAL:
            raise MicroFailure(
                f"the direct solver's unit solutions of the {cell_name(rve)} have a relative "
                f"residual {residual:.2e} (an exact factorization gives round-off): an "
                "incomplete factorization (ilu/icc) given as a direct solver, or a numerically "
                "singular cell. Use lu/cholesky with MUMPS (the default), or an iterative "
                "ksp_type with that preconditioner."
            )
        if not (np.isfinite(X).all() and np.isfinite(self.effective_tensor).all()):
            raise MicroFailure(
                f"the {cell_name(rve)} gave a non-finite effective tensor: its stiffness is "
                "singular or the solver failed silently. Check that every phase has a positive, "
                "finite modulus (conductivity) and that the solid percolates; or try "
                "-hmm_micro_pc_type lu."
            )
        self._unit_fluctuations = X
        self._tangent = self.effective_tensor.copy()
        self._tangent.flags.writeable = False
        self._lap("solve", clock)
        self._n = n

    def _lap(self, stage: str, since: float) -> float:
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

    def solve(self, rhs: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Solve Pᵀ K P x = rhs with the stored factorization (or the iterative solver).

        Several right-hand sides are one MatMatSolve (one pass over the factors).

        Args:
            rhs: Right-hand sides, shape ``(n_independent, m)``.

        Returns:
            Reduced fluctuations, shape ``(n_independent, m)`` (a new array).

        Raises:
            MicroFailure: the iterative solver did not converge.
        """
        return solve_columns(self.ksp, rhs, self.rve)

    def query(self, gradients: npt.NDArray[np.float64]) -> MicroResponse:
        """Averaged flux and tangent for macro gradients, from the stored unit solutions.

        The cell is linear, so the flux of any gradient is the combination of the unit
        responses: ⟨σ⟩ = ⟨C⟩ G − Bᵀ X G / |Y| = C_hom G, with no solve per point. The
        energy form of C_hom (``effective_tensor``) is used for the flux and the tangent
        alike: the response is then exactly linear and its tangent consistent, also when
        the unit solutions come from an iterative solver (whose answer is not linear in
        the right-hand side), so a macro Newton reaches any tolerance.

        Args:
            gradients: Macro gradients, shape ``(n_points, n_components)`` or
                ``(n_components,)`` (Mandel for elasticity).

        Returns:
            ``MicroResponse`` with ``flux`` of shape ``(n_points, n_components)`` and a
            read-only ``tangent`` view of shape ``(n_points, n_components, n_components)``.
        """
        G = np.asarray(gradients, dtype=np.float64)
        if G.ndim == 1:
            G = G[None, :]
        if G.ndim != 2 or G.shape[1] != self._n:
            raise ValueError(f"gradients must have shape (n_points, {self._n}), got {G.shape}.")
        flux = G @ self._tangent.T
        tangent = np.broadcast_to(self._tangent, (len(G), self._n, self._n))
        return MicroResponse(flux, tangent)

    def fluctuation(self, gradient: npt.NDArray[np.float64]) -> Any:
        """The periodic fluctuation w of one macro gradient as a DOLFINx ``Function``."""
        from dolfinx import fem

        G = np.asarray(gradient, dtype=np.float64).reshape(self._n)
        w = fem.Function(self.V)
        xr = self._unit_fluctuations @ G
        full = w.x.petsc_vec
        self.periodic.P.mult(PETSc.Vec().createWithArray(xr, comm=MPI.COMM_SELF), full)
        w.x.scatter_forward()
        return w


def solve_columns(ksp: Any, rhs: npt.NDArray[np.float64], rve: RVEMesh) -> npt.NDArray[np.float64]:
    """Solve the (set-up) ``ksp``'s system for every column of ``rhs``, ``(n, m)`` → ``(n, m)``.

    A direct solve is one MatMatSolve of the factor (one pass over it for all columns); an
    iterative one goes column by column, each checked, for a KSPMatSolve reports the
    convergence of its last column only.

    Raises:
        MicroFailure: an iterative solve did not converge.
    """
    B = np.asfortranarray(rhs, dtype=np.float64)
    X = np.zeros_like(B, order="F")
    if ksp.getType() == "preonly":
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
    raise MicroFailure(f"the factorization of the {cell_name(rve)} failed ({detail}): {advice}")


def _last_line(error: Exception) -> str:
    """The reason in a PETSc error message (its last line), without the call stack."""
    lines = str(error).strip().splitlines()
    return lines[-1].removeprefix("[0]").strip() if lines else type(error).__name__


def check_finite(
    response: MicroResponse,
    gradients: npt.NDArray[np.float64],
    points: npt.NDArray[np.float64],
    ids: npt.NDArray[np.int64] | None = None,
) -> MicroResponse:
    """``response`` if every flux and tangent is finite, else a ``MicroFailure`` naming the point.

    Args:
        response: Flux ``(n, c)`` and tangent ``(n, c, c)`` of a batch.
        gradients: The batch's gradients ``(n, c)``.
        points: Their coordinates ``(n, gdim)``.
        ids: Their global indices, if known.
    """
    bad = ~(
        np.isfinite(response.flux).all(axis=1)
        & np.isfinite(response.tangent.reshape(len(response.flux), -1)).all(axis=1)
    )
    if bad.any():
        i = int(np.argmax(bad))
        error = MicroFailure(
            f"non-finite micro response at {point_label(i, points, ids)} for the macro gradient "
            f"{np.round(gradients[i], 8).tolist()} ({int(bad.sum())} point(s) in all): a "
            "non-finite macro gradient (a diverging macro Newton: lower the load step) or a "
            "failed micro solve."
        )
        error.point = i
        raise error
    return response

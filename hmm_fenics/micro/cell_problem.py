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

import functools
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.materials import NONLINEAR, Law, Material, Void
from hmm_fenics.micro.sparse import to_csr
from hmm_fenics.petsc_options import merge_solver_options, prefixed_options
from hmm_fenics.physics import Physics
from hmm_fenics.rve.mesh import RVEMesh
from hmm_fenics.rve.periodic import PeriodicMap, periodic_map

OPTIONS_PREFIX = "hmm_micro_"
GAMG_THRESHOLD = 5000


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
        flux_tensor: C_hom from the averaged fluxes (what ``query`` returns for unit
            gradients); equal to ``effective_tensor`` up to the solve error.
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
            self.ksp.setUp()
        # A direct solver's factor is applied without the KSP layer; iterative ones use the KSP.
        self._factor = (
            self.ksp.getPC().getFactorMatrix() if self.ksp.getType() == "preonly" else None
        )
        clock = self._lap("factor", clock)

        n = physics.n_components
        self._workspaces: dict[int, tuple[Any, ...]] = {}
        self._load_per_volume = self.load / rve.volume
        X = self.solve(self.load)
        BX = self.load.T @ X
        # Two estimators of C_hom from the same fluctuations. The flux average ⟨C⟩ − BᵀX/|Y|
        # is what a query returns; its error is linear in the solve error. The energy
        # (Galerkin) form (U + PX)ᵀ K (U + PX)/|Y| is symmetric by construction and its error
        # is quadratic, so an iterative solve at rtol 1e-7 still gives C_hom to ~1e-14.
        KX = to_csr(self.Kr) @ X
        self.flux_tensor = self.mean_tensor - BX / rve.volume
        self.effective_tensor = self.mean_tensor - (BX + BX.T - X.T @ KX) / rve.volume
        self._unit_fluctuations = X
        self._mean_tensor_t = self.mean_tensor.T.copy()
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

    def _workspace(self, m: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], Any]:
        """Right-hand side and solution blocks for ``m`` columns, wrapped for PETSc once.

        Returns ``(B, X, apply)``: F-ordered arrays of shape ``(n_independent, m)`` and a
        callable that solves for X in place (MatSolve for m = 1, MatMatSolve otherwise, on
        PETSc views that share the arrays' memory), so a query pays no set-up.
        """
        if m not in self._workspaces:
            if len(self._workspaces) > 8:  # keep a few batch sizes only
                self._workspaces.clear()
            B = np.zeros((self.n_unknowns, m), order="F")
            X = np.zeros((self.n_unknowns, m), order="F")
            solver = self.ksp if self._factor is None else self._factor
            if m == 1:
                Bp = PETSc.Vec().createWithArray(B[:, 0], comm=MPI.COMM_SELF)
                Xp = PETSc.Vec().createWithArray(X[:, 0], comm=MPI.COMM_SELF)
                apply = functools.partial(solver.solve, Bp, Xp)
            else:
                Bp = PETSc.Mat().createDense(B.shape, array=B, comm=MPI.COMM_SELF)
                Xp = PETSc.Mat().createDense(X.shape, array=X, comm=MPI.COMM_SELF)
                apply = functools.partial(solver.matSolve, Bp, Xp)
            if self._factor is None:
                apply = functools.partial(self._checked, apply)
            self._workspaces[m] = (B, X, apply)
        return self._workspaces[m]

    def _checked(self, apply: Any) -> None:
        """Run an iterative solve and fail loudly if it did not converge."""
        apply()
        if self.ksp.getConvergedReason() < 0:
            raise RuntimeError(
                f"the micro solver ({self.ksp.getType()}/{self.ksp.getPC().getType()}) did not "
                f"converge: reason {self.ksp.getConvergedReason()}; check the hmm_micro_ options."
            )

    def solve(self, rhs: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Solve Pᵀ K P x = rhs with the stored factorization (or the iterative solver).

        One right-hand side is a MatSolve, several a MatMatSolve (one pass over the factors).

        Args:
            rhs: Right-hand sides, shape ``(n_independent, m)``.

        Returns:
            Reduced fluctuations, shape ``(n_independent, m)`` (a new array).
        """
        B, X, apply = self._workspace(rhs.shape[1])
        B[:] = rhs
        apply()
        return X.copy()

    def query(self, gradients: npt.NDArray[np.float64]) -> MicroResponse:
        """Averaged flux and tangent for macro gradients, reusing the factorization.

        Each gradient is lifted to the cell (right-hand side B G), its fluctuation solved
        for, and the flux volume-averaged (⟨C⟩ G − Bᵀ x / |Y|); the tangent of this linear
        cell is ``effective_tensor``.

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
        B, X, apply = self._workspace(len(G))
        np.matmul(self.load, G.T, out=B)
        apply()
        flux = G @ self._mean_tensor_t - X.T @ self._load_per_volume
        tangent = (
            self._tangent[None]
            if len(G) == 1
            else np.broadcast_to(self._tangent, (len(G), self._n, self._n))
        )
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

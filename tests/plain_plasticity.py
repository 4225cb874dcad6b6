"""A plain DOLFINx small-strain J2 plasticity solver: the independent reference of the FE² tests.

Written without hmm_fenics' laws (no ``point_laws``, no ``materials``): its own radial return
in full 3 × 3 tensor notation (no Mandel vectors), vectorized in NumPy over the quadrature
points, with stress and algorithmic tangent stored in quadrature functions.

Law: von Mises yield f = q(s − α) − (σ_y + H_iso p), q(ξ) = √(3/2 ξ:ξ), associative flow
ε̇ᵖ = ṗ n with n = (3/2) ξ/q, linear isotropic hardening H_iso and linear kinematic (Prager)
hardening α̇ = (2/3) H_kin ε̇ᵖ. Backward-Euler return: Δp = f_trial / (3μ + H_iso + H_kin).
Algorithmic tangent, N = ξ_trial/|ξ_trial|, H = H_iso + H_kin:

    C_alg = C − 6μ²/(3μ + H) N⊗N − (6μ² Δp / q_trial) (P_dev − N⊗N).

2D meshes are plane strain: the 3D strain has ε33 = ε13 = ε23 = 0 and the 3D plastic strain,
backstress and σ33 are carried in full; the in-plane blocks go into the forms. Dirichlet values
are scaled by a load factor; each step is solved by Newton's method from the last converged
state (the internal variables are committed only after convergence).
"""

from collections.abc import Mapping, Sequence
from typing import Any

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np

import hmm_fenics  # noqa: F401  (the wheel's MPI library before DOLFINx)

I2 = np.eye(3)
I4_SYM = 0.5 * (np.einsum("ik,jl->ijkl", I2, I2) + np.einsum("il,jk->ijkl", I2, I2))
I_I = np.einsum("ij,kl->ijkl", I2, I2)
P_DEV = I4_SYM - I_I / 3.0


class NewtonError(RuntimeError):
    """Newton's method did not converge in a step: the load factor and the residual history."""

    def __init__(self, factor: float, residuals: list[float]) -> None:
        super().__init__(f"Newton did not converge at load factor {factor}: residuals {residuals}.")
        self.factor, self.residuals = factor, residuals


class J2:
    """Small-strain J2 law with linear isotropic and kinematic hardening, 3 × 3 tensors.

    State per point: plastic strain εᵖ ``(m, 3, 3)``, backstress α ``(m, 3, 3)``,
    equivalent plastic strain p ``(m,)``.
    """

    def __init__(self, E: float, nu: float, sigma_y: float, H_iso: float, H_kin: float) -> None:
        self.lam = E * nu / ((1 + nu) * (1 - 2 * nu))
        self.mu = E / (2 * (1 + nu))
        self.sigma_y, self.H_iso, self.H_kin = sigma_y, H_iso, H_kin
        self.C = self.lam * I_I + 2 * self.mu * I4_SYM

    def update(
        self, strain: np.ndarray, eps_p: np.ndarray, alpha: np.ndarray, p: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Stress, tangent and new (εᵖ, α, p) at total strain ``strain`` ``(m, 3, 3)``."""
        mu = self.mu
        elastic = strain - eps_p
        trace = np.trace(elastic, axis1=1, axis2=2)
        stress = self.lam * trace[:, None, None] * I2 + 2 * mu * elastic
        s = stress - (np.trace(stress, axis1=1, axis2=2) / 3.0)[:, None, None] * I2
        xi = s - alpha
        norm = np.sqrt(np.einsum("mij,mij->m", xi, xi))
        q = np.sqrt(1.5) * norm
        f = q - (self.sigma_y + self.H_iso * p)
        H = self.H_iso + self.H_kin
        tangent = np.broadcast_to(self.C, (len(strain), 3, 3, 3, 3)).copy()
        eps_p, alpha, p = eps_p.copy(), alpha.copy(), p.copy()
        yielding = f > 0
        if np.any(yielding):
            y = yielding
            dp = f[y] / (3 * mu + H)
            N = xi[y] / norm[y][:, None, None]
            flow = np.sqrt(1.5) * N  # n = (3/2) ξ/q, |n| = √(3/2)
            stress[y] -= 2 * mu * dp[:, None, None] * flow
            eps_p[y] += dp[:, None, None] * flow
            alpha[y] += (2.0 / 3.0) * self.H_kin * dp[:, None, None] * flow
            p[y] += dp
            NN = np.einsum("mij,mkl->mijkl", N, N)
            theta = 6 * mu**2 * dp / q[y]
            tangent[y] -= (6 * mu**2 / (3 * mu + H)) * NN
            tangent[y] -= theta[:, None, None, None, None] * (P_DEV - NN)
        return stress, tangent, eps_p, alpha, p


def solve_plasticity(
    mesh: Any,
    facet_tags: Any,
    dirichlet: Mapping[int, Sequence[float | None]],
    E: float,
    nu: float,
    sigma_y: float,
    H_iso: float = 0.0,
    H_kin: float = 0.0,
    factors: Sequence[float] = (1.0,),
    quadrature_degree: int = 2,
    degree: int = 1,
    reaction_tags: Sequence[int] | None = None,
    rtol: float = 1e-10,
    atol: float | None = None,
    max_iterations: int = 25,
    tangent: str = "consistent",
    line_search: bool = True,
) -> list[dict[str, Any]]:
    """Solve the small-strain J2 problem along a load-factor path.

    Args:
        mesh: DOLFINx mesh, 2D (plane strain) or 3D, on any communicator.
        facet_tags: Facet ``MeshTags`` of the boundaries.
        dirichlet: Facet tag → prescribed displacement per component at load factor 1
            (``None`` for a free component); the value at a step is factor × given.
        E, nu: Young's modulus and Poisson's ratio.
        sigma_y: Initial yield stress (von Mises).
        H_iso, H_kin: Linear isotropic and kinematic (Prager) hardening moduli.
        factors: Load factor of each step (any path: load, unload, reverse).
        quadrature_degree: Degree of the (default basix) quadrature rule of the forms and of
            the stress/tangent quadrature functions.
        degree: Lagrange degree of the displacement.
        reaction_tags: Boundaries whose reactions are reported (default: the Dirichlet ones).
        rtol, atol: Newton stops when ‖R‖ ≤ rtol ‖R₀‖ or ‖R‖ ≤ atol, R the residual with the
            Dirichlet rows removed and R₀ the predictor's, R(uₙ) + J(g − uₙ) (J the last
            converged tangent, g the new boundary values, uₙ the last solution). Default atol:
            1e-14 E |Ω|^((d−1)/d), the force of a strain of 1e-14.
        max_iterations: Newton iterations per step before ``NewtonError``.
        tangent: ``"consistent"`` (the algorithmic tangent) or ``"elastic"`` (C everywhere:
            a modified Newton method, linearly convergent; for the tests' negative control).
        line_search: Halve a Newton update (up to 10 times) while it does not decrease ‖R‖;
            the converged state is the same, only large steps past a limit load need it.

    Returns:
        One dict per step: ``factor``; ``reactions`` (tag → array of d components: the residual
        tested with each component of the boundary's indicator, summed over ranks; dofs on two
        tagged boundaries count for both); ``u`` (copy of the owned displacement dofs);
        ``displacement`` (a copy of the ``fem.Function``); ``residuals`` (‖R‖ per Newton
        iteration, first R₀); ``p_max`` (largest equivalent plastic
        strain over all ranks).
    """
    import basix
    import basix.ufl
    import ufl
    from dolfinx import fem
    from dolfinx.fem import petsc as fem_petsc

    if tangent not in ("consistent", "elastic"):
        raise ValueError(f"tangent must be 'consistent' or 'elastic', got {tangent!r}.")
    comm = mesh.comm
    d = mesh.geometry.dim
    tdim = mesh.topology.dim
    law = J2(E, nu, sigma_y, H_iso, H_kin)
    V = fem.functionspace(mesh, ("Lagrange", degree, (d,)))
    u = fem.Function(V, name="u")
    cell = mesh.basix_cell()
    points, _ = basix.make_quadrature(cell, quadrature_degree)
    n_qp = len(points)
    Q_s = fem.functionspace(
        mesh, basix.ufl.quadrature_element(cell, value_shape=(d, d), degree=quadrature_degree)
    )
    Q_t = fem.functionspace(
        mesh,
        basix.ufl.quadrature_element(cell, value_shape=(d, d, d, d), degree=quadrature_degree),
    )
    stress_q, tangent_q = fem.Function(Q_s), fem.Function(Q_t)
    dx = ufl.Measure(
        "dx",
        domain=mesh,
        metadata={"quadrature_degree": quadrature_degree, "quadrature_scheme": "default"},
    )

    def eps(w: Any) -> Any:
        return ufl.sym(ufl.grad(w))

    v, du = ufl.TestFunction(V), ufl.TrialFunction(V)
    i, j, k, ll = ufl.indices(4)
    residual_form = fem.form(ufl.inner(stress_q, eps(v)) * dx)
    jacobian_form = fem.form(
        ufl.as_tensor(tangent_q[i, j, k, ll] * eps(du)[k, ll], (i, j))[i, j] * eps(v)[i, j] * dx
    )
    strain_expression = fem.Expression(eps(u), points)

    # every local cell (owned and ghost): the ghosts' values are then right without a scatter
    index_map = mesh.topology.index_map(tdim)
    cells = np.arange(index_map.size_local + index_map.num_ghosts, dtype=np.int32)
    owned_points = index_map.size_local * n_qp
    blocks = Q_s.dofmap.list[cells].ravel()
    blocks_t = Q_t.dofmap.list[cells].ravel()
    m = len(cells) * n_qp
    committed = (np.zeros((m, 3, 3)), np.zeros((m, 3, 3)), np.zeros(m))
    trial = committed

    def evaluate() -> None:
        """Trial stress/tangent/state of the current u from the committed state."""
        nonlocal trial
        values = strain_expression.eval(mesh, cells) if len(cells) else np.zeros((0,))
        strain = np.zeros((m, 3, 3))
        strain[:, :d, :d] = np.asarray(values).reshape(m, d, d)
        stress, C_alg, *state = law.update(strain, *committed)
        if tangent == "elastic":
            C_alg = np.broadcast_to(law.C, C_alg.shape)
        trial = tuple(state)
        stress_q.x.array.reshape(-1, d * d)[blocks] = stress[:, :d, :d].reshape(m, -1)
        tangent_q.x.array.reshape(-1, d**4)[blocks_t] = C_alg[:, :d, :d, :d, :d].reshape(m, -1)

    # Dirichlet conditions following the load factor
    fdim = tdim - 1
    loads: list[tuple[Any, float]] = []
    bcs = []
    for tag, given in dirichlet.items():
        if len(given) != d:
            raise ValueError(f"dirichlet[{tag}]: give {d} components (None for free).")
        facets = facet_tags.find(tag)
        for c, g in enumerate(given):
            if g is None:
                continue
            constant = fem.Constant(mesh, PETSc.ScalarType(0.0))
            loads.append((constant, float(g)))
            dofs = fem.locate_dofs_topological(V.sub(c), fdim, facets)
            bcs.append(fem.dirichletbc(constant, dofs, V.sub(c)))
    reaction_tags = list(dirichlet) if reaction_tags is None else list(reaction_tags)
    owned_dofs = V.dofmap.index_map.size_local * V.dofmap.index_map_bs
    reaction_dofs = {}
    for tag in reaction_tags:
        facets = facet_tags.find(tag)
        reaction_dofs[tag] = [
            (lambda dofs: dofs[dofs < owned_dofs])(
                fem.locate_dofs_topological(V.sub(c), fdim, facets)
            )
            for c in range(d)
        ]
    if atol is None:
        volume = comm.allreduce(fem.assemble_scalar(fem.form(1.0 * dx)), op=MPI.SUM)
        atol = 1e-14 * E * volume ** ((d - 1) / d)

    A = fem_petsc.create_matrix(jacobian_form)
    b = fem_petsc.create_vector(V)
    delta = b.duplicate()
    ksp = PETSc.KSP().create(comm)
    ksp.setOperators(A)
    ksp.setType("preonly")
    ksp.getPC().setType("lu")
    ksp.getPC().setFactorSolverType("mumps")

    def residual_norm(predictor: bool = False) -> float:
        """‖R(u)‖ with the Dirichlet rows removed; b = R(u) with those rows x₀ − g.

        With ``predictor``, u still has the previous step's boundary values: b also holds
        J (g − u) (a Dirichlet lifting with the last converged tangent), so that the first
        Newton update moves the boundary to g and the interior by the tangent response.
        """
        with b.localForm() as local:
            local.set(0.0)
        fem_petsc.assemble_vector(b, residual_form)
        if predictor:
            fem_petsc.apply_lifting(b, [jacobian_form], [bcs], x0=[u.x.petsc_vec], alpha=-1.0)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fem_petsc.set_bc(b, bcs, u.x.petsc_vec, 0.0)  # zero the Dirichlet rows for the norm
        norm = float(b.norm())
        fem_petsc.set_bc(b, bcs, u.x.petsc_vec, -1.0)
        return norm

    def reactions() -> dict[int, np.ndarray]:
        full = fem_petsc.assemble_vector(residual_form)
        full.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        local = np.array(
            [[full.array[dofs].sum() for dofs in reaction_dofs[tag]] for tag in reaction_tags]
        ).reshape(len(reaction_tags), d)
        full.destroy()
        total = comm.allreduce(local, op=MPI.SUM)
        return {tag: total[n] for n, tag in enumerate(reaction_tags)}

    evaluate()  # u = 0: zero stress, elastic tangent
    history = []
    for factor in factors:
        for constant, g in loads:
            constant.value = factor * g
        norms = [residual_norm(predictor=True)]  # with the stress/tangent last converged
        first = True
        while first or not (norms[-1] <= rtol * norms[0] or norms[-1] <= atol):
            first = False
            if len(norms) > max_iterations:
                raise NewtonError(float(factor), norms)
            A.zeroEntries()
            fem_petsc.assemble_matrix(A, jacobian_form, bcs=bcs)
            A.assemble()
            b.scale(-1.0)
            ksp.solve(b, delta)
            if ksp.getConvergedReason() < 0:
                raise RuntimeError(f"the linear solver failed ({ksp.getConvergedReason()}).")
            u.x.petsc_vec.axpy(1.0, delta)
            u.x.scatter_forward()
            evaluate()
            norm = residual_norm()
            step = 1.0
            # backtracking (not on the predictor, whose residual includes the lifting):
            # full steps whenever ‖R‖ decreases, so the asymptotic rate is Newton's
            while line_search and len(norms) > 1 and norm >= norms[-1] and step > 2**-10:
                step /= 2
                u.x.petsc_vec.axpy(-step, delta)
                u.x.scatter_forward()
                evaluate()
                norm = residual_norm()
            norms.append(norm)
        committed = trial
        copy = fem.Function(V, name="u")
        copy.x.array[:] = u.x.array
        p_local = committed[2][:owned_points]
        history.append(
            {
                "factor": float(factor),
                "reactions": reactions(),
                "u": u.x.array[:owned_dofs].copy(),
                "displacement": copy,
                "residuals": norms,
                "p_max": comm.allreduce(float(p_local.max(initial=0.0)), op=MPI.MAX),
            }
        )
    ksp.destroy()
    A.destroy()
    b.destroy()
    delta.destroy()
    return history


LEFT, RIGHT, BOTTOM, TOP, BACK, FRONT = 1, 2, 3, 4, 5, 6
"""Facet tags of ``unit_box``: x = 0, x = 1, y = 0, y = 1, z = 0, z = 1."""


def unit_box(comm: Any, dim: int, n: int) -> tuple[Any, Any]:
    """The unit square (triangles) or cube (tetrahedra), n cells a side, and its facet tags."""
    from dolfinx import mesh as dmesh

    if dim == 2:
        msh = dmesh.create_unit_square(comm, n, n)
    else:
        msh = dmesh.create_unit_cube(comm, n, n, n)
    fdim = dim - 1
    planes = [(LEFT, 0, 0.0), (RIGHT, 0, 1.0), (BOTTOM, 1, 0.0), (TOP, 1, 1.0)]
    planes += [(BACK, 2, 0.0), (FRONT, 2, 1.0)] if dim == 3 else []
    facets, values = [], []
    for tag, axis, at in planes:
        found = dmesh.locate_entities_boundary(
            msh, fdim, lambda x, axis=axis, at=at: np.isclose(x[axis], at)
        )
        facets.append(found)
        values.append(np.full(len(found), tag, dtype=np.int32))
    all_facets, all_values = np.concatenate(facets), np.concatenate(values)
    # a facet lies on one plane only (edges of the box are not facets in 3D, corners not in 2D)
    order = np.argsort(all_facets)
    return msh, dmesh.meshtags(msh, fdim, all_facets[order], all_values[order])

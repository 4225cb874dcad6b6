# petsc4py's stubs reject the NumPy arrays and mpi4py communicators it accepts at run time.
# mypy: disable-error-code="arg-type, assignment, operator, index"
"""The micro boundary conditions as maps: which fluctuations a cell problem solves for.

Every cell problem solves for a fluctuation w = P x in the range of a prolongation P
(n_full × n_independent, one 1 per row at most), with the affine lift u_G = G·(y − O)
added. The boundary condition is the choice of P and of optional constraints:

- ``periodic``: P identifies every max-face dof with its min-face image, origin pinned
  (``rve.periodic``).
- ``dirichlet`` (affine, w = 0 on ∂Y): P selects the dofs off the box faces; nothing else
  is pinned. Pores are traction-free.
- ``neumann`` (minimal kinematic / uniform traction): w is free on ∂Y but its average
  gradient (strain) vanishes, ⟨∇w⟩ = 0 (⟨ε(w)⟩ = 0), imposed weakly with multipliers:
  Pᵀ K P x + C λ = b, Cᵀ x = 0, C = Pᵀ A (``gradient_functional``). P drops a few dofs
  that pin the rigid modes (the translations, and for elasticity the rotations), chosen
  where they pin those modes best. The pins are a gauge only if the constraints leave
  the rigid modes free (Aᵀ R = 0) and the material is one piece inside the box: pores
  that cut the faces break the first (a rotation gets a mean strain), a piece joined to
  the rest only across a periodic face the second; both are refused (``check_gauge``,
  ``check_solid_connected``).
- ``oversampling``: the ``dirichlet`` map of a larger window (``rve.tiling``); the
  averages are taken over its inner cell only.
"""

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError, PeriodicityError
from hmm_fenics.physics import Physics
from hmm_fenics.rve.checks import cell_volumes, solid_pieces
from hmm_fenics.rve.mesh import RVEMesh
from hmm_fenics.rve.periodic import periodic_map

BOUNDARY_CONDITIONS = ("periodic", "dirichlet", "neumann", "oversampling")
"""The values of ``[micro] bc``."""

HOLE = 1
"""Facet tag of the pore boundaries in the averaging forms."""


def check_bc(bc: Any, oversampling: Any = None) -> str:
    """``bc`` if it names a boundary condition; ``oversampling`` only with ``"oversampling"``.

    Raises:
        InputError: naming ``micro.bc`` or ``micro.oversampling``.
    """
    if not isinstance(bc, str) or bc not in BOUNDARY_CONDITIONS:
        raise InputError(f"micro.bc must be one of {list(BOUNDARY_CONDITIONS)}, got {bc!r}.")
    if oversampling is not None and bc != "oversampling":
        raise InputError(
            f'micro.oversampling applies to bc = "oversampling" only (bc is {bc!r}); remove it.'
        )
    return bc


class BoundaryMap(NamedTuple):
    """The prolongation and constraints of one boundary condition on a function space.

    Attributes:
        bc: One of ``BOUNDARY_CONDITIONS``.
        P: PETSc AIJ prolongation, ``(n_full, n_independent)``.
        n_full: Dofs of the space (blocks expanded).
        n_independent: Unknowns x of w = P x.
        constraints: C = Pᵀ A, the constraint rows Cᵀ x = 0, ``(n_independent, n)``
            (``neumann`` only, else None).
        average: A, the gradient functional of the whole cell (``gradient_functional``),
            ``(n_full, n)``, when it was needed (``neumann``), else None.
    """

    bc: str
    P: Any
    n_full: int
    n_independent: int
    constraints: npt.NDArray[np.float64] | None = None
    average: npt.NDArray[np.float64] | None = None


def boundary_map(V: Any, physics: Physics, rve: RVEMesh, bc: str) -> BoundaryMap:
    """The ``BoundaryMap`` of ``bc`` for the (blocked) Lagrange space ``V`` on ``rve``'s box.

    For ``oversampling``, ``rve`` is the window (its box gets the affine Dirichlet data).
    """
    check_bc(bc)
    if bc == "periodic":
        try:
            periodic = periodic_map(V, rve.lower, rve.upper)
        except PeriodicityError as err:
            if rve.spec.kind != "image":
                raise
            raise PeriodicityError(
                f'micro.bc = "periodic": the pores of the image {rve.spec.path!r} do not match '
                f"on opposite faces ({str(err).split('. Mesh opposite')[0]}). Crop the image where they match, mirror it, or use "
                'micro.bc = "dirichlet" or "neumann".'
            ) from err
        return BoundaryMap(bc, periodic.P, periodic.n_full, periodic.n_independent)
    bs = V.dofmap.index_map_bs
    n_nodes = V.dofmap.index_map.size_local
    nodes = V.tabulate_dof_coordinates()[:n_nodes, : len(rve.lower)]
    n_full = n_nodes * bs
    if bc in ("dirichlet", "oversampling"):
        tol = 1e-8 * float(np.max(rve.upper - rve.lower))
        on_face = ((np.abs(nodes - rve.lower) < tol) | (np.abs(nodes - rve.upper) < tol)).any(
            axis=1
        )
        keep = np.flatnonzero(np.repeat(~on_face, bs))
        return BoundaryMap(bc, selection(n_full, keep), n_full, keep.size)
    check_solid_connected(rve)
    modes = rigid_modes(physics, nodes - 0.5 * (rve.lower + rve.upper))
    A = gradient_functional(V, physics, rve)
    check_gauge(A, modes, rve)
    keep = np.setdiff1d(np.arange(n_full), rigid_pins(modes))
    return BoundaryMap(bc, selection(n_full, keep), n_full, keep.size, A[keep].copy(), A)


NEUMANN_REMEDY = (
    'use micro.bc = "dirichlet" (or "periodic", if the cell is periodic), or fill the pores'
)


def check_solid_connected(rve: RVEMesh) -> None:
    """Refuse a ``neumann`` cell whose material is in pieces within the box.

    The mesh checks join pieces across the periodic faces; without that identification a
    piece joined to the rest only there moves freely under the minimal kinematic condition
    (the multipliers constrain the mean strain of the whole cell only) and the apparent
    tensor is degenerate. ``dirichlet`` holds such a piece by its face.

    Raises:
        InputError: naming ``micro.bc``.
    """
    pieces = solid_pieces(rve.mesh, rve.lower, rve.upper, periodic=False)
    if pieces > 1:
        raise InputError(
            f'micro.bc = "neumann" needs the material of the cell connected inside its box, but '
            f"it falls into {pieces} pieces that are joined only across the periodic faces (or "
            f"not at all): each piece could move freely. {NEUMANN_REMEDY}."
        )


def check_gauge(A: npt.NDArray[np.float64], modes: npt.NDArray[np.float64], rve: RVEMesh) -> None:
    """Refuse a ``neumann`` cell whose rigid modes have a non-zero mean gradient (strain).

    The pins fix the rigid modes as a gauge only if the constraints ignore those modes
    (Aᵀ R = 0). Pores that cut the box faces break that: the pore-boundary term of A gives a
    rotation (and, for pores that do not match across opposite faces, a translation) a mean
    strain, so pinning it becomes an extra constraint and the tensor depends on the pins.
    Each column of Aᵀ R is measured against |Y| times the mode's gradient scale (its
    largest value over the box size); round-off is ~1e-15 of that.

    Raises:
        InputError: naming ``micro.bc``.
    """
    size = float(np.max(rve.upper - rve.lower))
    scale = rve.volume * np.abs(modes).max(axis=0) / size
    if np.any(np.linalg.norm(A.T @ modes, axis=0) > 1e-9 * scale):
        raise InputError(
            'micro.bc = "neumann": pores cut the cell faces, so a rigid motion of the cell '
            "has a non-zero mean gradient (strain) and the minimal kinematic condition is not "
            f"well posed (the apparent tensor would depend on how the rigid modes are fixed); "
            f"{NEUMANN_REMEDY}."
        )


def selection(n_full: int, keep: npt.NDArray[np.int64]) -> Any:
    """The PETSc matrix ``(n_full, len(keep))`` that puts x_j at dof ``keep[j]`` (zero elsewhere)."""
    from mpi4py import MPI
    from petsc4py import PETSc

    column = np.full(n_full, -1, dtype=np.int64)
    column[keep] = np.arange(keep.size)
    has = column >= 0
    indptr = np.concatenate([[0], np.cumsum(has)]).astype(PETSc.IntType)
    P = PETSc.Mat().createAIJ(
        ((n_full, n_full), (keep.size, keep.size)),
        csr=(indptr, column[has].astype(PETSc.IntType), np.ones(int(has.sum()))),
        comm=MPI.COMM_SELF,
    )
    P.assemble()
    return P


def rigid_modes(physics: Physics, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The zero-energy modes at nodes ``x`` ``(n_nodes, dim)``, ``(n_full, n_modes)`` blocked.

    Diffusion: the constant. Elasticity: the translations and the infinitesimal rotations
    (one in 2D, three in 3D) about the point x = 0.
    """
    n_nodes, dim = x.shape
    if not physics.value_shape:
        return np.ones((n_nodes, 1))
    modes = [np.zeros((n_nodes, dim)) for _ in range(dim)]
    for c in range(dim):
        modes[c][:, c] = 1.0
    for a, b in [(0, 1)] if dim == 2 else [(0, 1), (1, 2), (0, 2)]:
        rotation = np.zeros((n_nodes, dim))
        rotation[:, a], rotation[:, b] = -x[:, b], x[:, a]
        modes.append(rotation)
    return np.column_stack([m.reshape(-1) for m in modes])


def rigid_pins(modes: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Dofs that pin the ``modes``: one per mode, the rows of ``modes`` made independent.

    Greedy pivoting (a QR of ``modesᵀ`` with column pivoting): each step takes the dof whose
    row has the largest part outside the span of the rows taken, so ``modes[pins]`` is as
    well conditioned as the step can make it (far-apart nodes, components across the arm).
    """
    rest = np.array(modes, dtype=np.float64)
    pins = []
    for _ in range(modes.shape[1]):
        norms = np.linalg.norm(rest, axis=1)
        i = int(np.argmax(norms))
        pins.append(i)
        q = rest[i] / norms[i]
        rest -= np.outer(rest @ q, q)
    return np.sort(np.asarray(pins, dtype=np.int64))


def pore_facets(mesh: Any, lower: npt.NDArray[np.float64], upper: npt.NDArray[np.float64]) -> Any:
    """Facet tags (value ``HOLE``) of the pore boundaries: exterior facets off the box faces.

    Returns:
        ``MeshTags`` of those facets, or None for a cell without pores.
    """
    from dolfinx import mesh as dmesh

    dim = mesh.topology.dim
    box = float(np.prod(upper - lower))
    simplex = mesh.topology.cell_type.name in ("triangle", "tetrahedron")
    if simplex and mesh.geometry.cmaps[0].degree == 1:
        # Cells that measure their box tile it: no exterior facet lies off its faces. Cheap
        # for straight simplices (1-3 ms), where the facets cost 10 ms at 42k triangles.
        if abs(float(cell_volumes(mesh).sum()) - box) <= 1e-9 * box:
            return None
    mesh.topology.create_connectivity(dim - 1, dim)
    facets = dmesh.exterior_facet_indices(mesh.topology)
    tol = 1e-8 * float(np.max(upper - lower))
    middle = dmesh.compute_midpoints(mesh, dim - 1, facets)[:, :dim]
    on_box = ((np.abs(middle - lower) < tol) | (np.abs(middle - upper) < tol)).any(axis=1)
    holes = np.sort(facets[~on_box]).astype(np.int32)
    if holes.size == 0:
        return None
    return dmesh.meshtags(mesh, dim - 1, holes, np.full(holes.size, HOLE, dtype=np.int32))


def gradient_functional(
    V: Any, physics: Physics, rve: RVEMesh, indicator: Any = None
) -> npt.NDArray[np.float64]:
    """A with Aᵀ v = |Y| ⟨∇v⟩ (Mandel ⟨ε(v)⟩ for elasticity) over the box, ``(n_full, n)``.

    In a porous cell the pore integral is replaced by the pore-boundary term (divergence
    theorem, n_V out of the pores): |Y| ⟨ε(v)⟩ = ∫_S ε(v) + ∫_Γ sym(v ⊗ n_V), so that A
    measures the average over the whole box. With a DG0 ``indicator`` both integrals are
    weighted by it (the inner cell of an oversampling window).
    """
    import ufl
    from dolfinx import fem

    mesh = V.mesh
    n = physics.n_components
    e = fem.Constant(mesh, np.zeros(n))
    v = ufl.TestFunction(V)
    weight = 1.0 if indicator is None else indicator
    E = physics.from_mandel(e)
    integrand = weight * ufl.inner(E, physics.gradient(v)) * ufl.dx(domain=mesh)
    holes = pore_facets(mesh, rve.lower, rve.upper)
    if holes is not None:
        ds = ufl.Measure("ds", domain=mesh, subdomain_data=holes)
        n_out = -ufl.FacetNormal(mesh)
        jump = ufl.sym(ufl.outer(v, n_out)) if physics.value_shape else v * n_out
        integrand += weight * ufl.inner(E, jump) * ds(HOLE)
    form = fem.form(integrand)
    columns = []
    for a in range(n):
        e.value[:] = np.eye(n)[a]
        columns.append(np.array(fem.assemble_vector(form).array, dtype=np.float64))
    return np.column_stack(columns)

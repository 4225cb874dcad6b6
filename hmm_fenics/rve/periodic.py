# petsc4py's stubs reject the NumPy arrays and mpi4py communicators it accepts at run time.
# mypy: disable-error-code="arg-type, assignment, operator, index"
"""Periodicity without dolfinx_mpc: node matching checks and the prolongation matrix P.

Every dof on a "max" face x_d = U_d is the image of one on the "min" face x_d = O_d (all
corners are images of the origin corner). P (n_full × n_independent) copies each
independent value to its images; the origin corner is pinned (its columns dropped), so
Pᵀ K P is nonsingular for a periodic fluctuation that is defined up to a constant.
"""

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from hmm_fenics.errors import PeriodicityError


def periodic_images(
    points: npt.NDArray[np.float64], lower: npt.NDArray[np.float64], upper: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Index of the periodic image of every point (itself if it is on no max face).

    Args:
        points: Coordinates, shape ``(n, 3)`` (unused trailing coordinates zero).
        lower: Origin corner of the box, shape ``(dim,)``.
        upper: Opposite corner, shape ``(dim,)``.

    Returns:
        ``image`` of shape ``(n,)``: ``points[image[i]]`` is ``points[i]`` with every
        coordinate on a max face wrapped to the min face.

    Raises:
        PeriodicityError: a point on a max face, or on a min face, has no partner; the message
            names the face, the point and the distance to the nearest candidate.
    """
    dim = len(lower)
    size = upper - lower
    tol = 1e-8 * float(np.max(size))
    x = points[:, :dim]
    on_low = np.abs(x - lower) < tol
    on_high = np.abs(x - upper) < tol
    tree = cKDTree(x)
    # Both directions: every max-face node needs a min-face partner and vice versa.
    for d in range(dim):
        for side, mask, shift in (("max", on_high, -size[d]), ("min", on_low, size[d])):
            idx = np.flatnonzero(mask[:, d])
            target = x[idx].copy()
            target[:, d] += shift
            dist, _ = tree.query(target)
            bad = np.flatnonzero(dist > tol)
            if bad.size:
                p = x[idx[bad[0]]]
                where = ", ".join(f"{c:.6g}" for c in p)
                value = upper[d] if side == "max" else lower[d]
                other = lower[d] if side == "max" else upper[d]
                raise PeriodicityError(
                    f"the RVE mesh is not periodic: {bad.size} node(s) on face x{d + 1} = {value:g} "
                    f"have no partner on face x{d + 1} = {other:g}, e.g. the node at "
                    f"({where}) (nearest candidate at distance "
                    f"{dist[bad[0]]:.3g}). Mesh opposite faces with gmsh setPeriodic."
                )
    wrapped = np.where(on_high, lower, x)
    moved = np.flatnonzero(on_high.any(axis=1))
    image = np.arange(len(x), dtype=np.int64)
    if moved.size:
        dist, found = tree.query(wrapped[moved])
        if np.any(dist > tol):  # faces match pairwise but an edge/corner image is missing
            raise PeriodicityError(
                "the RVE mesh is not periodic at an edge or corner: "
                f"{int(np.sum(dist > tol))} node(s) have no image at the origin side."
            )
        image[moved] = found
    return image


class PeriodicMap(NamedTuple):
    """The periodic prolongation of a function space.

    Attributes:
        P: PETSc AIJ matrix, shape ``(n_full, n_independent)``, one 1 per row (none for the
            pinned origin corner).
        n_full: Dofs of the space (scalar dofs, blocks expanded).
        n_independent: Unknowns after periodicity and pinning.
    """

    P: Any
    n_full: int
    n_independent: int


def periodic_map(
    V: Any, lower: npt.NDArray[np.float64], upper: npt.NDArray[np.float64]
) -> PeriodicMap:
    """Build P for a (blocked) Lagrange space ``V`` on a serial periodic box mesh.

    Args:
        V: DOLFINx function space on ``MPI.COMM_SELF``.
        lower: Origin corner, shape ``(dim,)``.
        upper: Opposite corner, shape ``(dim,)``.
    """
    from mpi4py import MPI
    from petsc4py import PETSc

    if V.mesh.comm.size != 1:
        raise ValueError("periodic_map needs a mesh on a single process (MPI.COMM_SELF).")
    bs = V.dofmap.index_map_bs
    nodes = V.tabulate_dof_coordinates()
    n_nodes = V.dofmap.index_map.size_local
    image = periodic_images(nodes[:n_nodes], lower, upper)
    independent = np.flatnonzero(image == np.arange(n_nodes))
    # Pin the independent node nearest the origin corner (the corner itself unless a void
    # took it away): it fixes the constant a periodic fluctuation is defined up to.
    gap = np.linalg.norm(nodes[independent, : len(lower)] - lower, axis=1)
    pinned = independent[np.argmin(gap)]
    independent = independent[independent != pinned]
    column = np.full(n_nodes, -1, dtype=np.int64)
    column[independent] = np.arange(independent.size)
    node_col = column[image]  # -1 for the pinned node and its images
    cols = (node_col[:, None] * bs + np.arange(bs)[None, :]).ravel()
    keep = np.repeat(node_col >= 0, bs)
    indptr = np.concatenate([[0], np.cumsum(keep)]).astype(PETSc.IntType)
    indices = cols[keep].astype(PETSc.IntType)
    n_full, n_ind = n_nodes * bs, independent.size * bs
    P = PETSc.Mat().createAIJ(
        ((n_full, n_full), (n_ind, n_ind)),
        csr=(indptr, indices, np.ones(indices.size)),
        comm=MPI.COMM_SELF,
    )
    P.assemble()
    return PeriodicMap(P, n_full, n_ind)


def count_periodic_components(cells: npt.NDArray[np.int64], image: npt.NDArray[np.int64]) -> int:
    """Connected pieces of a mesh once periodic images are identified.

    Args:
        cells: Cell → vertex connectivity, shape ``(n_cells, vertices_per_cell)``.
        image: Periodic image of every vertex (from :func:`periodic_images`), shape ``(n,)``.

    Returns:
        The number of pieces; more than one makes a periodic cell problem singular (a
        piece can translate freely).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(image)
    merged = image[cells]  # cells in terms of the image vertices
    rows = np.repeat(merged[:, 0], merged.shape[1])
    graph = coo_matrix((np.ones(rows.size), (rows, merged.ravel())), shape=(n, n))
    used = np.unique(merged)
    labels = connected_components(graph, directed=False)[1]
    return int(np.unique(labels[used]).size)

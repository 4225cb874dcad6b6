# petsc4py's stubs reject the NumPy arrays and mpi4py communicators it accepts at run time.
# mypy: disable-error-code="arg-type, assignment, operator, index"
"""Periodicity without dolfinx_mpc: node matching checks and the prolongation matrix P.

Every dof on a "max" face x_d = U_d is the image of one on the "min" face x_d = O_d (all
corners are images of the origin corner). P (n_full × n_independent) copies each
independent value to its images; the origin corner is pinned (its columns dropped), so
Pᵀ K P is nonsingular for a periodic fluctuation that is defined up to a constant.
"""

import itertools
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import PeriodicityError

KEY_BITS = 63
"""Bits of the packed integer key of a point (``KEY_BITS // dim`` per coordinate)."""


def _match(
    queries: npt.NDArray[np.float64],
    candidates: npt.NDArray[np.float64],
    origin: npt.NDArray[np.float64],
    extent: float,
    tol: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The candidate nearest each query among those within ``tol`` of it (NumPy only).

    Coordinates are binned on a grid of spacing ``g`` ≥ 2 ``tol`` (at most 2^(63 // dim)
    bins per direction) and each bin packed into one int64 key; the candidates are sorted by
    key once. A candidate within ``tol`` < ``g`` of a query lies in the query's bin or a
    neighbouring one, so looking up the 3^dim bins around every query finds each of them:
    the matching is exact for the tolerance, not a guess of the rounding.

    Args:
        queries: Shape ``(m, dim)``.
        candidates: Shape ``(k, dim)``.
        origin: Lower corner of a box holding all points (within ``tol``), shape ``(dim,)``.
        extent: Largest side of that box.
        tol: Distance below which two points are the same point.

    Returns:
        ``(index, distance)``, shape ``(m,)`` each: the index into ``candidates`` and the
        distance of the nearest one within ``tol``, or −1 and ``inf`` where none is.
    """
    m, dim = queries.shape
    index = np.full(m, -1, dtype=np.int64)
    best = np.full(m, np.inf)
    if m == 0 or len(candidates) == 0:
        return index, best
    bits = KEY_BITS // dim
    # Bins wider than tol (so a neighbour within tol is at most one bin away), and few enough
    # for the key: two spare bins on either side of the box.
    spacing = max((extent + 4.0 * tol) / float(2**bits - 4), 2.0 * tol)

    def bins(x: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        return np.floor((x - origin + 2.0 * tol) / spacing).astype(np.int64) + 1

    def pack(b: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        return np.sum(b << (bits * np.arange(dim, dtype=np.int64)), axis=1)

    keys = pack(bins(candidates))
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    near = bins(queries)
    for offset in itertools.product((-1, 0, 1), repeat=dim):
        wanted = pack(near + np.asarray(offset, dtype=np.int64))
        first = np.searchsorted(sorted_keys, wanted, side="left")
        count = np.searchsorted(sorted_keys, wanted, side="right") - first
        for k in range(int(count.max(initial=0))):  # every candidate of the bin, not the first
            hit = k < count
            found = order[np.minimum(first + k, len(keys) - 1)]
            dist = np.where(hit, np.linalg.norm(candidates[found] - queries, axis=1), np.inf)
            closer = (dist <= tol) & (dist < best)
            index[closer], best[closer] = found[closer], dist[closer]
    return index, best


def periodic_images(
    points: npt.NDArray[np.float64], lower: npt.NDArray[np.float64], upper: npt.NDArray[np.float64]
) -> npt.NDArray[np.int64]:
    """Index of the periodic image of every point (itself if it is on no max face).

    Points closer than ``1e-8`` times the largest cell side are the same point.

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
    extent = float(np.max(size))
    tol = 1e-8 * extent
    x = np.ascontiguousarray(points[:, :dim], dtype=np.float64)
    on_low = np.abs(x - lower) < tol
    on_high = np.abs(x - upper) < tol
    # Both directions: every max-face node needs a min-face partner and vice versa.
    for d in range(dim):
        for side, mask, other, shift in (
            ("max", on_high, on_low, -size[d]),
            ("min", on_low, on_high, size[d]),
        ):
            idx = np.flatnonzero(mask[:, d])
            target = x[idx].copy()
            target[:, d] += shift
            found, _ = _match(target, x[other[:, d]], lower, extent, tol)
            bad = np.flatnonzero(found < 0)
            if bad.size:
                p = x[idx[bad[0]]]
                nearest = float(np.linalg.norm(x - target[bad[0]], axis=1).min())
                where = ", ".join(f"{c:.6g}" for c in p)
                value = upper[d] if side == "max" else lower[d]
                opposite = lower[d] if side == "max" else upper[d]
                raise PeriodicityError(
                    f"the RVE mesh is not periodic: {bad.size} node(s) on face x{d + 1} = {value:g} "
                    f"have no partner on face x{d + 1} = {opposite:g}, e.g. the node at "
                    f"({where}) (nearest candidate at distance "
                    f"{nearest:.3g}). Mesh opposite faces with gmsh setPeriodic."
                )
    image = np.arange(len(x), dtype=np.int64)
    moved = np.flatnonzero(on_high.any(axis=1))
    if moved.size:
        # The image has every max-face coordinate on the min face and no other on a max face.
        home = np.flatnonzero(~on_high.any(axis=1))
        wrapped = np.where(on_high[moved], lower, x[moved])
        found, _ = _match(wrapped, x[home], lower, extent, tol)
        if np.any(found < 0):  # faces match pairwise but an edge/corner image is missing
            raise PeriodicityError(
                "the RVE mesh is not periodic at an edge or corner: "
                f"{int(np.sum(found < 0))} node(s) have no image at the origin side."
            )
        image[moved] = home[found]
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


def component_labels(
    n: int, a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Connected components of the graph on ``n`` vertices with edges ``a[i]``–``b[i]`` (NumPy).

    Every vertex is labelled with the smallest vertex of its component: each round hooks
    the label of every edge end onto the smaller of the two and then follows labels to
    their roots, until both ends of every edge carry the same label.

    Returns:
        Labels, shape ``(n,)``.
    """
    labels = np.arange(n, dtype=np.int64)
    while True:
        la, lb = labels[a], labels[b]
        if np.array_equal(la, lb):
            return labels
        low = np.minimum(la, lb)
        np.minimum.at(labels, la, low)
        np.minimum.at(labels, lb, low)
        while True:  # pointer jumping: every label becomes its root
            parent = labels[labels]
            if np.array_equal(parent, labels):
                break
            labels = parent

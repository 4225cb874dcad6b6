"""Checks that a cell mesh can stand for its material: bonded, filling its box, connected.

Each refuses a mesh whose cell problem would be wrong or singular without any solver
complaining, with an ``InputError`` that says what to change in the mesh.
"""

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError, PeriodicityError
from hmm_fenics.rve.periodic import component_labels, periodic_images
from hmm_fenics.rve.spec import RVESpec


def check_bonded(mesh: Any) -> None:
    """Refuse meshes with two nodes at one place: the phases would not be bonded there.

    A gmsh model whose phases were not fragmented (or were extruded one by one) meshes each
    side of an interface with its own nodes; the cell problem then solves for phases that
    slide apart, and its answer is wrong without any solver complaining.
    """
    x = mesh.geometry.x
    scale = float(np.ptp(x, axis=0).max())
    keys = np.round(x / (1e-9 * scale)).astype(np.int64)
    order = np.lexsort(keys.T[::-1])  # equal rows end up adjacent (4x faster than np.unique)
    repeated = np.flatnonzero(np.all(keys[order[1:]] == keys[order[:-1]], axis=1))
    if repeated.size:
        where = np.round(x[order[repeated[0]], : mesh.geometry.dim], 6).tolist()
        raise InputError(
            f"{repeated.size} node(s) of the RVE mesh sit where another node is, e.g. "
            f"at {where}: the phases are not bonded there. In gmsh, fragment the phases "
            "(occ.fragment) so that they share their interfaces."
        )


def check_fills_box(
    spec: RVESpec, mesh: Any, lower: npt.NDArray[np.float64], upper: npt.NDArray[np.float64]
) -> None:
    """Refuse a user mesh that does not fill its bounding box, unless its pores are declared.

    Cells that tile a box measure the box up to round-off (and the digits a file keeps);
    anything else is an uncovered part (pores, if declared void) or overlapping
    cells.
    """
    meshed = float(cell_volumes(mesh).sum())
    box = float(np.prod(upper - lower))
    measure = "area" if spec.dim == 2 else "volume"
    bounds = " × ".join(f"[{lo:.6g}, {hi:.6g}]" for lo, hi in zip(lower, upper, strict=True))
    measured = (
        f"the cells of the mesh file {spec.path!r} measure {meshed:.6g} but their bounding box "
        f"{bounds} has {measure} {box:.6g}"
    )
    tol = 1e-6 * box
    if meshed > box + tol:
        raise InputError(
            f"{measured}: cells overlap. Mesh the cell box once, each phase a separate region."
        )
    if meshed < box - tol and not spec.void:
        raise InputError(
            f"{measured} ({100 * (1 - meshed / box):.3g}% of it is not meshed). An RVE fills its "
            "box: mesh the whole box, or, if the gaps are pores, declare the inclusion phase "
            "void ([materials.inclusion] void = true, or RVESpec(..., void=True))."
        )


def check_connected(
    mesh: Any, lower: npt.NDArray[np.float64], upper: npt.NDArray[np.float64]
) -> None:
    """Refuse meshes whose material falls apart into pieces (singular cell problems).

    Two cells are joined only through a shared facet (an edge in 2D, a triangle or
    quadrilateral in 3D), also across the periodic faces (a facet on a max face is its image
    on the min face) if the mesh is periodic (an image whose pores differ on opposite faces
    is not: it serves dirichlet and neumann cells only). Pieces that touch at a node (a checkerboard whose inclusion is void) or
    along an edge carry no load from one to the other, so they count as separate.
    """
    dim = mesh.topology.dim
    try:
        pieces, joined = solid_pieces(mesh, lower, upper), "periodic images joined"
    except PeriodicityError:  # an image whose pores differ on opposite faces: not periodic
        pieces, joined = solid_pieces(mesh, lower, upper, periodic=False), "a non-periodic cell"
    if pieces > 1:
        raise InputError(
            f"the material of this cell falls into {pieces} disconnected pieces that share no "
            f"{'edge' if dim == 2 else 'face'} ({joined}; pieces that touch only "
            "at a node or along an edge carry no load between them): each piece could move "
            "freely, so the cell problem is singular. For a porous cell, lower the void "
            "fraction or change the geometry so that the solid percolates through shared "
            f"{'edges' if dim == 2 else 'faces'}."
        )


def solid_pieces(
    mesh: Any,
    lower: npt.NDArray[np.float64],
    upper: npt.NDArray[np.float64],
    periodic: bool = True,
) -> int:
    """Pieces of the meshed material, cells joined through shared facets.

    Args:
        mesh: The cell mesh (its material only: void phases are not meshed).
        lower: Origin corner of the box.
        upper: Opposite corner.
        periodic: Join a facet on a max face with its image on the min face (the periodic
            boundary condition); False counts the pieces of the box alone.

    Raises:
        PeriodicityError: ``periodic`` and the faces do not match node for node.
    """
    import basix

    dim = mesh.topology.dim
    cell = basix.CellType[mesh.topology.cell_type.name]
    facets = basix.topology(cell)[dim - 1]
    n_vertices = len(basix.topology(cell)[0])  # the geometry lists a cell's vertices first
    vertices = mesh.geometry.dofmaps[0][:, :n_vertices]
    if periodic:
        vertices = periodic_images(mesh.geometry.x, lower, upper)[vertices]
    return _facet_connected_pieces(vertices, facets)


def _facet_connected_pieces(cells: npt.NDArray[np.int64], facets: list[list[int]]) -> int:
    """Pieces of a mesh whose cells are joined only through shared facets.

    Args:
        cells: Cell → vertex connectivity, shape ``(n_cells, n_vertices)``, with periodic
            images already identified (a vertex on a max face replaced by its image).
        facets: The local vertices of each facet of the cell type (basix's reference
            topology), all facets with the same number of vertices.

    Returns:
        The number of pieces (connected components of the cell–facet–cell graph).
    """
    n_cells = len(cells)
    if n_cells == 0:
        return 0
    width = len(facets[0])
    # Each facet as its sorted vertices, so that the facets two cells share are equal rows;
    # sorted, equal rows are neighbours.
    local = np.asarray(facets, dtype=np.int64)
    all_facets = np.sort(cells.astype(np.int64)[:, local], axis=2).reshape(-1, width)
    owner = np.repeat(np.arange(n_cells), len(facets))
    n = int(all_facets.max()) + 1
    if n**width < 2**62:  # one integer key per facet: a faster sort
        key = all_facets[:, 0]
        for column in all_facets.T[1:]:
            key = key * n + column
        order = np.argsort(key)
        key = key[order]
        shared = key[1:] == key[:-1]
    else:
        order = np.lexsort(all_facets.T[::-1])
        all_facets = all_facets[order]
        shared = np.all(all_facets[1:] == all_facets[:-1], axis=1)
    owner = owner[order]
    a, b = owner[:-1][shared], owner[1:][shared]
    labels = component_labels(n_cells, a, b)
    return int(np.count_nonzero(labels == np.arange(n_cells)))


def cell_volumes(mesh: Any) -> npt.NDArray[np.float64]:
    """Volumes of the cells, shape ``(n_cells,)``.

    Straight simplices by their determinant; other cells (quadrilaterals, hexahedra, curved
    cells) by integrating 1 over each with DOLFINx (exact: the quadrature degree follows
    the geometry's).
    """
    dim = mesh.topology.dim
    if (
        mesh.topology.cell_type.name in ("triangle", "tetrahedron")
        and mesh.geometry.cmaps[0].degree == 1
    ):
        x = mesh.geometry.x
        cells = mesh.geometry.dofmaps[0]
        a, b, *c = (x[cells[:, k]] - x[cells[:, 0]] for k in range(1, dim + 1))
        # the determinant of the edges written out: np.linalg.det of (n, d, d) is 7x slower
        if dim == 2:
            det = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
        else:
            det = np.einsum("ij,ij->i", a, np.cross(b, c[0]))
        return np.asarray(np.abs(det) / math.factorial(dim), dtype=np.float64)
    import ufl
    from dolfinx import fem

    V0 = fem.functionspace(mesh, ("DG", 0))
    volumes = fem.assemble_vector(fem.form(ufl.TestFunction(V0) * ufl.dx)).array
    n_cells = mesh.topology.index_map(dim).size_local
    return np.asarray(volumes[V0.dofmap.list[:n_cells, 0]], dtype=np.float64)

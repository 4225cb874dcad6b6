"""Tilings of a periodic RVE: the same medium over a box of several periods, one mesh.

A periodic cell mesh repeated k_d times along each axis is a conforming mesh of the
periodic medium over the larger box (opposite faces match node for node, so the copies
share their nodes on the faces between them). It serves two studies of the micro
boundary conditions: the apparent tensors of growing windows (k × k periods) and
oversampling, where the cell is solved inside a window of ``ratio`` periods per direction
around it and the flux is averaged over the middle copy only.
"""

import itertools
import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.rve.mesh import RVEMesh
from hmm_fenics.rve.serial_mesh import serial_mesh

MAX_TILES = 125
"""Copies of a cell a tiling may hold (a 5×5×5 window)."""


def tile_rve(rve: RVEMesh, counts: tuple[int, ...]) -> RVEMesh:
    """The periodic medium of ``rve`` over ``counts[d]`` periods along each axis, one mesh.

    Args:
        rve: A periodic RVE mesh of first-order cells (simplices, quadrilaterals,
            hexahedra: a translated copy keeps its node order).
        counts: Copies per axis, each ≥ 1, ``(dim,)``.

    Returns:
        An ``RVEMesh`` on ``MPI.COMM_SELF`` over [lower, lower + counts·L] with the phase
        tags of the copies; its ``fraction`` and ``spec`` are the cell's.

    Raises:
        InputError: a count below 1, too many copies, or a mesh of second-order cells.
    """
    from dolfinx import mesh as dmesh

    dim = len(rve.lower)
    if len(counts) != dim or min(counts) < 1:
        raise InputError(f"tile counts must be {dim} whole numbers ≥ 1, got {counts}.")
    if math.prod(counts) > MAX_TILES:
        raise InputError(f"a tiling holds at most {MAX_TILES} copies of the cell, got {counts}.")
    mesh = rve.mesh
    if mesh.geometry.cmaps[0].degree != 1:
        raise InputError(
            f"only meshes of first-order cells can be tiled; this cell's geometry has degree "
            f"{mesh.geometry.cmaps[0].degree} (mesh it with first-order elements)."
        )
    size = rve.upper - rve.lower
    x = mesh.geometry.x[:, :dim]
    cells = np.asarray(mesh.geometry.dofmaps[0], dtype=np.int64)
    n_cells = len(cells)
    tags = np.zeros(n_cells, dtype=np.int32)
    tags[rve.cell_tags.indices] = rve.cell_tags.values
    shifts = np.array(list(itertools.product(*(range(c) for c in counts))), dtype=np.float64)
    points = (x[None, :, :] + (shifts * size)[:, None, :]).reshape(-1, dim)
    # The copies share the nodes of the faces between them: merge points that coincide
    # (to 1e-9 of the cell size; the periodic faces match to round-off).
    keys = np.round((points - rve.lower) / (1e-9 * float(size.max()))).astype(np.int64)
    _, first, merged = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    all_cells = (cells[None, :, :] + len(x) * np.arange(len(shifts))[:, None, None]).reshape(
        -1, cells.shape[1]
    )
    window = serial_mesh(
        merged.reshape(-1)[all_cells], mesh.ufl_domain().ufl_coordinate_element(), points[first]
    )
    all_tags = np.tile(tags, len(shifts))[window.topology.original_cell_index]
    cell_tags = dmesh.meshtags(
        window, dim, np.arange(len(all_tags), dtype=np.int32), all_tags.astype(np.int32)
    )
    upper = rve.lower + np.asarray(counts, dtype=np.float64) * size
    return RVEMesh(
        window, cell_tags, dict(rve.phases), rve.lower.copy(), upper, rve.fraction, rve.spec
    )


class Window(NamedTuple):
    """An oversampling window: the cell's medium around it, and where the cell is.

    Attributes:
        rve: The window mesh (``ratio`` periods per axis, the cell in the middle).
        inner: Whether each window cell (local index) lies in the middle copy, ``(n_cells,)``.
        lower: The inner cell's origin corner in window coordinates, ``(dim,)``.
        upper: Its opposite corner, ``(dim,)``.
        ratio: Periods per axis of the window (odd).
    """

    rve: RVEMesh
    inner: npt.NDArray[np.bool_]
    lower: npt.NDArray[np.float64]
    upper: npt.NDArray[np.float64]
    ratio: int

    @property
    def volume(self) -> float:
        """|Y_in|, the measure of the inner box."""
        return float(np.prod(self.upper - self.lower))


def check_ratio(ratio: float) -> int:
    """The copies per axis of an oversampling ``ratio``: an odd whole number ≥ 1.

    Raises:
        InputError: naming ``micro.oversampling``.
    """
    if not (isinstance(ratio, int | float) and math.isfinite(ratio)) or isinstance(ratio, bool):
        raise InputError(f"micro.oversampling must be a number, got {ratio!r}.")
    k = round(ratio)
    if abs(ratio - k) > 1e-12 or k < 1 or k % 2 == 0:
        raise InputError(
            f"micro.oversampling must be an odd whole number (1, 3, 5): the window is the "
            f"periodic cell repeated that many times per axis with the cell in the middle, "
            f"got {ratio!r}."
        )
    return int(k)


def oversampling_window(rve: RVEMesh, ratio: float) -> Window:
    """The window of ``ratio`` periods per axis around the cell, built by tiling it.

    The window repeats the periodic medium, so its inner copy is exactly the cell (the
    same mesh, shifted by (ratio − 1)/2 periods; the window's origin is the cell's).

    Raises:
        InputError: ``ratio`` not an odd whole number (``check_ratio``), or the tiling's
            (naming ``micro.bc``).
    """
    from dolfinx import mesh as dmesh

    k = check_ratio(ratio)
    dim = len(rve.lower)
    try:
        window = tile_rve(rve, (k,) * dim)
    except InputError as err:
        raise InputError(
            f'micro.bc = "oversampling" (micro.oversampling = {k}) builds its window by '
            f'tiling the cell: {err} Or use micro.bc = "dirichlet", "neumann" or "periodic".'
        ) from err
    size = rve.upper - rve.lower
    inner_lower = rve.lower + (k - 1) // 2 * size
    inner_upper = inner_lower + size
    n_cells = window.mesh.topology.index_map(dim).size_local
    middle = dmesh.compute_midpoints(window.mesh, dim, np.arange(n_cells, dtype=np.int32))[:, :dim]
    inner = np.all((middle > inner_lower) & (middle < inner_upper), axis=1)
    return Window(window, inner, inner_lower, inner_upper, k)

"""Image (voxel) cells: phases of a segmented image, meshed voxel by voxel on one process.

A 2D picture (PNG, TIFF) or a 2D/3D NumPy ``.npy`` array of integer labels becomes the box
[0, n1 h]×[0, n2 h](×[0, n3 h]) (h = ``voxel_size``) meshed with one quadrilateral/hexahedron
per pixel/voxel (or 2 triangles / 6 tetrahedra, ``mesh = "simplex"``), each cell tagged with
the phase of its pixel value. No gmsh: the grid is built with NumPy and handed to DOLFINx.

(Reading the file, its orientation and its pixel values: ``hmm_fenics.rve.pixels``.)
"""

import itertools
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.rve.pixels import SPLIT, read_pixels
from hmm_fenics.rve.serial_mesh import serial_mesh
from hmm_fenics.rve.spec import RVESpec

GMSH_TYPES = {("voxel", 2): 3, ("voxel", 3): 5, ("simplex", 2): 2, ("simplex", 3): 4}
"""gmsh element type of each mesh (for the coordinate element and for writing ``.msh``)."""


class ImageGrid(NamedTuple):
    """An image cell meshed on ``MPI.COMM_SELF``.

    Attributes:
        mesh: DOLFINx mesh of the non-void voxels.
        cell_tags: Cell ``MeshTags``: the phase tag of every cell.
        phases: Non-void phase name → tag (matrix 1, then the others by name).
        lower: Origin corner (zeros), shape ``(dim,)``.
        upper: ``voxel counts × voxel_size``, shape ``(dim,)``.
        fractions: Every labelled phase (voids too) → its volume fraction in the image.
    """

    mesh: Any
    cell_tags: Any
    phases: dict[str, int]
    lower: npt.NDArray[np.float64]
    upper: npt.NDArray[np.float64]
    fractions: dict[str, float]


def phase_of_pixels(
    values: npt.NDArray[np.int64], spec: RVESpec
) -> tuple[npt.NDArray[np.int64], dict[str, float]]:
    """Phase index (0 = matrix, in ``spec.phase_labels`` order) of every voxel, and fractions.

    Raises:
        InputError: a label that occurs nowhere in the image, or a pixel value of no phase.
    """
    labels = spec.phase_labels
    present = np.unique(values)
    absent = {n: [v for v in vs if v not in present] for n, vs in labels.items()}
    absent = {n: vs for n, vs in absent.items() if vs}
    if absent:
        name, missing = next(iter(absent.items()))
        raise InputError(
            f"rve.labels.{name}: value(s) {missing} occur nowhere in {spec.path!r} (its values: "
            f"{_listing(present)})."
        )
    keys = np.array([v for vs in labels.values() for v in vs], dtype=np.int64)
    owner = np.array([k for k, vs in enumerate(labels.values()) for _ in vs], dtype=np.int64)
    order = np.argsort(keys)
    keys, owner = keys[order], owner[order]
    where = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
    phase = np.where(keys[where] == values, owner[where], -1)
    if (phase < 0).any():
        unknown = np.unique(values[phase < 0])
        raise InputError(
            f"rve.labels: the pixel value(s) {_listing(unknown)} of {spec.path!r} belong to no "
            f"phase (labelled: {dict(labels)}); give each value a phase."
        )
    counts = np.bincount(phase.ravel(), minlength=len(labels))
    fractions = {n: float(c / phase.size) for n, c in zip(labels, counts, strict=True)}
    return phase, fractions


def _listing(values: npt.NDArray[np.int64], most: int = 12) -> str:
    shown = ", ".join(str(int(v)) for v in values[:most])
    return f"[{shown}{', …' if len(values) > most else ''}]"


def voxel_cells(solid: npt.NDArray[np.bool_], simplex: bool) -> npt.NDArray[np.int64]:
    """Cell → grid vertex connectivity of the ``solid`` voxels, in DOLFINx's vertex order.

    A grid vertex ``(j1, j2, j3)`` has the index ``j1 + (n1 + 1)(j2 + (n2 + 1) j3)``. A
    quadrilateral/hexahedron lists its vertices in tensor order (x1 fastest); the simplex
    split is Kuhn's (every simplex holds the voxel's main diagonal), the same in every voxel,
    so the faces of neighbours (periodic ones too) are split alike and the mesh conforms.

    Args:
        solid: Shape ``(n1, n2(, n3))``, True where a voxel is meshed.
        simplex: Split each voxel into 2 triangles / 6 tetrahedra.

    Returns:
        Shape ``(n_cells, n_vertices)``; the cells of voxel ``k`` (C order of ``solid``
        ravelled along x1 last) are consecutive rows.
    """
    dim = solid.ndim
    strides = np.cumprod([1, *[n + 1 for n in solid.shape[:-1]]])
    corners = np.array(list(itertools.product((0, 1), repeat=dim)))[:, ::-1]  # x1 fastest
    origin = np.argwhere(solid)  # (n_voxels, dim), C order of solid
    vertex = (origin[:, None, :] + corners[None, :, :]) @ strides  # (n_voxels, 2^dim)
    if not simplex:
        return np.asarray(vertex, dtype=np.int64)
    # Kuhn: a path from corner 0 to the far corner, one axis step at a time, per permutation.
    index = {tuple(c): k for k, c in enumerate(corners)}
    simplices = []
    for order in itertools.permutations(range(dim)):
        step, path = np.zeros(dim, dtype=int), [index[(0,) * dim]]
        for axis in order:
            step[axis] = 1
            path.append(index[tuple(step)])
        simplices.append(path)
    return np.asarray(vertex[:, simplices].reshape(-1, dim + 1), dtype=np.int64)


def image_grid(spec: RVESpec) -> ImageGrid:
    """Read and mesh the image cell of ``spec`` on ``MPI.COMM_SELF``, checking its faces.

    Raises:
        InputError: see ``read_image`` and ``phase_of_pixels``.
    """
    from dolfinx import mesh as dmesh
    from dolfinx.io.gmsh import ufl_mesh

    assert spec.voxel_size is not None and spec.mesh is not None  # checked by RVESpec
    assert spec.path is not None
    phase, fractions = phase_of_pixels(read_pixels(Path(spec.path)), spec)
    names = list(spec.phase_labels)
    voids = [names.index(v) for v in spec.voids]
    solid = ~np.isin(phase, voids)
    if not solid.any():
        raise InputError(f"rve.voids: every voxel of {spec.path!r} is void; nothing to mesh.")
    dim, h = spec.dim, spec.voxel_size
    simplex = spec.mesh == "simplex"
    cells = voxel_cells(solid, simplex)
    used, cells = np.unique(cells, return_inverse=True)
    cells = cells.reshape(-1, dim + 1 if simplex else 2**dim)
    counts = np.array(phase.shape) + 1
    grid = np.stack(np.unravel_index(used, tuple(counts[::-1]))[::-1], axis=1)
    x = np.ascontiguousarray(grid * h, dtype=np.float64)
    element = ufl_mesh(GMSH_TYPES[spec.mesh, dim], dim, np.float64).ufl_coordinate_element()
    mesh = serial_mesh(cells, element, x)
    solid_names = [n for k, n in enumerate(names) if k not in voids]
    tag_of = np.zeros(len(names), dtype=np.int32)
    tag_of[[names.index(n) for n in solid_names]] = np.arange(1, len(solid_names) + 1)
    per_cell = np.repeat(tag_of[phase[solid]], SPLIT[spec.mesh][dim])
    tags = per_cell[mesh.topology.original_cell_index]
    cell_tags = dmesh.meshtags(mesh, dim, np.arange(len(tags), dtype=np.int32), tags)
    # pores need not match on opposite faces: dirichlet and neumann cells do without (the
    # periodic map refuses such a cell, ``micro.boundary.boundary_map``)
    lower, upper = np.zeros(dim), np.asarray(phase.shape, dtype=np.float64) * h
    phases = {n: k + 1 for k, n in enumerate(solid_names)}
    return ImageGrid(mesh, cell_tags, phases, lower, upper, fractions)


def add_to_gmsh(mesh: Any, cell_tags: Any, phases: dict[str, int]) -> None:
    """Put a DOLFINx cell mesh (first order) into the current gmsh model, one entity per phase.

    Nodes keep their coordinates; each phase becomes a discrete entity and a physical group
    of its name and tag, so ``gmsh.write`` gives a ``.msh`` that reads back as ``kind = "file"``.
    """
    import gmsh
    from dolfinx.io.gmsh import cell_perm_array

    dim = mesh.topology.dim
    name = mesh.topology.cell_type.name
    gmsh_type = {"quadrilateral": 3, "hexahedron": 5, "triangle": 2, "tetrahedron": 4}[name]
    nodes = mesh.geometry.dofmaps[0]
    perm = cell_perm_array(mesh.topology.cell_type, nodes.shape[1])
    cells = nodes[:, np.argsort(perm)] + 1  # DOLFINx order back to gmsh's; tags from 1
    x = np.zeros((len(mesh.geometry.x), 3))
    x[:, :dim] = mesh.geometry.x[:, :dim]
    entities = {phase: gmsh.model.addDiscreteEntity(dim) for phase in phases}
    first = next(iter(entities.values()))
    gmsh.model.mesh.addNodes(dim, first, np.arange(1, len(x) + 1), x.ravel())
    offset = 1
    for phase, entity in entities.items():
        mine = cells[cell_tags.indices[cell_tags.values == phases[phase]]]
        tags = np.arange(offset, offset + len(mine))
        gmsh.model.mesh.addElementsByType(entity, gmsh_type, tags, mine.ravel())
        offset += len(mine)
        gmsh.model.addPhysicalGroup(dim, [entity], phases[phase], name=phase)

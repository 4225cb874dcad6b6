"""Macro meshes: built-in gmsh geometries with named boundaries, or a user ``.msh``.

gmsh runs on rank 0 only; the mesh is distributed over the communicator by DOLFINx. Every
boundary is a physical group whose name the boundary conditions refer to.
"""

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from mpi4py import MPI

import gmsh
import numpy as np

from hmm_fenics.errors import InputError
from hmm_fenics.parallel.collective import on_one_rank
from hmm_fenics.rve.geometry import gmsh_session

GEOMETRIES = ("rectangle", "box", "plate-with-hole", "l-shape")
BOUNDARIES = {
    "rectangle": ("left", "right", "bottom", "top"),
    "box": ("left", "right", "bottom", "top", "front", "back"),
    "plate-with-hole": ("left", "bottom", "right", "top", "hole"),
    "l-shape": ("left", "bottom", "right", "top", "inner"),
}
"""The named boundaries of each built-in geometry."""
LENGTHS = {"L": 1.0, "H": 1.0, "W": 1.0, "R": 0.25}
"""Geometry lengths and their defaults: L (x1), H (x2), W (x3), R (hole radius)."""
ADJACENT = {
    "rectangle": (("left", "bottom"), ("bottom", "right"), ("right", "top"), ("top", "left")),
    "box": tuple(
        (a, b)
        for i, a in enumerate(BOUNDARIES["box"])
        for b in BOUNDARIES["box"][i + 1 :]
        if {a, b} not in ({"left", "right"}, {"bottom", "top"}, {"front", "back"})
    ),
    "plate-with-hole": (
        ("left", "hole"),
        ("hole", "bottom"),
        ("bottom", "right"),
        ("right", "top"),
        ("top", "left"),
    ),
    "l-shape": (
        ("left", "bottom"),
        ("bottom", "right"),
        ("right", "inner"),
        ("inner", "top"),
        ("top", "left"),
    ),
}
"""The pairs of named boundaries of each built-in geometry that meet (at a corner or edge)."""
MAX_MACRO_CELLS = 2_000_000
"""Built-in macro meshes estimated above this many cells are refused (``macro.mesh_size``)."""
CELLS_PER_CUBE = {2: 2.3, 3: 5.0}
"""gmsh's triangles per h² and tetrahedra per h³ (measured: within 25% from 10 elements across)."""


class MacroMesh(NamedTuple):
    """A distributed macro mesh.

    Attributes:
        mesh: DOLFINx mesh on the communicator.
        facet_tags: Facet ``MeshTags`` of the named boundaries.
        boundaries: Boundary name → facet tag.
    """

    mesh: Any
    facet_tags: Any
    boundaries: dict[str, int]


def macro_mesh(
    geometry: str,
    size: float,
    comm: Any = MPI.COMM_WORLD,
    params: Mapping[str, float] | None = None,
    path: str | None = None,
    dim: int = 2,
) -> MacroMesh:
    """Build a built-in macro geometry, or read ``path``, on ``comm``.

    Args:
        geometry: ``rectangle`` (L × H; left/right/bottom/top), ``box`` (L × H × W; left,
            right, bottom, top, front, back), ``plate-with-hole`` (a quarter plate L × L with
            a hole of radius R at the origin; left, bottom (symmetry planes), right, top,
            hole), ``l-shape`` (the unit square minus its upper-right quarter, scaled by L;
            left, bottom, right, top, inner), or ``file``.
        size: Target element size H.
        comm: Communicator of the macro problem.
        params: Geometry lengths: ``L``, ``H``, ``W``, ``R``.
        path: A ``.msh`` with named boundary groups, for ``geometry = "file"``.
        dim: 2 or 3 (``box`` is 3D, ``file`` says it).
    """
    from dolfinx.io import gmsh as gmshio

    p = LENGTHS | dict(params or {})
    error = check_geometry(geometry, size, p, path)  # on every rank, before any collective
    if error:
        raise InputError(error)
    gdim = 3 if geometry == "box" else dim

    def build() -> tuple[int, dict[str, int]]:
        """Rank 0 meshes (or reads) the geometry and checks its cells."""
        if geometry == "file":
            assert path is not None
            try:
                gmsh.merge(path)
            except Exception as err:  # gmsh raises a bare Exception with its own message
                raise InputError(
                    f"macro.path: gmsh cannot read {path!r} ({err}); give a valid .msh file "
                    "(format 4.1 or 2.2) with a tagged domain and named boundaries."
                ) from err
            found = max((d for d, _ in gmsh.model.getPhysicalGroups()), default=0)
        else:
            try:
                _build(geometry, size, p)
            except Exception as err:  # OpenCASCADE or the mesher refused these lengths
                raise InputError(
                    f"macro.geometry = {geometry!r}: gmsh cannot build it with lengths "
                    f"{dict(p)} and mesh_size {size} ({err}); check macro.L, H, W, R and "
                    "macro.mesh_size (e.g. a hole radius R that is not tiny against L)."
                ) from err
            found = gdim
        problem = _check_cells(found, path) or (
            _check_boundaries(found, path) if geometry == "file" else None
        )
        if problem:
            raise InputError(problem)
        return found, boundary_names(found)

    with gmsh_session():
        # a failure on rank 0 (an unreadable file, a mesher error) is raised on every rank
        gdim, names = on_one_rank(comm, build)
        data = gmshio.model_to_mesh(gmsh.model, comm, 0, gdim=gdim)
    return MacroMesh(data.mesh, data.facet_tags, names)


def check_geometry(
    geometry: str, size: float, p: Mapping[str, float], path: str | None
) -> str | None:
    """What is wrong with a macro geometry request (key paths ``macro.*``), or None.

    Lengths and the element size must be positive and finite, and the element count
    (``estimated_cells``) at most ``MAX_MACRO_CELLS``.
    """
    if geometry not in (*GEOMETRIES, "file"):
        return f"macro.geometry must be one of {[*GEOMETRIES, 'file']}, got {geometry!r}."
    if geometry == "file":
        if not path or not Path(path).is_file():
            return f"macro.path: mesh file {path!r} does not exist."
        return None
    if not (size > 0 and math.isfinite(size)):
        return f"macro.mesh_size must be a positive finite length, got {size}."
    for key, value in p.items():
        if not (value > 0 and math.isfinite(value)):
            return f"macro.{key} must be a positive finite length, got {value}."
    L, R = p["L"], p["R"]
    if geometry == "plate-with-hole" and R >= 0.9 * L:
        return f"macro.R = {R}: the hole radius must be below 0.9 macro.L = {0.9 * L}."
    sides = _sides(geometry, p)
    if size > 0.5 * min(sides):
        return f"macro.mesh_size = {size} is coarser than half the domain; use a smaller one."
    cells = estimated_cells(geometry, size, p)
    if cells > MAX_MACRO_CELLS:
        # cells ∝ size^-d: the size of MAX_MACRO_CELLS cells, in logarithms (no overflow)
        log_cells = math.log(CELLS_PER_CUBE[len(sides)] * _fill(geometry, p))
        log_cells += sum(math.log(side) for side in sides)
        smallest = 1.01 * math.exp((log_cells - math.log(MAX_MACRO_CELLS)) / len(sides))
        if smallest > 0.5 * min(sides):
            advice = f"no mesh size fits this elongated domain {list(sides)}: shorten it"
        else:
            advice = f"use mesh_size ≥ {smallest:.3g}"
        return (
            f"macro.mesh_size = {size} would give about {cells:.2g} macro cells (limit "
            f"{MAX_MACRO_CELLS:.0e}); {advice}."
        )
    return None


def estimated_cells(geometry: str, size: float, p: Mapping[str, float]) -> float:
    """About how many cells gmsh makes of a built-in geometry at element size ``size``.

    2.3 A/h² triangles or 5 V/h³ tetrahedra (``CELLS_PER_CUBE``), A and V the domain's
    area or volume.
    """
    sides = _sides(geometry, p)
    cells = CELLS_PER_CUBE[len(sides)] * _fill(geometry, p)
    return cells * math.prod(side / size for side in sides)


def _fill(geometry: str, p: Mapping[str, float]) -> float:
    """The fraction of its bounding box a built-in geometry fills."""
    if geometry == "plate-with-hole":
        return 1.0 - math.pi / 4 * (p["R"] / p["L"]) ** 2
    return 0.75 if geometry == "l-shape" else 1.0


def _sides(geometry: str, p: Mapping[str, float]) -> tuple[float, ...]:
    """The bounding box of a built-in geometry."""
    L, H, W = p["L"], p["H"], p["W"]
    return {"rectangle": (L, H), "box": (L, H, W)}.get(geometry, (L, L))


def _build(geometry: str, size: float, p: dict[str, float]) -> None:
    occ = gmsh.model.occ
    L, H, W, R = p["L"], p["H"], p["W"], p["R"]
    if geometry == "rectangle":
        dim, tag = 2, occ.addRectangle(0, 0, 0, L, H)
    elif geometry == "box":
        dim, tag = 3, occ.addBox(0, 0, 0, L, H, W)
    elif geometry == "plate-with-hole":
        plate = occ.addRectangle(0, 0, 0, L, L)
        hole = occ.addDisk(0, 0, 0, R, R)
        dim, tag = 2, occ.cut([(2, plate)], [(2, hole)])[0][0][1]
    else:  # l-shape
        square = occ.addRectangle(0, 0, 0, L, L)
        corner = occ.addRectangle(0.5 * L, 0.5 * L, 0, 0.5 * L, 0.5 * L)
        dim, tag = 2, occ.cut([(2, square)], [(2, corner)])[0][0][1]
    occ.synchronize()
    gmsh.model.addPhysicalGroup(dim, [tag], 1, name="domain")
    for number, (name, entities) in enumerate(
        classify_boundaries(dim, geometry, p).items(), start=1
    ):
        gmsh.model.addPhysicalGroup(dim - 1, entities, number, name=name)
    # OpenCASCADE gives every geometry point a default size (about a tenth of the model);
    # taken from the points, it caps the element size there and a coarser mesh_size is
    # silently ignored (a unit square gave 162 triangles for every mesh_size ≥ 0.125)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeMax", size)
    gmsh.option.setNumber("Mesh.MeshSizeMin", size / 4)
    if geometry == "plate-with-hole":  # resolve the stress concentration at the hole
        gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 24)
    gmsh.model.mesh.generate(dim)


def classify_boundaries(dim: int, geometry: str, p: dict[str, float]) -> dict[str, list[int]]:
    """Boundary name → boundary entities of the current gmsh model, by their bounding boxes.

    Args:
        dim: Dimension of the domain (its boundary entities have ``dim − 1``).
        geometry: A built-in geometry name (it names the remaining boundary ``hole`` or ``inner``).
        p: Geometry lengths ``L``, ``H``, ``W``: a side lies on x1 = 0 (left), x2 = 0 (bottom),
            x1 = L (right), x2 = H (top), x3 = 0 (front), x3 = W (back).
    """
    L, H = p["L"], p["H"] if geometry in ("rectangle", "box") else p["L"]
    W = p["W"]
    eps = 1e-5 * max(L, H)  # OCC pads bounding boxes by its tolerance
    names: dict[str, list[int]] = {}
    for _, tag in gmsh.model.getBoundary(
        [(dim, t) for _, t in gmsh.model.getEntities(dim)], oriented=False
    ):
        x0, y0, z0, x1, y1, z1 = gmsh.model.getBoundingBox(dim - 1, abs(tag))
        if x1 < eps:
            name = "left"
        elif y1 < eps:
            name = "bottom"
        elif x0 > L - eps:
            name = "right"
        elif y0 > H - eps:
            name = "top"
        elif dim == 3 and z1 < eps:
            name = "front"
        elif dim == 3 and z0 > W - eps:
            name = "back"
        else:
            name = "hole" if geometry == "plate-with-hole" else "inner"
        names.setdefault(name, []).append(abs(tag))
    return names


SUPPORTED = {2: "Triangle 3", 3: "Quadrilateral 4", 4: "Tetrahedron 4", 5: "Hexahedron 8"}
"""gmsh element types the macro solver takes (first-order simplices and boxes)."""


def _check_cells(dim: int, path: str | None) -> str | None:
    """None if the cells of the top dimension are one supported first-order type."""
    where = f"the macro mesh {path!r}" if path else "the macro mesh"
    if dim not in (2, 3):
        return f"{where} has no 2D or 3D physical group: tag the domain and name the boundaries."
    types = sorted({int(t) for t in gmsh.model.mesh.getElementTypes(dim)})
    if len(types) != 1 or types[0] not in SUPPORTED:
        names = [gmsh.model.mesh.getElementProperties(t)[0] for t in types]
        return (
            f"{where} has cells of type(s) {names}; supported are one of "
            f"{sorted(SUPPORTED.values())} (first order, not mixed)."
        )
    return None


def _check_boundaries(dim: int, path: str | None) -> str | None:
    """None if every named boundary of a user mesh lies on cells of its domain groups.

    DOLFINx keeps only the cells of the top-dimensional physical groups; a boundary group on
    other cells refers to facets the mesh does not have, and DOLFINx aborts the MPI job.
    """
    domain = [
        np.concatenate(gmsh.model.mesh.getElements(dim, entity)[2] or [np.zeros(0, np.uint64)])
        for _, group in gmsh.model.getPhysicalGroups(dim)
        for entity in gmsh.model.getEntitiesForPhysicalGroup(dim, group)
    ]
    nodes = np.unique(np.concatenate(domain)) if domain else np.zeros(0, np.uint64)
    outside = []
    for _, group in gmsh.model.getPhysicalGroups(dim - 1):
        for entity in gmsh.model.getEntitiesForPhysicalGroup(dim - 1, group):
            facets = gmsh.model.mesh.getElements(dim - 1, entity)[2]
            if facets and not np.isin(np.concatenate(facets), nodes).all():
                outside.append(gmsh.model.getPhysicalName(dim - 1, group) or str(group))
                break
    if outside:
        return (
            f"the macro mesh {path!r}: boundary group(s) {sorted(set(outside))} lie on cells "
            f"outside the domain's {dim}D physical group(s); add those cells to a domain group "
            "or remove the boundary groups from the cells that are not part of the domain."
        )
    return None


def boundary_names(dim: int) -> dict[str, int]:
    """Boundary name → physical tag, of the named ``dim − 1`` groups of the current gmsh model."""
    return {gmsh.model.getPhysicalName(d, t): t for d, t in gmsh.model.getPhysicalGroups(dim - 1)}

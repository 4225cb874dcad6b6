"""Macro meshes: built-in gmsh geometries with named boundaries, or a user ``.msh``.

gmsh runs on rank 0 only; the mesh is distributed over the communicator by DOLFINx. Every
boundary is a physical group whose name the boundary conditions refer to.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from mpi4py import MPI

import gmsh

from hmm_fenics.errors import InputError
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
    with gmsh_session():
        problem = None
        if comm.rank == 0:
            if geometry == "file":
                assert path is not None
                gmsh.merge(path)
                gdim = max((d for d, _ in gmsh.model.getPhysicalGroups()), default=0)
            else:
                _build(geometry, size, p)
            problem = _check_cells(gdim, path)
        problem, gdim = comm.bcast((problem, gdim), root=0)  # every rank raises alike
        if problem:
            raise InputError(problem)
        names = comm.bcast(boundary_names(gdim) if comm.rank == 0 else None, root=0)
        data = gmshio.model_to_mesh(gmsh.model, comm, 0, gdim=gdim)
    return MacroMesh(data.mesh, data.facet_tags, names)


def check_geometry(
    geometry: str, size: float, p: Mapping[str, float], path: str | None
) -> str | None:
    """What is wrong with a macro geometry request (key paths ``macro.*``), or None."""
    if geometry not in (*GEOMETRIES, "file"):
        return f"macro.geometry must be one of {[*GEOMETRIES, 'file']}, got {geometry!r}."
    if geometry == "file":
        if not path or not Path(path).is_file():
            return f"macro.path: mesh file {path!r} does not exist."
        return None
    if not size > 0:
        return f"macro.mesh_size must be positive, got {size}."
    for key, value in p.items():
        if not value > 0:
            return f"macro.{key} must be a positive length, got {value}."
    if geometry == "plate-with-hole" and p["R"] >= 0.9 * p["L"]:
        return (
            f"plate-with-hole: the hole radius R = {p['R']} must be below 0.9 L = {0.9 * p['L']}."
        )
    if size > 0.5 * min(p["L"], p["H"]):
        return f"macro.mesh_size = {size} is coarser than half the domain; use a smaller one."
    return None


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


def boundary_names(dim: int) -> dict[str, int]:
    """Boundary name → physical tag, of the named ``dim − 1`` groups of the current gmsh model."""
    return {gmsh.model.getPhysicalName(d, t): t for d, t in gmsh.model.getPhysicalGroups(dim - 1)}

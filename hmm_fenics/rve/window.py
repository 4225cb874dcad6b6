"""Windows cut from the periodic medium of a generated RVE: gmsh geometry and mesh.

A generated cell (``RVESpec``, box [0, L]) repeated in every direction is a periodic medium.
A window is the box [o, o + W] of it, W any size: an integer or non-integer number of
periods, starting at any phase o. Every lattice image of the cell's inclusions that reaches
into the window is placed, the window box is fragmented with them and the pieces outside
are dropped, so inclusions are cut by the window faces. The window is moved to [0, W].

Periodic conditions need opposite faces that match node for node. A window of whole
periods has matching faces already; otherwise each face is imprinted with the cuts of its
opposite face (points on the edges in 2D, curves on the faces in 3D), so that both faces are
split alike and ``setPeriodic`` pairs them. Such a window is then periodic as a mesh, not as
a medium: its periodic answer carries the resonance error of a non-integer δ/ε. In 3D gmsh
does not pair faces imprinted with curved cuts (spheres), so 3D windows of curved inclusions
hold whole periods; the 3D laminate takes any window.
"""

import hashlib
import json
import math
import os

import gmsh
import numpy as np

from hmm_fenics.errors import InputError
from hmm_fenics.rve.geometry import (
    PHASE_TAGS,
    _add_shape,
    cut_to_box,
    gmsh_session,
    primitives,
    set_periodic,
)
from hmm_fenics.rve.mesh import GEOMETRY_VERSION, RVEMesh, build_rve, cache_dir
from hmm_fenics.rve.spec import RVESpec

WINDOW_KINDS = (
    "inclusion",
    "square-array",
    "hex-array",
    "checkerboard",
    "laminate",
    "random",
    "cubic-array",
)
"""Generated kinds whose medium can be windowed (fibers are extruded, files are one mesh)."""
WINDOW_VERSION = 2
"""Bump when the window builder changes, so that cached windows of the old code are not used."""


def _images(spec: RVESpec, origin: np.ndarray, size: np.ndarray) -> list[tuple[int, int]]:
    """Add every lattice image of the cell's inclusions that meets the window; their OCC tags."""
    L = np.asarray(spec.lengths, dtype=np.float64)
    dim = spec.dim
    margin = 1e-9 * float(max(L.max(), size.max()))
    tools = []
    for p in primitives(spec):
        if p.shape == "box":  # lower corner and size
            low, high = np.asarray(p.center), np.asarray(p.center) + np.asarray(p.size)
        else:
            e = np.asarray(p.half_extents(spec.lengths))
            low, high = np.asarray(p.center) - e, np.asarray(p.center) + e
        # lattice shifts k with [low, high] + k L meeting [origin, origin + size]
        first = np.floor((origin - high - margin) / L).astype(int)
        last = np.ceil((origin + size - low + margin) / L).astype(int)
        for k in np.ndindex(*(last - first + 1)):
            shift = (np.asarray(k) + first) * L
            lo, hi = low + shift - origin, high + shift - origin
            if np.all(hi > margin) and np.all(lo < size - margin):
                tools.append(_add_shape(p, np.asarray(p.center) + shift - origin, dim))
    return tools


def build_window(spec: RVESpec, origin: np.ndarray, size: np.ndarray) -> None:
    """Create the window [origin, origin + size] of ``spec``'s medium, at [0, size], with groups.

    Raises:
        InputError: a kind without a window builder, or a window the inclusions fill.
    """
    if spec.kind not in WINDOW_KINDS:
        raise InputError(
            f"windows of rve.kind = {spec.kind!r} are not built; kinds with windows: "
            f"{list(WINDOW_KINDS)}."
        )
    dim = spec.dim
    occ = gmsh.model.occ
    box = occ.addRectangle(0, 0, 0, *size[:2]) if dim == 2 else occ.addBox(0, 0, 0, *size)
    tools = _images(spec, origin, size)
    if len(tools) > 1:  # one solid: touching images (layers, squares) leave no inner faces
        tools, _ = occ.fuse(tools[:1], tools[1:])
    inclusion, matrix = cut_to_box(dim, box, tools)
    if spec.void and inclusion:
        occ.remove([(dim, t) for t in inclusion], recursive=True)
    occ.synchronize()
    if not matrix:
        raise InputError("the inclusions fill the whole window: no matrix is left.")
    _imprint_opposite_faces(dim, size)
    entities = {t for _, t in gmsh.model.getEntities(dim)}
    kept_matrix = sorted(entities - (set(inclusion) if not spec.void else set()))
    kept_inclusion = sorted(entities - set(kept_matrix))
    gmsh.model.addPhysicalGroup(dim, kept_matrix, PHASE_TAGS["matrix"], name="matrix")
    if kept_inclusion and not spec.void:
        gmsh.model.addPhysicalGroup(dim, kept_inclusion, PHASE_TAGS["inclusion"], name="inclusion")
    try:
        set_periodic(dim, tuple(float(s) for s in size))
    except Exception as err:  # gmsh raises a bare Exception; set_periodic an InputError
        raise InputError(
            f"micro.delta: the faces of the window {size.tolist()} at {origin.tolist()} of the "
            f"{spec.kind} medium cannot be made periodic ({err}); use whole periods (δ/ε an "
            "integer)."
        ) from err


def _imprint_opposite_faces(dim: int, size: np.ndarray) -> None:
    """Split each window face where its opposite face is split (a non-integer window).

    The boundary entities of dimension dim − 2 (points in 2D, curves in 3D) that lie on a
    face x_d = 0 are copied to x_d = W_d and the other way round, and the whole model is
    fragmented with the copies: coincident copies merge with what is there, new ones split
    the face. Whole-period windows gain nothing (their faces match already).
    """
    occ = gmsh.model.occ
    eps = 1e-7 * float(size.max())
    big = 1e3 * float(size.max())
    copies = []
    for d in range(dim):
        for value, target in ((0.0, float(size[d])), (float(size[d]), 0.0)):
            low = [-big] * 3 + [big] * 3
            low[d], low[3 + d] = value - eps, value + eps
            found = gmsh.model.getEntitiesInBoundingBox(*low, dim=dim - 2)
            if not found:
                continue
            moved = occ.copy(found)
            shift = [0.0, 0.0, 0.0]
            shift[d] = target - value
            occ.translate(moved, *shift)
            copies.extend(moved)
    if not copies:
        return
    volumes = gmsh.model.getEntities(dim)
    occ.fragment(volumes, copies)
    occ.synchronize()
    # copies that fell on existing entities merged with them; the rest split the faces.
    # Anything left of lower dimension that bounds nothing is removed.
    stray = [
        (d, t)
        for d, t in gmsh.model.getEntities(dim - 2)
        if not gmsh.model.getAdjacencies(d, t)[0].size
    ]
    if stray:
        occ.remove(stray)
        occ.synchronize()


def window_key(spec: RVESpec, origin: np.ndarray, size: np.ndarray) -> str:
    """A hash of everything that shapes a window's mesh (its cache file name)."""
    text = json.dumps(
        {
            "spec": spec.key(),
            "origin": [round(float(v), 12) for v in origin],
            "size": [round(float(v), 12) for v in size],
            "gmsh": gmsh.__version__,
            "geometry": GEOMETRY_VERSION,
            "window": WINDOW_VERSION,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def lattice_window(spec: RVESpec, origin: np.ndarray, size: np.ndarray) -> RVEMesh:
    """Mesh the window [origin, origin + size] (cell units) of ``spec``'s medium as an RVE.

    The mesh has the cell's element size (``spec.mesh_size``, uniform), is periodic node for
    node (see the module note), is cached like generated cells (a hash of the spec, the
    window and the code versions), and is read and checked by ``build_rve`` as a user file.

    Args:
        spec: A generated periodic cell (not ``file``, not ``fibers``).
        origin: The window's lower corner in the cell's coordinates, shape ``(dim,)``.
        size: The window's edges, shape ``(dim,)``, each > 0.

    Raises:
        InputError: a bad size, a kind without windows, a window too large to mesh, or a
            window gmsh cannot mesh (the message says which).
    """
    if spec.kind not in WINDOW_KINDS:
        raise InputError(
            f"micro.medium: windows of rve.kind = {spec.kind!r} are not built; kinds with "
            f"windows: {list(WINDOW_KINDS)}."
        )
    dim = spec.dim
    origin = np.asarray(origin, dtype=np.float64).reshape(dim)
    size = np.asarray(size, dtype=np.float64).reshape(dim)
    if not (np.all(np.isfinite(size)) and np.all(size > 0) and np.all(np.isfinite(origin))):
        raise InputError(f"micro.delta: a window needs positive edges, got {size.tolist()}.")
    cells = (2.3 if dim == 2 else 6.5) * math.prod(float(s) / spec.h for s in size)
    if cells > 4_000_000:
        raise InputError(
            f"micro.delta: the window {size.tolist()} at mesh size {spec.h} would have about "
            f"{cells:.2g} cells; use a smaller delta or a larger rve.mesh_size."
        )
    periods = size / np.asarray(spec.lengths)
    curved = spec.kind != "laminate"
    if dim == 3 and curved and not np.allclose(periods, np.round(periods), rtol=0.0, atol=1e-9):
        raise InputError(
            f"micro.delta: a 3D window of {np.round(periods, 6).tolist()} periods of the "
            f"{spec.kind} medium is not built: 3D windows of curved inclusions must hold whole "
            "periods (δ/ε an integer) for now; non-integer windows are built in 2D, for the 3D "
            "laminate, and in 3D with a coefficient medium (micro.medium = 'module:function')."
        )
    origin = np.mod(origin, np.asarray(spec.lengths))  # the medium is periodic
    path = cache_dir() / "windows" / f"{spec.kind}-{dim}d-{window_key(spec, origin, size)}.msh"
    if not path.is_file():
        with gmsh_session():
            build_window(spec, origin, size)
            gmsh.option.setNumber("Mesh.MeshSizeMin", spec.h)
            gmsh.option.setNumber("Mesh.MeshSizeMax", spec.h)
            gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
            gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
            gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
            gmsh.option.setNumber("Mesh.Algorithm", 6)
            gmsh.option.setNumber("Mesh.Algorithm3D", 1)
            try:
                gmsh.model.mesh.generate(dim)
            except Exception as err:  # gmsh raises a bare Exception
                raise InputError(
                    f"gmsh could not mesh the window {size.tolist()} at {origin.tolist()} of the "
                    f"{spec.kind} medium ({err}); try a smaller rve.mesh_size."
                ) from err
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.msh")
            gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
            gmsh.write(str(partial))
            partial.replace(path)
    return build_rve(RVESpec(kind="file", dim=dim, path=str(path), void=spec.void))


def window_in_cell_units(
    spec: RVESpec, x: np.ndarray, delta: float, epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    """Origin and size (cell units) of the window of edge δ centred at macro point ``x``.

    The cell's first edge L1 is one period ε: a macro length ℓ is ℓ L1 / ε cell units.
    """
    scale = spec.lengths[0] / epsilon
    dim = spec.dim
    centre = np.asarray(x, dtype=np.float64).reshape(-1)[:dim] * scale
    size = np.full(dim, delta * scale)
    return centre - 0.5 * size, size

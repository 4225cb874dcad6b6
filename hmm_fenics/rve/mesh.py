"""RVE meshes on a single process: generate or read with gmsh, verify periodicity, convert."""

import hashlib
import json
import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, NamedTuple

import gmsh
import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.rve.checks import cell_volumes, check_bonded, check_connected, check_fills_box
from hmm_fenics.rve.geometry import (
    GMSH_LOCK,
    generate,
    gmsh_session,
    open_mesh_file,
    surface_threads,
)
from hmm_fenics.rve.image import add_to_gmsh, image_grid
from hmm_fenics.rve.periodic import periodic_images
from hmm_fenics.rve.serial_mesh import serial_mesh
from hmm_fenics.rve.spec import RVESpec

REQUIRED_PHASES = ("matrix", "inclusion")


class RVEMesh(NamedTuple):
    """A periodic RVE mesh.

    Attributes:
        mesh: DOLFINx mesh on ``MPI.COMM_SELF``.
        cell_tags: Cell ``MeshTags`` carrying the phase tags.
        phases: Phase name → cell tag, e.g. ``{"matrix": 1, "inclusion": 2}``.
        lower: Origin corner of the cell, shape ``(dim,)``.
        upper: Opposite corner, shape ``(dim,)``.
        fraction: Achieved volume fraction of ``inclusion`` (from the mesh cells; for a
            void inclusion, the part of the box not covered by the mesh).
        spec: The spec it was built from.
    """

    mesh: Any
    cell_tags: Any
    phases: dict[str, int]
    lower: npt.NDArray[np.float64]
    upper: npt.NDArray[np.float64]
    fraction: float
    spec: RVESpec

    @property
    def volume(self) -> float:
        """|Y|, the measure of the cell box (voids included)."""
        return float(np.prod(self.upper - self.lower))


class GmshCells(NamedTuple):
    """The phase cells of a gmsh model as arrays: what ``build_rve`` needs of gmsh.

    Attributes:
        phases: Phase name → physical tag (``_phase_groups``).
        x: Node coordinates, shape ``(n_nodes, dim)``.
        cells: Node indices of each cell in gmsh's node order, ``(n_cells, nodes per cell)``.
        tags: Phase tag of each cell, ``(n_cells,)``.
        gmsh_type: gmsh element type of ``cells`` (incomplete types already completed).
    """

    phases: dict[str, int]
    x: npt.NDArray[np.float64]
    cells: npt.NDArray[np.int64]
    tags: npt.NDArray[np.int32]
    gmsh_type: int


GEOMETRY_VERSION = 8
"""Bump when the builders change, so that cached meshes of the old code are not reused."""


def cache_dir() -> Path:
    """Where generated meshes are cached: ``$HMM_FENICS_CACHE``, else ``$XDG_CACHE_HOME/hmm_fenics``."""
    root = os.environ.get("HMM_FENICS_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hmm_fenics" / "rve"


def cache_path(spec: RVESpec) -> Path:
    """The cache file of a generated spec: a hash of every field that shapes the mesh."""
    key = json.dumps(
        {"spec": spec.key(), "gmsh": gmsh.__version__, "geometry": GEOMETRY_VERSION},
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir() / f"{spec.kind}-{spec.dim}d-{digest}.msh"


def build_rve(spec: RVESpec, cache: bool = True) -> RVEMesh:
    """Mesh (or read) the RVE of ``spec`` on ``MPI.COMM_SELF`` and check it is periodic.

    (Image cells are exempt: pores that differ on opposite faces leave a cell for the
    dirichlet and neumann conditions; ``micro.boundary`` refuses it as periodic.)

    Generated meshes are cached by a hash of the spec (``cache_path``): identical specs give
    identical meshes, and a repeated run reads the file instead of meshing again. Image
    cells are meshed voxel by voxel without gmsh (``hmm_fenics.rve.image``).

    Raises:
        InputError: the file is missing or unreadable, lacks a phase group, or has the wrong
            dimension; the geometry cannot be built.
        PeriodicityError: opposite faces do not match node for node.
    """
    if spec.kind == "image":
        grid = image_grid(spec)
        mesh, cell_tags, phases, lower, upper = grid[:5]
    else:
        cells = _meshed_ahead(spec) if cache else None
        if cells is None:
            with gmsh_session():
                _load_or_generate(spec, cache)
                cells = _read_cells(spec)
        phases = cells.phases
        if spec.kind == "file":
            lower, upper = cells.x.min(axis=0), cells.x.max(axis=0)
        else:  # voids may take the corners away: the box is the spec's
            lower, upper = np.zeros(spec.dim), np.asarray(spec.lengths, dtype=np.float64)
        periodic_images(cells.x, lower, upper)
        mesh, cell_tags = _to_dolfinx(cells)
    check_bonded(mesh)
    if spec.kind == "file":
        check_fills_box(spec, mesh, lower, upper)
    check_connected(mesh, lower, upper)
    box = float(np.prod(upper - lower))
    if spec.kind == "image":  # the share of the box that is not matrix, pores included
        fraction = 1.0 - grid.fractions["matrix"]
    elif "inclusion" in phases:
        volumes = cell_volumes(mesh)
        inside = np.isin(
            np.arange(len(volumes)), cell_tags.indices[cell_tags.values == phases["inclusion"]]
        )
        fraction = float(volumes[inside].sum() / box)
    else:  # the inclusion is a void
        fraction = 1.0 - float(cell_volumes(mesh).sum() / box)
    return RVEMesh(mesh, cell_tags, phases, lower, upper, fraction, spec)


_AHEAD: dict[Path, threading.Thread] = {}
"""Cache file → the ``mesh_ahead`` thread that meshes it (started in this process)."""
_AHEAD_RESULTS: dict[Path, GmshCells | BaseException] = {}
"""Cache file → the cells its ``mesh_ahead`` thread read, or the error it met, until
``build_rve`` takes them."""


def mesh_ahead(spec: RVESpec) -> None:
    """Start meshing ``spec`` into the mesh cache on a thread; the caller goes on meanwhile.

    gmsh works in C++ without the interpreter lock, so a caller that meshes a cell next can
    load MPI, DOLFINx, UFL and PETSc meanwhile (``hmm-fenics homogenize``). This function
    returns once the surfaces are being meshed: it loads MPI, on the caller's thread, when
    the thread asks how many threads mesh them (``surface_threads``). The thread also reads
    the cells out of gmsh; ``build_rve`` of the spec waits for it and takes them, or raises
    the error it met. Nothing is started for a mesh file, an image cell, a cached spec, or
    while gmsh is in use (a session open here or on another thread, or a thread meshing
    ahead). A process must not unload gmsh under the thread: see ``meshing_ahead``.
    """
    if spec.kind in ("file", "image") or gmsh.isInitialized() or meshing_ahead():
        return
    path = cache_path(spec)
    if path.is_file():
        return
    asked = threading.Event()  # the thread needs its surface threads, or has ended
    threads: Future[int] = Future()

    def count() -> int:
        asked.set()
        return threads.result()

    def mesh() -> None:
        try:
            with GMSH_LOCK, gmsh_session(count):
                _load_or_generate(spec, cache=True)
                _AHEAD_RESULTS[path] = _read_cells(spec)
        except BaseException as err:  # an Exception is raised by build_rve, where it is reported
            _AHEAD_RESULTS[path] = err
        finally:
            asked.set()

    thread = threading.Thread(target=mesh, name="hmm-fenics mesh_ahead", daemon=True)
    _AHEAD[path] = thread
    thread.start()
    try:
        # The caller waits while gmsh builds the cell and meshes its curves, much Python
        # between gmsh calls: loading MPI meanwhile (a library load holds the interpreter
        # lock) slowed that from 0.02 s to 0.06-0.16 s. MPI is loaded when the surfaces are
        # to be meshed, in C++ without the lock, on the caller's thread: never on the mesher's.
        asked.wait()
        threads.set_result(surface_threads())
    except BaseException as err:  # interrupted: the thread must not wait for ever
        threads.set_exception(err)
        raise


def _meshed_ahead(spec: RVESpec) -> GmshCells | None:
    """The cells a ``mesh_ahead`` thread read for ``spec`` (once it is done), or None.

    Raises:
        Exception: the error the thread met, raised here rather than meshing again (a
            thread whose caller was interrupted is not an error: None).
    """
    if spec.kind == "file":
        return None
    path = cache_path(spec)
    thread = _AHEAD.get(path)
    if thread is None:
        return None
    thread.join()
    result = _AHEAD_RESULTS.pop(path, None)
    if isinstance(result, Exception):
        raise result
    if isinstance(result, BaseException):  # its caller was interrupted: mesh again
        return None
    return result


def meshing_ahead() -> bool:
    """Whether a ``mesh_ahead`` thread is still in gmsh.

    A process that ends then (interrupted, or failed before it needed the cell) must leave
    with ``os._exit``: a normal exit unloads gmsh's libraries under the thread and crashes.
    """
    return any(thread.is_alive() for thread in _AHEAD.values())


def _load_or_generate(spec: RVESpec, cache: bool) -> None:
    """Fill the current gmsh model with the mesh of ``spec``: from its file, the cache, or gmsh."""
    if spec.kind == "file":
        assert spec.path is not None  # checked by RVESpec
        dim = open_mesh_file(spec.path)
        if dim != spec.dim:
            raise InputError(
                f"rve.path: {spec.path!r} holds a {dim}D mesh but rve.dim = {spec.dim}."
            )
        return
    cached = cache_path(spec) if cache else None
    if cached is not None and cached.is_file():
        gmsh.merge(str(cached))
        return
    generate(spec)
    if cached is not None:  # write then rename: concurrent ranks never read a partial file
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.msh")
        gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
        # binary: exact doubles, written ~5x and read ~4x faster than text (a 2D disk cell
        # of 21k nodes: 0.017 s against 0.095 s to write)
        gmsh.option.setNumber("Mesh.Binary", 1)
        try:
            gmsh.write(str(partial))
        finally:
            gmsh.option.setNumber("Mesh.Binary", 0)  # files written for users stay text
        partial.replace(cached)
        # Continue from the file, as every later run will (the same model: entities, element
        # order), so that the first run does not differ from the next ones.
        gmsh.model.remove()
        gmsh.model.add("rve")
        gmsh.merge(str(cached))


def write_msh(spec: RVESpec, path: str | Path) -> Path:
    """Generate the RVE of ``spec`` with gmsh and save it as a ``.msh`` (format 4.1) file.

    The file keeps the periodic node pairs and the phase groups, so it reads back with
    ``RVESpec(kind="file", path=...)`` (or any other code) unchanged. An image cell is
    written as its voxel mesh (quadrilaterals/hexahedra or simplices, phase groups).
    """
    if spec.kind == "file":
        raise InputError('write_msh generates a mesh; kind = "file" already is one.')
    out = Path(path)
    grid = image_grid(spec) if spec.kind == "image" else None
    with gmsh_session():
        if grid is None:
            _load_or_generate(spec, cache=True)
        else:
            add_to_gmsh(grid.mesh, grid.cell_tags, grid.phases)
        gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
        out.parent.mkdir(parents=True, exist_ok=True)
        gmsh.write(str(out))
    return out


def _phase_groups(spec: RVESpec) -> dict[str, int]:
    """Phase name → tag of the top-dimensional physical groups; all required ones present."""
    phases = {
        gmsh.model.getPhysicalName(d, tag): tag for d, tag in gmsh.model.getPhysicalGroups(spec.dim)
    }
    # A generated void cell, or a user mesh with a `matrix` group only, is porous (a user
    # mesh must then fill its box unless its inclusion is declared void: check_fills_box).
    porous = spec.void or (spec.kind == "file" and set(phases) == {"matrix"})
    required = ("matrix",) if porous else REQUIRED_PHASES
    missing = [name for name in required if name not in phases]
    extra = sorted(set(phases) - set(REQUIRED_PHASES))
    if spec.kind == "file" and spec.void and "inclusion" in phases:
        raise InputError(
            f"the inclusion phase is declared void, but the mesh file {spec.path!r} meshes an "
            "'inclusion' group: remove that group from the mesh (a void is not meshed), or give "
            "the inclusion a material instead of void = true."
        )
    if missing or extra:
        where = f"the mesh file {spec.path!r}" if spec.kind == "file" else "the generated RVE"
        raise InputError(
            f"{where} lacks the {spec.dim}D physical group(s) {missing or ['inclusion']} (it has "
            f"{sorted(phases)}); name the cell groups 'matrix' and 'inclusion' ('matrix' only for a "
            "porous cell)."
        )
    return phases


CELL_TYPES = {
    2: ("triangle", 3),
    3: ("quadrilateral", 4),
    9: ("triangle", 6),
    10: ("quadrilateral", 9),
    4: ("tetrahedron", 4),
    5: ("hexahedron", 8),
    11: ("tetrahedron", 10),
    12: ("hexahedron", 27),
}
"""gmsh element types the RVE reader accepts → (DOLFINx cell type, nodes per cell)."""
INCOMPLETE = {16: 10, 17: 12}
"""Incomplete second-order types → the complete type they are read as (DOLFINx has no
serendipity geometry): the 8-node quadrilateral and the 20-node hexahedron."""
ACCEPTED = {2: (2, 3, 9, 10, 16), 3: (4, 5, 11, 12, 17)}


def _element_name(gmsh_type: int) -> str:
    """The name gmsh gives an element type (``3 (Quadrilateral 4)``), or the bare number."""
    try:
        return f"{int(gmsh_type)} ({gmsh.model.mesh.getElementProperties(int(gmsh_type))[0]})"
    except Exception:  # gmsh raises a bare Exception for an unknown type
        return str(int(gmsh_type))


def _read_cells(spec: RVESpec) -> GmshCells:
    """The phase cells of the current gmsh model (a session must be open).

    Triangles, quadrilaterals, tetrahedra and hexahedra of first and second order, one cell
    type per mesh; the 8-node quadrilateral and 20-node hexahedron become 9- and 27-node
    ones.

    Raises:
        InputError: a missing phase group (``_phase_groups``), an element type DOLFINx has
            no geometry for (prisms, pyramids, third order, ...), or mixed types.
    """
    dim = spec.dim
    phases = _phase_groups(spec)
    blocks: dict[int, list[npt.NDArray[np.uint64]]] = {}
    values: dict[int, list[npt.NDArray[np.int32]]] = {}
    for tag in phases.values():
        for entity in gmsh.model.getEntitiesForPhysicalGroup(dim, tag):
            types, _, nodes = gmsh.model.mesh.getElements(dim, entity)
            for gmsh_type, block in zip(types, nodes, strict=True):
                blocks.setdefault(int(gmsh_type), []).append(block)
                n = len(block) // int(gmsh.model.mesh.getElementProperties(gmsh_type)[3])
                values.setdefault(int(gmsh_type), []).append(np.full(n, tag, dtype=np.int32))
    accepted = ", ".join(_element_name(t) for t in ACCEPTED[dim])
    unsupported = sorted(set(blocks) - set(ACCEPTED[dim]))
    if unsupported:
        raise InputError(
            f"the RVE mesh has {dim}D elements of gmsh type(s) "
            f"{', '.join(_element_name(t) for t in unsupported)}; accepted are {accepted}."
        )
    if len(blocks) > 1:
        raise InputError(
            f"the RVE mesh mixes {dim}D element types "
            f"{', '.join(_element_name(t) for t in sorted(blocks))}; a cell mesh must hold one "
            f"type of {accepted} (recombine all of it in gmsh, or none)."
        )
    if not blocks:
        raise InputError(f"the RVE mesh has no {dim}D elements in its phase groups.")
    read_type = next(iter(blocks))
    n_read = int(gmsh.model.mesh.getElementProperties(read_type)[3])
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    order = np.argsort(node_tags)
    connectivity = np.concatenate(blocks[read_type]).reshape(-1, n_read)
    cells = order[np.searchsorted(node_tags[order], connectivity)].astype(np.int64)
    x = coords.reshape(-1, 3)[:, :dim].copy()
    gmsh_type = INCOMPLETE.get(read_type, read_type)
    if gmsh_type != read_type:
        cells, x = _complete_nodes(read_type, gmsh_type, cells, x)
    return GmshCells(phases, x, cells, np.concatenate(values[read_type]), gmsh_type)


def _to_dolfinx(read: GmshCells) -> tuple[Any, Any]:
    """The cells read from gmsh as a DOLFINx mesh on ``MPI.COMM_SELF``, with the phase tags.

    A lean serial counterpart of ``dolfinx.io.gmsh.model_to_mesh``: no distribution and no
    facet tags, cell tags mapped through the original cell index.
    """
    from dolfinx import mesh as dmesh
    from dolfinx.io.gmsh import cell_perm_array, ufl_mesh

    dim = read.x.shape[1]
    name, n_nodes = CELL_TYPES[read.gmsh_type]
    cells = read.cells[:, cell_perm_array(dmesh.CellType[name], n_nodes)]
    element = ufl_mesh(read.gmsh_type, dim, np.float64).ufl_coordinate_element()
    mesh = serial_mesh(cells, element, read.x)
    tags = read.tags[mesh.topology.original_cell_index]
    cell_tags = dmesh.meshtags(mesh, dim, np.arange(len(tags), dtype=np.int32), tags)
    return mesh, cell_tags


def _complete_nodes(
    incomplete: int, complete: int, cells: npt.NDArray[np.int64], x: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Add the nodes an incomplete second-order mesh lacks (face and cell centres).

    Each new node is placed where the cell's own (serendipity) map puts the node's reference
    point, so straight-sided cells keep their shape and curved edges stay as they are. A face
    centre depends on that face's nodes only, so neighbours share it: nodes are merged by the
    corners of the face (or cell) they centre, exactly.

    Args:
        incomplete: gmsh type read (16 or 17).
        complete: gmsh type to build (10 or 12), whose first nodes are those of ``incomplete``.
        cells: Node indices in gmsh order, shape ``(n_cells, n_incomplete_nodes)``.
        x: Node coordinates, shape ``(n_nodes, dim)``.

    Returns:
        ``(cells, x)`` of the complete type, new nodes appended to ``x``.
    """
    dim = x.shape[1]
    _, _, _, n_all, reference, n_corners = gmsh.model.mesh.getElementProperties(complete)
    reference = np.asarray(reference).reshape(n_all, dim)
    n_old = cells.shape[1]
    extra = reference[n_old:]
    points = np.zeros((len(extra), 3))
    points[:, :dim] = extra
    _, basis, _ = gmsh.model.mesh.getBasisFunctions(incomplete, points.ravel(), "Lagrange")
    weights = np.asarray(basis).reshape(len(extra), n_old)
    new = np.einsum("pk,ckd->cpd", weights, x[cells]).reshape(-1, dim)
    # The corners of the sub-entity a new node centres: those on its faces (±1 coordinates)
    corners = reference[:n_corners]
    on = [np.all((np.abs(p) != 1) | (corners == p), axis=1) for p in extra]
    keys = np.full((len(cells), len(extra), n_corners), -1, dtype=np.int64)
    for k, mask in enumerate(on):
        keys[:, k, : mask.sum()] = np.sort(cells[:, :n_corners][:, mask], axis=1)
    _, first, inverse = np.unique(
        keys.reshape(-1, n_corners), axis=0, return_index=True, return_inverse=True
    )
    added = len(x) + inverse.reshape(len(cells), len(extra))
    return np.hstack([cells, added]), np.vstack([x, new[first]])

"""Pure gmsh builders of periodic RVE geometries (no DOLFINx here).

Every kind is a list of inclusion primitives (disks, ellipses, spheres, spheroids,
cylinders, boxes). Each primitive is added with all its periodic images that reach into
the cell, the cell box is fragmented with them and the pieces outside the box are dropped,
so inclusions that cross a face re-enter on the opposite one. Opposite faces are then made
periodic with ``gmsh.model.mesh.setPeriodic``, so that their nodes match exactly.
"""

import contextlib
import dataclasses
import functools
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import gmsh
import numpy as np

from hmm_fenics.errors import InputError
from hmm_fenics.rve.packing import default_gap_packing, random_packing, translated_copies
from hmm_fenics.rve.spec import RVESpec

PHASE_TAGS = {"matrix": 1, "inclusion": 2}

log = logging.getLogger(__name__)


class Primitive(NamedTuple):
    """One inclusion before periodic wrapping.

    Attributes:
        shape: ``disk``, ``ellipse``, ``sphere``, ``ellipsoid`` or ``box``.
        center: Centre (box: lower corner), length ``dim``.
        a: Semi-major axis (radius; box: lengths are ``size``).
        b: Semi-minor axis.
        angle: Rotation of the major axis from x1 in the x1–x2 plane, radians.
        size: Box lengths (boxes only).
    """

    shape: str
    center: tuple[float, ...]
    a: float = 0.0
    b: float = 0.0
    angle: float = 0.0
    size: tuple[float, ...] = ()

    def half_extents(self, lengths: tuple[float, ...]) -> tuple[float, ...]:
        """Half-extents of the axis-aligned bounding box, per direction."""
        if self.shape == "box":
            return tuple(0.5 * s for s in self.size)
        c, s = math.cos(self.angle), math.sin(self.angle)
        e1 = math.hypot(self.a * c, self.b * s)
        e2 = math.hypot(self.a * s, self.b * c)
        if len(lengths) == 2:
            return (e1, e2)
        return (e1, e2, self.b)


def primitives(spec: RVESpec) -> list[Primitive]:
    """The inclusions of a generated kind, each once (images are added when building)."""
    L = spec.lengths
    kind = spec.kind
    if kind == "laminate":
        width = spec.fraction * L[0]
        return [
            Primitive("box", (0.5 * (L[0] - width), *(0.0,) * (spec.dim - 1)), size=(width, *L[1:]))
        ]
    if kind == "checkerboard":
        half = (0.5 * L[0], 0.5 * L[1])
        return [Primitive("box", (0.0, 0.0), size=half), Primitive("box", half, size=half)]
    if kind == "random":
        draw = (L, spec.count, spec.fraction, str(spec.shape), spec.aspect, spec.radius_spread)
        if spec.min_gap is None:  # the default: one mesh size, less if that jams
            packing, _ = default_gap_packing(float(spec.mesh_size or 0.0), *draw, seed=spec.seed)
        else:
            packing = random_packing(*draw, min_gap=spec.min_gap, seed=spec.seed)
        k = spec.radius_scale
        return [
            Primitive(
                str(spec.shape),
                tuple(map(float, c)),
                k * float(r),
                k * float(r) / packing.aspect,
                float(t),
            )
            for c, r, t in zip(packing.centers, packing.radii, packing.angles, strict=True)
        ]
    a, b = spec.semi_axes()
    angle = math.radians(spec.angle)
    shape = str(spec.shape)
    if kind == "inclusion":
        return [Primitive(shape, tuple(spec.center or ()), a, b, angle)]
    if kind == "square-array":
        n = spec.n
        return [
            Primitive(shape, ((i + 0.5) * L[0] / n, (j + 0.5) * L[1] / n), a, b, angle)
            for i in range(n)
            for j in range(n)
        ]
    if kind == "hex-array":  # corner fibre (wrapped to all four corners) and centre fibre
        return [
            Primitive(shape, (0.0, 0.0), a, b, angle),
            Primitive(shape, (0.5 * L[0], 0.5 * L[1]), a, b, angle),
        ]
    if kind == "fibers":  # the cross-section: extruded along x3 by build_geometry
        centres = (
            [(0.5 * L[0], 0.5 * L[1])]
            if spec.lattice == "square"
            else [(0.0, 0.0), (0.5 * L[0], 0.5 * L[1])]
        )
        return [Primitive("disk", c, a, a) for c in centres]
    if kind == "cubic-array":
        sites = {
            "simple": [(0.5, 0.5, 0.5)],
            "bcc": [(0.0, 0.0, 0.0), (0.5, 0.5, 0.5)],
            "fcc": [(0.0, 0.0, 0.0), (0.5, 0.5, 0.0), (0.5, 0.0, 0.5), (0.0, 0.5, 0.5)],
        }[str(spec.lattice)]
        return [
            Primitive(shape, tuple(f * x for f, x in zip(s, L, strict=True)), a, b, angle)
            for s in sites
        ]
    raise InputError(f"no geometry builder for rve.kind = {kind!r}.")


GMSH_LOCK = threading.RLock()
"""gmsh is one global state per process: a session holds this lock (``mesh_ahead`` meshes on
a thread of its own while the caller goes on)."""


@contextlib.contextmanager
def gmsh_session(threads: Callable[[], int] | None = None) -> Iterator[None]:
    """A fresh gmsh model, quiet, removed afterwards.

    Args:
        threads: How many threads mesh the surfaces, asked just before the RVE's surfaces
            are meshed (``mesh_geometry``): ``mesh_ahead``'s thread gets the count its
            caller computes meanwhile (MPI is loaded there). Default: the session meshes on
            :func:`surface_threads`, set when it opens.
    """
    global _session_threads
    with GMSH_LOCK:
        outer, _session_threads = _session_threads, threads
        started = not gmsh.isInitialized()
        if started:
            gmsh.initialize(interruptible=False)
        _quiet()
        gmsh.model.add("rve")
        try:
            yield
        finally:
            _session_threads = outer
            if gmsh.isInitialized():
                gmsh.model.remove()
            if started and gmsh.isInitialized():
                gmsh.finalize()


_session_threads: Callable[[], int] | None = None
"""The ``threads`` of the gmsh session open, if it was given one (gmsh is one global state:
one session at a time)."""


def _quiet() -> None:
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.option.setNumber("General.NumThreads", 1)
    # Surfaces are meshed in parallel, one per thread, on this rank's share of the cores: the
    # mesh is the same as with one thread (each surface is meshed alone on its curve mesh) and
    # a 2D disk cell of 21k nodes meshes in 0.23 s instead of 0.44 s on two cores. A count
    # the session was given is set just before meshing (mesh_geometry).
    if _session_threads is None:
        gmsh.option.setNumber("Mesh.MaxNumThreads2D", surface_threads())


@functools.cache
def surface_threads() -> int:
    """This rank's share of the cores it may run on: ranks of one job may share a node.

    The job's size is the divisor (the ranks on this node would need a collective), so a
    job spread over nodes meshes on fewer threads than it could, never on more cores than
    there are. ``OMP_NUM_THREADS``, which the Makefile and MPI jobs set to 1 for the BLAS of
    the solvers, is not consulted: gmsh's threads only run while a cell is meshed.
    """
    from mpi4py import MPI

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // MPI.COMM_WORLD.size)


def _add_shape(p: Primitive, center: np.ndarray, dim: int) -> tuple[int, int]:
    occ = gmsh.model.occ
    x, y = float(center[0]), float(center[1])
    z = float(center[2]) if dim == 3 else 0.0
    if p.shape == "box":
        lower = [x, y, z][:dim]
        tag = occ.addRectangle(*lower[:2], 0, *p.size) if dim == 2 else occ.addBox(*lower, *p.size)
        return (dim, tag)
    if p.shape == "disk" or p.shape == "ellipse":
        tag = occ.addDisk(x, y, 0, p.a, p.b)
    else:  # sphere / spheroid: a sphere of radius b stretched along x1
        tag = occ.addSphere(x, y, z, p.b)
        if p.a != p.b:
            occ.dilate([(3, tag)], x, y, z, p.a / p.b, 1, 1)
    if p.angle:
        occ.rotate([(dim, tag)], x, y, z, 0, 0, 1, p.angle)
    return (dim, tag)


def build_geometry(spec: RVESpec) -> None:
    """Create the OCC geometry of ``spec`` in the current gmsh model, with physical groups.

    Fibres are built as their 2D cross-section and extruded along x3, so that the
    cylinders need no seams on the periodic faces.
    """
    dim, L = spec.dim, spec.lengths
    occ = gmsh.model.occ
    extrude = spec.kind == "fibers"
    plane = 2 if extrude else dim
    cell = occ.addRectangle(0, 0, 0, *L[:2]) if plane == 2 else occ.addBox(0, 0, 0, *L)
    tools = []
    for p in primitives(spec):
        if p.shape == "box":  # boxes are placed inside the cell by construction
            tools.append(_add_shape(p, np.asarray(p.center), plane))
            continue
        extent = np.asarray(p.half_extents(L[:plane]))
        for image in translated_copies(np.asarray(p.center), extent, L[:plane], 1e-9 * max(L)):
            tools.append(_add_shape(p, image, plane))
    inclusion, matrix = cut_to_box(plane, cell, tools)
    if extrude:
        inclusion, matrix = _extrude_conforming(inclusion, matrix, L[2])
    if spec.void:
        occ.remove([(dim, t) for t in inclusion], recursive=True)
    occ.synchronize()
    if not matrix:
        raise InputError("the inclusions fill the whole cell: no matrix is left.")
    gmsh.model.addPhysicalGroup(dim, matrix, PHASE_TAGS["matrix"], name="matrix")
    if not spec.void:
        gmsh.model.addPhysicalGroup(dim, inclusion, PHASE_TAGS["inclusion"], name="inclusion")
    set_periodic(dim, L)
    _refine_near_interfaces(spec, inclusion if not spec.void else matrix)


def cut_to_box(dim: int, box: int, tools: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Fragment the OCC ``box`` with the inclusion ``tools``; drop what lies outside the box.

    Returns:
        ``(inclusion, matrix)``: the tags of the pieces inside the box that came from a tool,
        and of the rest of the box.
    """
    occ = gmsh.model.occ
    if not tools:
        occ.synchronize()
        return [], [box]
    _, pieces = occ.fragment([(dim, box)], tools)
    occ.synchronize()
    in_box = {t for _, t in pieces[0]}
    from_tools = {t for piece in pieces[1:] for _, t in piece}
    outside = sorted(from_tools - in_box)
    if outside:
        occ.remove([(dim, t) for t in outside], recursive=True)
    return sorted(in_box & from_tools), sorted(in_box - from_tools)


def _extrude_conforming(
    inclusion: list[int], matrix: list[int], height: float
) -> tuple[list[int], list[int]]:
    """Extrude the 2D phases along x3 into volumes that share their interfaces.

    Extruded one by one, neighbouring faces would get a lateral surface each, and the mesh
    would come apart at the fibre–matrix interface (the fibres would not be bonded); a
    fragment of all volumes glues them, and its map says which new volume came from which.
    """
    occ = gmsh.model.occ
    occ.synchronize()
    faces = inclusion + matrix
    out = occ.extrude([(2, t) for t in faces], 0, 0, height)
    volumes = [tag for d, tag in out if d == 3]  # one per face, in the order given
    assert len(volumes) == len(faces)
    _, pieces = occ.fragment([(3, v) for v in volumes], [])
    phase_of = dict(
        zip(volumes, ["inclusion"] * len(inclusion) + ["matrix"] * len(matrix), strict=True)
    )
    glued: dict[str, list[int]] = {"inclusion": [], "matrix": []}
    for v, piece in zip(volumes, pieces, strict=True):
        glued[phase_of[v]].extend(t for d, t in piece if d == 3)
    return sorted(set(glued["inclusion"])), sorted(set(glued["matrix"]))


def _refine_near_interfaces(spec: RVESpec, phase: list[int]) -> None:
    """Background size field: mesh_size / refine on the interfaces, mesh_size a few elements away."""
    dim, h = spec.dim, spec.h
    if spec.refine <= 1.0:
        return
    boundary = gmsh.model.getBoundary([(dim, t) for t in phase], combined=False, oriented=False)
    faces = _cell_face_entities(dim, spec.lengths)
    interfaces = sorted({abs(t) for _, t in boundary} - faces)
    if not interfaces:
        return
    field = gmsh.model.mesh.field
    distance = field.add("Distance")
    field.setNumbers(distance, "CurvesList" if dim == 2 else "SurfacesList", interfaces)
    field.setNumber(distance, "Sampling", 200 if dim == 2 else 40)
    threshold = field.add("Threshold")
    field.setNumber(threshold, "InField", distance)
    field.setNumber(threshold, "SizeMin", h / spec.refine)
    field.setNumber(threshold, "SizeMax", h)
    field.setNumber(threshold, "DistMin", 0.5 * h / spec.refine)
    field.setNumber(threshold, "DistMax", 2.0 * h)
    field.setAsBackgroundMesh(threshold)


def _cell_face_entities(dim: int, lengths: tuple[float, ...]) -> set[int]:
    eps = 1e-5 * max(lengths)
    found: set[int] = set()
    for d in range(dim):
        for value in (0.0, lengths[d]):
            box = [
                -eps,
                -eps,
                -eps,
                lengths[0] + eps,
                lengths[1] + eps,
                (lengths[2] if dim == 3 else 0) + eps,
            ]
            box[d], box[3 + d] = value - eps, value + eps
            found |= {t for _, t in gmsh.model.getEntitiesInBoundingBox(*box, dim=dim - 1)}
    return found


def set_periodic(dim: int, lengths: tuple[float, ...]) -> None:
    """Make every boundary entity on a face x_d = L_d the periodic image of one on x_d = 0.

    Raises:
        InputError: an entity on a max face has no unique partner, or the two faces hold
            different numbers of entities (the geometry is not periodic).
    """
    eps = 1e-5 * max(lengths)  # OCC bounding boxes are padded by its tolerance (~1e-7)
    big = 1e3 * max(lengths)
    for d in range(dim):
        low = [-big] * 3 + [big] * 3
        low[d], low[3 + d] = -eps, eps
        high = list(low)
        high[d], high[3 + d] = lengths[d] - eps, lengths[d] + eps
        masters = gmsh.model.getEntitiesInBoundingBox(*low, dim=dim - 1)
        slaves = gmsh.model.getEntitiesInBoundingBox(*high, dim=dim - 1)
        if len(masters) != len(slaves):
            raise InputError(
                f"face x{d + 1} = 0 has {len(masters)} boundary pieces but x{d + 1} = {lengths[d]} has "
                f"{len(slaves)}: the geometry is not periodic."
            )
        shift = [0.0, 0.0, 0.0]
        shift[d] = lengths[d]
        affine = [1, 0, 0, shift[0], 0, 1, 0, shift[1], 0, 0, 1, shift[2], 0, 0, 0, 1]
        boxes = {m: gmsh.model.getBoundingBox(dim - 1, m) for _, m in masters}
        for _, slave in slaves:
            box = gmsh.model.getBoundingBox(dim - 1, slave)
            match = [
                m
                for m, mbox in boxes.items()
                if all(abs(a + s - b) < eps for a, b, s in zip(mbox, box, shift * 2, strict=True))
            ]
            if len(match) != 1:
                raise InputError(
                    f"cannot pair boundary entity {slave} on face x{d + 1} = {lengths[d]} with one "
                    f"on x{d + 1} = 0 ({len(match)} candidates): the geometry is not periodic."
                )
            gmsh.model.mesh.setPeriodic(dim - 1, [slave], [match[0]], affine)


SURFACE_ALGORITHMS = (6, 5, 1)
"""Frontal-Delaunay, then Delaunay, then MeshAdapt: tried in turn when meshing fails."""
RESEED = 1_000_003
"""Offset between the packings a random cell tries when gmsh fails to mesh one."""
RANDOM_TRIES = 8
FRACTION_TOLERANCE = 1e-3
"""Relative error of the meshed fraction of curved inclusions that the mesher corrects."""
FIT_STEPS = 4
"""2D: boundary meshes tried at most to bring the polygonal fraction within tolerance."""
REMESH_3D = 2
"""3D: volume meshes redone at most to bring the fraction within tolerance."""


def meshed_fraction(spec: RVESpec) -> float:
    """Inclusion fraction of the current gmsh mesh (void: the part of the box left empty)."""
    x = _node_coordinates()
    volumes = {}
    for name, tag in PHASE_TAGS.items():
        total = 0.0
        if (spec.dim, tag) in gmsh.model.getPhysicalGroups(spec.dim):
            for entity in gmsh.model.getEntitiesForPhysicalGroup(spec.dim, tag):
                for nodes in gmsh.model.mesh.getElements(spec.dim, entity)[2]:
                    cells = x[nodes.reshape(-1, spec.dim + 1)][:, :, : spec.dim]
                    edges = cells[:, 1:] - cells[:, :1]
                    total += float(np.abs(np.linalg.det(edges)).sum()) / math.factorial(spec.dim)
        volumes[name] = total
    return _fraction(spec, volumes)


def boundary_fraction(spec: RVESpec) -> float:
    """Inclusion fraction of a 2D model whose curves only are meshed (before the surfaces).

    The triangles of a surface fill exactly the polygon that its boundary segments enclose,
    so the area of each phase is known from the 1D mesh (shoelace sum over the segments,
    each curve signed by its orientation in the surface's boundary): the meshed fraction of
    the 2D mesh to come, to round-off, at the cost of meshing the curves.
    """
    x = _node_coordinates()
    areas = {}
    for name, tag in PHASE_TAGS.items():
        total = 0.0
        if (2, tag) in gmsh.model.getPhysicalGroups(2):
            for surface in gmsh.model.getEntitiesForPhysicalGroup(2, tag):
                signed = 0.0
                for _, curve in gmsh.model.getBoundary([(2, surface)], False, True):
                    for nodes in gmsh.model.mesh.getElements(1, abs(curve))[2]:
                        p = x[nodes.reshape(-1, 2)]
                        cross = p[:, 0, 0] * p[:, 1, 1] - p[:, 1, 0] * p[:, 0, 1]
                        signed += math.copysign(0.5, curve) * float(cross.sum())
                total += abs(signed)
        areas[name] = total
    return _fraction(spec, areas)


def _node_coordinates() -> np.ndarray:
    """Coordinates of the mesh nodes of the current model, indexed by gmsh node tag."""
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    x = np.zeros((int(node_tags.max()) + 1, 3))
    x[node_tags] = coords.reshape(-1, 3)
    return x


def _fraction(spec: RVESpec, measures: dict[str, float]) -> float:
    if spec.void:
        return 1.0 - measures["matrix"] / spec.volume
    return measures["inclusion"] / spec.volume


def _off_target(spec: RVESpec, achieved: float) -> bool:
    return abs(achieved / spec.fraction - 1) >= FRACTION_TOLERANCE


def _attempts(spec: RVESpec) -> Iterator[tuple[RVESpec, int]]:
    """What to try, in order: other surface algorithms, or for random cells other packings.

    gmsh's 3D boundary recovery occasionally fails on a periodic sphere packing (a folded
    surface triangle where a cap meets a face). A random cell then takes the next packing
    of a deterministic sequence, seed + k·RESEED: the realization is the first packing of
    that sequence that meshes, so identical specs still give identical meshes.
    """
    yield spec, SURFACE_ALGORITHMS[0]
    if spec.kind == "random":
        for k in range(1, RANDOM_TRIES):
            yield dataclasses.replace(spec, seed=spec.seed + k * RESEED), SURFACE_ALGORITHMS[0]
    else:
        for algorithm in SURFACE_ALGORITHMS[1:]:
            yield spec, algorithm


def generate(spec: RVESpec) -> None:
    """Build and mesh ``spec`` in the current gmsh model (see ``_attempts`` for retries).

    Curved inclusions are enlarged so that the meshed (polygonal) fraction hits the target
    within ``FRACTION_TOLERANCE``. In 2D the surfaces are meshed once: the curves are meshed
    first, and the fraction their polygons enclose (:func:`boundary_fraction`) sets the
    enlargement, re-meshing only the curves. In 3D a volume mesh that misses is enlarged by
    its measured deficit and meshed again, at most ``REMESH_3D`` times. A miss left after
    that is logged as a warning (``RVEMesh.fraction`` reports it): in 3D the final mesh is
    measured, in 2D its polygons give its fraction to round-off.

    Raises:
        InputError: the spec cannot be built, or every attempt failed; the message says
            what to change.
    """
    failures: list[str] = []
    curved = spec.kind not in ("laminate", "checkerboard")
    for attempt, algorithm in _attempts(spec):
        if failures:  # a failed generate() leaves gmsh unable to mesh again: restart it
            gmsh.finalize()
            gmsh.initialize(interruptible=False)
            _quiet()
        try:
            fitted, achieved = attempt, math.nan
            if curved and spec.dim == 2:  # achieved: that of the surfaces to come, exactly
                fitted, achieved = _fit_boundary(attempt, algorithm)
            error = _mesh_once(fitted, algorithm, rebuild=fitted.dim != 2 or not curved)
            if error is None and curved:
                if spec.dim == 3:
                    achieved = meshed_fraction(fitted)
                for _ in range(REMESH_3D if spec.dim == 3 else 0):
                    if error is not None or not _off_target(spec, achieved):
                        break
                    scale = fitted.radius_scale * (spec.fraction / achieved) ** (1 / spec.dim)
                    fitted = dataclasses.replace(attempt, radius_scale=scale)
                    error = _mesh_once(fitted, algorithm)
                    achieved = meshed_fraction(fitted) if error is None else achieved
                if error is None and _off_target(spec, achieved):
                    log.warning(
                        "the %s cell's meshed inclusion fraction is %.6g against %.6g asked "
                        "(relative error %.1e); a smaller mesh_size brings it closer.",
                        spec.kind,
                        achieved,
                        spec.fraction,
                        abs(achieved / spec.fraction - 1),
                    )
            if error is None:
                return
        except InputError as err:
            if attempt is spec:  # the spec itself is at fault: say so at once
                raise
            error = str(err)  # e.g. a re-drawn packing that jams
        failures.append(error)
    raise InputError(
        f"gmsh could not mesh this {spec.kind} cell in {len(failures)} attempts ({failures[0]}); "
        "try another seed, a smaller mesh_size or a larger min_gap."
    )


def _fit_boundary(spec: RVESpec, algorithm: int) -> tuple[RVESpec, float]:
    """2D: build ``spec`` and mesh its curves, enlarged until their polygons hit the fraction.

    Leaves the geometry and its curve mesh in the model (the surfaces are meshed next) and
    returns the spec with the ``radius_scale`` that was used and the fraction its polygons
    enclose (:func:`boundary_fraction`: that of the surface mesh, to round-off).
    """
    fitted = spec
    for step in range(1, FIT_STEPS + 1):
        gmsh.model.remove()
        gmsh.model.add("rve")
        build_geometry(fitted)
        _mesh_options(fitted, algorithm)
        gmsh.model.mesh.generate(1)
        achieved = boundary_fraction(fitted)
        if step == FIT_STEPS or not _off_target(spec, achieved):
            return fitted, achieved
        scale = fitted.radius_scale * math.sqrt(spec.fraction / achieved)
        fitted = dataclasses.replace(spec, radius_scale=scale)
    raise ValueError(f"FIT_STEPS must be at least 1, got {FIT_STEPS}.")


def _mesh_once(spec: RVESpec, algorithm: int, rebuild: bool = True) -> str | None:
    """Mesh ``spec`` (from scratch, or on the curve mesh in the model); the gmsh error or None."""
    if rebuild:
        gmsh.model.remove()
        gmsh.model.add("rve")
        build_geometry(spec)
    try:
        mesh_geometry(spec, algorithm)
    except Exception as err:  # gmsh raises a bare Exception
        return str(err)
    if not len(gmsh.model.mesh.getElements(spec.dim)[1]):
        return f"no {spec.dim}D elements"
    return None


def mesh_geometry(spec: RVESpec, algorithm: int = SURFACE_ALGORITHMS[0]) -> None:
    """Mesh the current model: ``mesh_size`` in the bulk, finer near interfaces.

    Lower-dimensional entities meshed already (the curves, by ``_fit_boundary``) are kept.
    """
    _mesh_options(spec, algorithm)
    if _session_threads is not None:  # see _quiet
        gmsh.option.setNumber("Mesh.MaxNumThreads2D", _session_threads())
    gmsh.model.mesh.generate(spec.dim)


def _mesh_options(spec: RVESpec, algorithm: int) -> None:
    h = spec.h
    gmsh.option.setNumber("Mesh.MeshSizeMin", h / max(spec.refine, 1.0))
    gmsh.option.setNumber("Mesh.MeshSizeMax", h)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    gmsh.option.setNumber("Mesh.Algorithm", algorithm)
    gmsh.option.setNumber("Mesh.Algorithm3D", 1)
    # 2D: no Laplacian smoothing pass. It was 40% of a disk cell's meshing time (0.72 -> 0.44 s
    # at h = 1/128) and the homogenized tensors' errors grow by 1-2% at h = 1/128, 2-7% at
    # h = 1/10 (bench/mesh_smoothing.py).
    gmsh.option.setNumber("Mesh.Smoothing", 0 if spec.dim == 2 else 1)
    # 2D: the size field is integrated along the curves to 1e-6, not gmsh's 1e-9: the disk
    # cell at h = 1/128 meshes in 0.26 s instead of 0.34 s, its elements as good (SICN min
    # 0.51, mean 0.99 both), its tensor within 2e-6 (h = 1/10 to 1/128) of the 1e-9 mesh's.
    # Not in 3D: there the volume meshes it leads to vary in quality.
    gmsh.option.setNumber("Mesh.LcIntegrationPrecision", 1e-6 if spec.dim == 2 else 1e-9)


def open_mesh_file(path: str) -> int:
    """Load a ``.msh`` file into the current gmsh model; return its top dimension."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"rve.path: mesh file {str(file)!r} does not exist.")
    try:
        gmsh.merge(str(file))
    except Exception as err:
        raise InputError(f"rve.path: gmsh cannot read {str(file)!r}: {err}") from err
    dims = [d for d, _ in gmsh.model.getPhysicalGroups()]
    if not dims:
        raise InputError(
            f"rve.path: {str(file)!r} has no physical groups; name the cell groups 'matrix' and "
            "'inclusion'."
        )
    return int(max(dims))

"""Pure gmsh builders of periodic RVE geometries (no DOLFINx here).

Every cell is the box [0, L1]×[0, L2](×[0, L3]) (the unit box for now) with two physical
groups, ``matrix`` (tag 1) and ``inclusion`` (tag 2), and opposite faces made periodic with
``gmsh.model.mesh.setPeriodic`` so that their nodes match exactly.
"""

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gmsh

from hmm_fenics.errors import InputError

PHASE_TAGS = {"matrix": 1, "inclusion": 2}
KINDS = ("inclusion", "laminate", "file")
MAX_CELLS = 4_000_000
"""Meshes estimated above this many cells are refused: they would not fit a micro solve."""


@dataclass(frozen=True)
class RVESpec:
    """What RVE to mesh.

    Args:
        kind: ``"inclusion"`` (centred disk in 2D, sphere in 3D), ``"laminate"`` (a layer of
            fraction ``fraction`` normal to x1, centred) or ``"file"`` (a user ``.msh``).
        dim: 2 or 3.
        fraction: Target volume fraction of the ``inclusion`` phase, in (0, 1).
        mesh_size: Target element size in cell units (the cell is the unit box).
        path: The ``.msh`` file, for ``kind = "file"``.
    """

    kind: str = "inclusion"
    dim: int = 2
    fraction: float = 0.4
    mesh_size: float = 0.02
    path: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"rve.kind must be one of {list(KINDS)}, got {self.kind!r}.")
        if self.dim not in (2, 3):
            raise InputError(f"rve.dim must be 2 or 3, got {self.dim}.")
        if self.kind == "file":
            if not self.path:
                raise InputError('rve.kind = "file" needs rve.path, the .msh file to read.')
            return
        if self.path is not None:
            raise InputError(f'rve.path is only read with kind = "file" (kind is {self.kind!r}).')
        if not 0.0 < self.fraction < 1.0:
            raise InputError(
                f"rve.fraction must lie strictly between 0 and 1, got {self.fraction}."
            )
        if not (math.isfinite(self.mesh_size) and self.mesh_size > 0.0):
            raise InputError(f"rve.mesh_size must be positive, got {self.mesh_size}.")
        cells = (2.3 if self.dim == 2 else 6.5) / self.mesh_size**self.dim
        if cells > MAX_CELLS:
            raise InputError(
                f"rve.mesh_size = {self.mesh_size} would give about {cells:.2g} cells in {self.dim}D "
                f"(limit {MAX_CELLS:.0e}); use a larger mesh_size."
            )
        if self.mesh_size > 0.5:
            raise InputError(
                f"rve.mesh_size = {self.mesh_size} is coarser than half the cell; use ≤ 0.5."
            )
        if self.kind == "inclusion":
            radius = self.inclusion_radius()
            gap = 1.0 - 2.0 * radius
            if gap < self.mesh_size:
                shape = "disk" if self.dim == 2 else "sphere"
                limit = math.pi / 4 if self.dim == 2 else math.pi / 6
                raise InputError(
                    f"rve.fraction = {self.fraction}: the centred {shape} would have diameter "
                    f"{2 * radius:.4g}, leaving a gap of {gap:.3g} to the unit cell's width, less "
                    f"than one element (mesh_size {self.mesh_size}). A {shape} fits only below "
                    f"fraction {limit:.4f}; lower the fraction or the mesh_size."
                )

    def inclusion_radius(self) -> float:
        """Radius of the centred disk (2D) or sphere (3D) with the target fraction."""
        if self.dim == 2:
            return math.sqrt(self.fraction / math.pi)
        return float((3.0 * self.fraction / (4.0 * math.pi)) ** (1.0 / 3.0))


@contextlib.contextmanager
def gmsh_session() -> Iterator[None]:
    """A fresh gmsh model, quiet, removed afterwards (gmsh initialised if needed)."""
    started = not gmsh.isInitialized()
    if started:
        gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.model.add("rve")
    try:
        yield
    finally:
        gmsh.model.remove()
        if started:
            gmsh.finalize()


def build_geometry(spec: RVESpec) -> None:
    """Create the OCC geometry of ``spec`` in the current gmsh model, with physical groups."""
    dim = spec.dim
    occ = gmsh.model.occ
    if dim == 2:
        cell = occ.addRectangle(0, 0, 0, 1, 1)
    else:
        cell = occ.addBox(0, 0, 0, 1, 1, 1)
    if spec.kind == "inclusion":
        r = spec.inclusion_radius()
        tool = occ.addDisk(0.5, 0.5, 0, r, r) if dim == 2 else occ.addSphere(0.5, 0.5, 0.5, r)
    elif spec.kind == "laminate":
        x0 = 0.5 * (1.0 - spec.fraction)
        if dim == 2:
            tool = occ.addRectangle(x0, 0, 0, spec.fraction, 1)
        else:
            tool = occ.addBox(x0, 0, 0, spec.fraction, 1, 1)
    else:
        raise InputError(f"no geometry builder for rve.kind = {spec.kind!r}.")
    _, pieces = occ.fragment([(dim, cell)], [(dim, tool)])
    occ.synchronize()
    inclusion = sorted({tag for _, tag in pieces[1]})
    matrix = sorted({tag for _, tag in pieces[0]} - set(inclusion))
    gmsh.model.addPhysicalGroup(dim, matrix, PHASE_TAGS["matrix"], name="matrix")
    gmsh.model.addPhysicalGroup(dim, inclusion, PHASE_TAGS["inclusion"], name="inclusion")
    set_periodic(dim, (1.0,) * dim)


def set_periodic(dim: int, lengths: tuple[float, ...]) -> None:
    """Make every boundary entity on a face x_d = L_d the periodic image of one on x_d = 0."""
    eps = 1e-7 * max(lengths)
    big = 1e3 * max(lengths)
    for d in range(dim):
        low = [-big] * 3 + [big] * 3
        low[d], low[3 + d] = -eps, eps
        high = list(low)
        high[d], high[3 + d] = lengths[d] - eps, lengths[d] + eps
        masters = gmsh.model.getEntitiesInBoundingBox(*low, dim=dim - 1)
        slaves = gmsh.model.getEntitiesInBoundingBox(*high, dim=dim - 1)
        shift = [0.0, 0.0, 0.0]
        shift[d] = lengths[d]
        affine = [1, 0, 0, shift[0], 0, 1, 0, shift[1], 0, 0, 1, shift[2], 0, 0, 0, 1]
        for _, slave in slaves:
            box = gmsh.model.getBoundingBox(dim - 1, slave)
            match = [
                m
                for _, m in masters
                if all(
                    abs(a + s - b) < eps
                    for a, b, s in zip(
                        gmsh.model.getBoundingBox(dim - 1, m), box, shift * 2, strict=True
                    )
                )
            ]
            if len(match) != 1:
                raise InputError(
                    f"cannot pair boundary entity {slave} on face x{d + 1} = {lengths[d]} with one "
                    f"on x{d + 1} = 0: the geometry is not periodic."
                )
            gmsh.model.mesh.setPeriodic(dim - 1, [slave], [match[0]], affine)


def mesh_geometry(dim: int, mesh_size: float) -> None:
    """Mesh the current model with uniform target size ``mesh_size``."""
    gmsh.option.setNumber("Mesh.MeshSizeMin", mesh_size)
    gmsh.option.setNumber("Mesh.MeshSizeMax", mesh_size)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
    gmsh.option.setNumber("Mesh.Algorithm", 6)
    gmsh.option.setNumber("Mesh.Algorithm3D", 1)
    gmsh.model.mesh.generate(dim)


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

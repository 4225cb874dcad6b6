"""What RVE to build: the ``RVESpec`` of every microstructure kind, validated on creation.

Every cell is the box [0, L1]×[0, L2](×[0, L3]) with the phases ``matrix`` and ``inclusion``
(the inclusion phase may be a void). Lengths, sizes and gaps are in the user's units.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from hmm_fenics.errors import InputError
from hmm_fenics.rve.pixels import SPLIT, image_shape

KINDS_2D = (
    "inclusion",
    "square-array",
    "hex-array",
    "checkerboard",
    "laminate",
    "random",
    "file",
    "image",
)
KINDS_3D = ("inclusion", "cubic-array", "fibers", "laminate", "random", "file", "image")
GENERATED_ONLY = (
    "fraction",
    "shape",
    "aspect",
    "angle",
    "center",
    "n",
    "lattice",
    "count",
    "radius_spread",
    "min_gap",
    "seed",
    "refine",
)
"""Fields an image cell must leave at their defaults: they shape generated geometry only."""
IMAGE_MESHES = ("voxel", "simplex")
"""``rve.mesh`` of an image cell: one quadrilateral/hexahedron per voxel, or its split into
2 triangles / 6 tetrahedra."""
SHAPES = {2: ("disk", "ellipse"), 3: ("sphere", "ellipsoid")}
LATTICES = {"cubic-array": ("simple", "bcc", "fcc"), "fibers": ("square", "hex")}
INCLUSIONS_PER_CELL = {"simple": 1, "bcc": 2, "fcc": 4, "square": 1, "hex": 2}
MAX_REFINE = 16.0
"""Largest interface refinement: the element budget counts ``mesh_size`` cells, and a finer
interface band (mesh_size / refine) of a larger ratio could exceed it unnoticed."""
MAX_CELLS = 4_000_000
"""Meshes estimated above this many cells are refused: they would not fit a micro solve."""
MAX_COUNT = 1000
"""Random cells hold at most this many inclusions (a packing is quadratic in the count)."""
MAX_SEED = 2**62
"""Seeds are integers in [0, MAX_SEED] (room below 2⁶³ for the seeds derived from them)."""
SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True)
class RVESpec:
    """A periodic RVE: geometry kind, sizes, and meshing parameters.

    Args:
        kind: 2D: ``inclusion`` (one disk or ellipse), ``square-array`` (n×n disks),
            ``hex-array`` (hexagonal fibre packing, 2 fibres in a 1 × √3 cell),
            ``checkerboard`` (2×2, fraction 0.5), ``laminate`` (a layer normal to x1),
            ``random`` (RSA of disks or ellipses). 3D: ``inclusion`` (sphere, spheroid),
            ``cubic-array`` (simple, bcc, fcc), ``fibers`` (cylinders along x3, square or
            hex), ``laminate``, ``random`` (spheres). ``file``: a user ``.msh``.
            ``image``: a segmented image (2D PNG/TIFF, 2D or 3D ``.npy`` of labels) meshed
            voxel by voxel (see ``hmm_fenics.rve.image``).
        dim: 2 or 3.
        fraction: Target volume fraction of the ``inclusion`` phase, in (0, 1).
        mesh_size: Target element size (default: 1/50 of the smallest cell length in 2D, 1/16
            in 3D).
        cell: Box lengths (default: unit; ``hex-array``/``fibers = hex``: 1 × √3).
        path: The ``.msh`` file (``kind = "file"``) or the image (``kind = "image"``).
        shape: ``disk``/``ellipse`` (2D) or ``sphere``/``ellipsoid`` (3D).
        aspect: Ellipse/spheroid axis ratio a/b ≥ 1 (major axis along x1 before rotation).
        angle: Rotation of the major axis from x1 in the x1–x2 plane, degrees.
        center: Inclusion centre, a point of the cell (default: the cell centre);
            off-centre inclusions wrap.
        n: Inclusions per direction for ``square-array``.
        lattice: ``simple``/``bcc``/``fcc`` (cubic-array) or ``square``/``hex`` (fibers).
        count: Number of random inclusions, 1 to ``MAX_COUNT``.
        radius_spread: Coefficient of variation of random radii (0: all equal).
        min_gap: Clearance between random inclusions and from faces they do not cross
            (default None: one mesh size, so that no sliver elements appear, lowered to
            1/2, 1/4, 1/8 of it while the packing jams; see ``rve.packing.GAP_STEPS``).
        seed: Random seed, 0 to ``MAX_SEED``.
        refine: Element size near interfaces is ``mesh_size / refine``.
        void: The inclusion phase is a hole: it is removed from the mesh. For ``file``: the
            part of the mesh's bounding box left unmeshed is pores (else it must be filled).
        radius_scale: Set by the mesher, not by users: curved inclusions are enlarged by
            this factor so that the meshed (polygonal) fraction hits the target.
        voxel_size: ``image``: the edge length of one pixel/voxel (the cell is the image's
            pixel counts times it); also the ``mesh_size``.
        labels: ``image``: phase name → the pixel value(s) of that phase, e.g.
            ``{"matrix": 0, "inclusion": [1, 2]}`` (stored as sorted pairs). ``matrix`` is
            required; other phases take any name. Every value of the image needs a phase.
        voids: ``image``: the phases that are pores (not meshed); ``void`` follows from it.
            Cell files set it from the phases given ``void = true``.
        mesh: ``image``: ``"voxel"`` (quadrilaterals/hexahedra, default) or ``"simplex"``
            (each voxel split into 2 triangles / 6 tetrahedra).
    """

    kind: str = "inclusion"
    dim: int = 2
    fraction: float = 0.4
    mesh_size: float | None = None
    cell: tuple[float, ...] | None = None
    path: str | None = None
    shape: str | None = None
    aspect: float = 1.0
    angle: float = 0.0
    center: tuple[float, ...] | None = None
    n: int = 1
    lattice: str | None = None
    count: int = 10
    radius_spread: float = 0.0
    min_gap: float | None = None
    seed: int = 0
    refine: float = 2.0
    void: bool = False
    radius_scale: float = 1.0
    voxel_size: float | None = None
    labels: Any = None
    voids: tuple[str, ...] = ()
    mesh: str | None = None

    def __post_init__(self) -> None:
        self._check_finite()
        if self.dim not in (2, 3):
            raise InputError(f"rve.dim must be 2 or 3, got {self.dim}.")
        kinds = KINDS_2D if self.dim == 2 else KINDS_3D
        if self.kind not in kinds:
            raise InputError(
                f"rve.kind must be one of {list(kinds)} in {self.dim}D, got {self.kind!r}."
            )
        if self.kind != "image":
            for name in ("voxel_size", "labels", "mesh"):
                if getattr(self, name) is not None:
                    raise InputError(
                        f'rve.{name} applies to kind = "image" only, not {self.kind!r}.'
                    )
            if self.voids:
                raise InputError(f'rve.voids applies to kind = "image" only, not {self.kind!r}.')
        if self.kind == "file":
            if not self.path:
                raise InputError('rve.kind = "file" needs rve.path, the .msh file to read.')
            return
        if self.kind == "image":
            self._check_image()
            return
        if self.path is not None:
            raise InputError(
                f'rve.path is only read with kind = "file" or "image" (kind is {self.kind!r}).'
            )
        self._defaults()
        self._check_sizes()
        self._check_kind()

    def _check_image(self) -> None:
        """Validate and normalise the keys of an image cell (the file is read when meshed)."""
        if not self.path:
            raise InputError('rve.kind = "image" needs rve.path, the image (.png, .tif, .npy).')
        defaults = {f.name: f.default for f in fields(self)}
        for name in GENERATED_ONLY:
            if getattr(self, name) != defaults[name]:
                raise InputError(
                    f'rve.{name} shapes generated cells, not kind = "image" (its phases come '
                    "from the pixels); remove it."
                )
        size = self.voxel_size
        if isinstance(size, bool) or not isinstance(size, int | float):
            raise InputError(
                f"rve.voxel_size must be the edge length of one pixel/voxel, got {size!r}."
            )
        if not (math.isfinite(size) and size > 0):
            raise InputError(f"rve.voxel_size must be positive and finite, got {size}.")
        self._set(voxel_size=float(size), mesh_size=float(size), labels=_phase_labels(self.labels))
        mesh = "voxel" if self.mesh is None else self.mesh
        if mesh not in IMAGE_MESHES:
            raise InputError(f"rve.mesh must be one of {list(IMAGE_MESHES)}, got {mesh!r}.")
        shape = image_shape(Path(self.path), self.dim)
        cells = math.prod(shape) * SPLIT[mesh][self.dim]
        if cells > MAX_CELLS:
            raise InputError(
                f"rve.path: the image {self.path!r} of {' × '.join(map(str, shape))} voxels "
                f"would give {cells:.3g} {mesh} cells (limit {MAX_CELLS:.0e}); crop or coarsen it."
            )
        lengths = tuple(n * float(size) for n in shape)
        if self.cell is not None and tuple(self.cell) != lengths:
            raise InputError(
                f"rve.cell of an image cell is its voxel counts × rve.voxel_size = "
                f"{list(lengths)}, got {list(self.cell)}; leave rve.cell out."
            )
        self._set(cell=lengths)
        names = [name for name, _ in self.labels]
        bad = [v for v in self.voids if v not in names or v == "matrix"]
        if bad:
            raise InputError(
                f"rve.voids {bad}: a void phase must be a labelled phase other than matrix "
                f"(labelled: {names})."
            )
        self._set(mesh=mesh, voids=tuple(sorted(set(self.voids))))
        if self.void and not self.voids:
            raise InputError(
                "an image cell names its pore phases (rve.voids, or void = true in "
                "[materials.<phase>]) instead of void = true."
            )
        self._set(void=bool(self.voids))

    @property
    def phase_labels(self) -> dict[str, tuple[int, ...]]:
        """``image``: phase name → its pixel values, matrix first (its phase tag is 1)."""
        pairs = dict(self.labels or ())
        return {name: pairs[name] for name in sorted(pairs, key=lambda n: (n != "matrix", n))}

    def _check_finite(self) -> None:
        """Refuse NaN and infinity in every number (``rve.<field>``)."""
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            values = value if isinstance(value, tuple) else (value,)
            bad = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
            if bad:
                raise InputError(f"rve.{name} must be finite, got {value}.")

    def _set(self, **values: Any) -> None:
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def _defaults(self) -> None:
        hex_cell = self.kind == "hex-array" or (self.kind == "fibers" and self.lattice == "hex")
        if self.cell is None:
            self._set(cell=(1.0, SQRT3, 1.0)[: self.dim] if hex_cell else (1.0,) * self.dim)
        else:
            self._set(cell=tuple(float(c) for c in self.cell))
        if len(self.lengths) != self.dim or not all(
            math.isfinite(c) and c > 0 for c in self.lengths
        ):  # before the defaults derived from it
            raise InputError(
                f"rve.cell must hold {self.dim} positive lengths, got {list(self.lengths)}."
            )
        if self.lattice is None and self.kind in LATTICES:
            self._set(lattice=LATTICES[self.kind][0])
        if self.shape is None:
            self._set(shape=SHAPES[self.dim][0])
        if self.mesh_size is None:
            self._set(mesh_size=min(self.lengths) / (50.0 if self.dim == 2 else 16.0))
        if self.center is None:
            self._set(center=tuple(0.5 * c for c in self.lengths))
        else:
            self._set(center=tuple(float(c) for c in self.center))

    @property
    def lengths(self) -> tuple[float, ...]:
        """Cell box lengths (L1, L2[, L3])."""
        assert self.cell is not None  # set in __post_init__
        return self.cell

    @property
    def volume(self) -> float:
        """|Y| of the box."""
        return math.prod(self.lengths)

    @property
    def h(self) -> float:
        """The target element size."""
        assert self.mesh_size is not None  # set in __post_init__
        return self.mesh_size

    def _check_sizes(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise InputError(
                f"rve.fraction must lie strictly between 0 and 1, got {self.fraction}."
            )
        if not (math.isfinite(self.h) and self.h > 0.0):
            raise InputError(f"rve.mesh_size must be positive, got {self.mesh_size}.")
        smallest = min(self.lengths)
        if self.h > 0.5 * smallest:
            raise InputError(
                f"rve.mesh_size = {self.h} is coarser than half the cell ({smallest}); use ≤ {smallest / 2}."
            )
        cells = (2.3 if self.dim == 2 else 6.5) * math.prod(c / self.h for c in self.lengths)
        if cells > MAX_CELLS:
            raise InputError(
                f"rve.mesh_size = {self.h} would give about {cells:.2g} cells in {self.dim}D "
                f"(limit {MAX_CELLS:.0e}); use a larger mesh_size."
            )
        if not (1.0 <= self.refine <= MAX_REFINE):
            raise InputError(
                f"rve.refine must be in [1, {MAX_REFINE:g}] (interface size = mesh_size / "
                f"refine), got {self.refine}; for finer interfaces lower rve.mesh_size."
            )
        if self.min_gap is not None and self.min_gap < 0:
            raise InputError(f"rve.min_gap must be ≥ 0, got {self.min_gap}.")
        center = self.center or ()
        if len(center) != self.dim or not all(
            0.0 <= x <= L for x, L in zip(center, self.lengths, strict=False)
        ):
            raise InputError(
                f"rve.center must be a point of the cell: {self.dim} coordinates in "
                f"{[[0.0, L] for L in self.lengths]}, got {list(center)}."
            )
        if not 0 <= self.seed <= MAX_SEED:
            raise InputError(f"rve.seed must be an integer from 0 to {MAX_SEED}, got {self.seed}.")

    def _check_kind(self) -> None:
        if self.shape not in SHAPES[self.dim]:
            raise InputError(
                f"rve.shape must be one of {list(SHAPES[self.dim])} in {self.dim}D, got {self.shape!r}."
            )
        if not (math.isfinite(self.aspect) and self.aspect > 0):
            raise InputError(f"rve.aspect must be a positive axis ratio a/b, got {self.aspect}.")
        if self.shape in ("ellipse", "ellipsoid") and self.aspect < 1:
            raise InputError(
                f"rve.aspect = {self.aspect} < 1: give a/b ≥ 1 and turn the major axis with rve.angle instead."
            )
        if self.shape in ("disk", "sphere") and self.aspect != 1:
            raise InputError(
                f'rve.aspect applies to shape = "ellipse"/"ellipsoid", not {self.shape!r}.'
            )
        if self.kind not in LATTICES and self.lattice is not None:
            raise InputError(f"rve.lattice applies to {list(LATTICES)} only, not to {self.kind!r}.")
        if self.kind in LATTICES and self.lattice not in LATTICES[self.kind]:
            raise InputError(
                f"rve.lattice must be one of {list(LATTICES[self.kind])} for {self.kind}, got {self.lattice!r}."
            )
        if self.kind == "checkerboard" and abs(self.fraction - 0.5) > 1e-12:
            raise InputError(
                f"a checkerboard has fraction 0.5 by construction, got rve.fraction = "
                f"{self.fraction}; set it to 0.5 (in a cell file, leaving it out does)."
            )
        if self.kind == "checkerboard" and self.void:
            raise InputError(
                "a checkerboard whose inclusion phase is void leaves matrix squares that touch "
                "only at their corners: they carry no load, and the cell problem is singular. "
                "Give the inclusion a material, or use a porous kind (inclusion, square-array, "
                "random) with a void inclusion."
            )
        if self.kind == "square-array" and not (isinstance(self.n, int) and self.n >= 1):
            raise InputError(f"rve.n must be a positive integer, got {self.n}.")
        if self.kind == "random":
            if not (isinstance(self.count, int) and 1 <= self.count <= MAX_COUNT):
                raise InputError(
                    f"rve.count must be an integer from 1 to {MAX_COUNT}, got {self.count}."
                )
            if not 0 <= self.radius_spread < 0.5:
                raise InputError(
                    f"rve.radius_spread must lie in [0, 0.5), got {self.radius_spread}."
                )
        if self.kind in ("inclusion", "square-array", "hex-array", "cubic-array", "fibers"):
            self._check_fits()

    def _check_fits(self) -> None:
        """A regular inclusion must leave at least one element between neighbours."""
        a, b = self.semi_axes()
        spacing = self.neighbour_spacing()
        extent = 2 * max(a, b)
        if self.kind == "inclusion":
            extents = self.extents()
            room = min(L - 2 * e for L, e in zip(self.lengths, extents, strict=True))
            words = f"the {self.shape} would span {tuple(round(2 * e, 4) for e in extents)}"
        else:
            room = spacing - extent
            words = f"neighbouring inclusions {spacing:.4g} apart would have diameter {extent:.4g}"
        if room < self.h:
            power = 2 if self.kind == "fibers" else self.dim
            touch = self.fraction * max(1 + room / extent, 0) ** power
            clear = self.fraction * max(1 + (room - self.h) / extent, 0) ** power
            raise InputError(
                f"rve.fraction = {self.fraction}: {words}, leaving a gap of {room:.3g}, less than one "
                f"element (mesh_size {self.h}). They touch at fraction {touch:.4f} and keep one element "
                f"apart below {clear:.4f}: lower the fraction or the mesh_size"
                + (f", or rve.aspect = {self.aspect:g}" if self.aspect != 1.0 else "")
                + (f", or rve.n = {self.n}" if self.kind == "square-array" and self.n > 1 else "")
                + "."
            )

    def inclusions_per_cell(self) -> int:
        """How many equal inclusions a regular kind places in the cell."""
        if self.kind == "square-array":
            return int(self.n**self.dim)
        if self.kind == "hex-array":
            return 2
        if self.kind in LATTICES:
            assert self.lattice is not None
            return INCLUSIONS_PER_CELL[self.lattice]
        return 1

    def semi_axes(self) -> tuple[float, float]:
        """(a, b) of each regular inclusion for the target fraction (a = b for disks/spheres)."""
        each = self.fraction * self.volume / self.inclusions_per_cell()
        if self.kind == "fibers":
            r = math.sqrt(each / (math.pi * self.lengths[2])) * self.radius_scale
            return r, r
        if self.dim == 2:
            b = math.sqrt(each / (math.pi * self.aspect))
        else:
            b = (3.0 * each / (4.0 * math.pi * self.aspect)) ** (1.0 / 3.0)
        b *= self.radius_scale
        return self.aspect * b, b

    def extents(self) -> tuple[float, ...]:
        """Half-extents of the (rotated) regular inclusion along each axis."""
        a, b = self.semi_axes()
        t = math.radians(self.angle)
        e1 = math.hypot(a * math.cos(t), b * math.sin(t))
        e2 = math.hypot(a * math.sin(t), b * math.cos(t))
        return (e1, e2) if self.dim == 2 else (e1, e2, b)

    def neighbour_spacing(self) -> float:
        """Smallest centre distance between inclusions of a regular array (periodic)."""
        L = self.lengths
        if self.kind == "square-array":
            return min(L) / self.n
        if self.kind == "hex-array" or (self.kind == "fibers" and self.lattice == "hex"):
            return min(L[0], math.hypot(L[0] / 2, L[1] / 2))
        if self.kind == "cubic-array":
            factor = {"simple": 1.0, "bcc": SQRT3 / 2, "fcc": math.sqrt(2) / 2}[str(self.lattice)]
            return min(L) * factor
        return min(L[: 2 if self.kind == "fibers" else self.dim])

    def key(self) -> dict[str, Any]:
        """The fields that determine the mesh (for caching)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def with_seed(self, seed: int) -> "RVESpec":
        """The same spec with another random seed."""
        return replace(self, seed=seed)


def _phase_labels(labels: Any) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``rve.labels`` (phase → a value or values) as sorted ``(name, values)`` pairs, checked."""
    if isinstance(labels, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in labels):
        labels = dict(labels)
    if not isinstance(labels, Mapping) or not labels:
        raise InputError(
            "rve.labels must map each phase to its pixel value(s), e.g. [rve.labels] "
            f"matrix = 0, inclusion = 1; got {labels!r}."
        )
    pairs: list[tuple[str, tuple[int, ...]]] = []
    owner: dict[int, str] = {}
    for name, value in labels.items():
        values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        ok = bool(values) and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        if not (isinstance(name, str) and name and ok):
            raise InputError(
                f"rve.labels.{name} must be a pixel value (an integer) or a list of them, "
                f"got {value!r}."
            )
        for v in values:
            if v in owner:
                raise InputError(
                    f"rve.labels: the value {v} is given to both {owner[v]!r} and {name!r}."
                )
            owner[v] = name
        pairs.append((name, tuple(sorted(int(v) for v in values))))
    if "matrix" not in dict(pairs):
        raise InputError(
            f"rve.labels must name the matrix phase (the host; other phases take any name), "
            f"got {sorted(dict(pairs))}."
        )
    return tuple(sorted(pairs))

"""TOML configuration → frozen dataclasses, validated before any work starts.

A cell file (``CELL.toml``)::

    [rve]                     # every key of hmm_fenics.RVESpec; see its docstring
    kind = "inclusion"        # 2D: inclusion | square-array | hex-array | checkerboard | laminate
    dim = 2                   #     | random;  3D: inclusion | cubic-array | fibers | laminate
    fraction = 0.4            #     | random;  both: file | image
    mesh_size = 0.02          # target element size (finer near interfaces: mesh_size / refine)
    # path = "my.msh"         # with kind = "file", relative to this TOML file
    # kind = "image"          # a segmented image meshed voxel by voxel (quads / hexahedra):
    # path = "rock.png"       #   .png/.tif (2D) or .npy of integer labels [x1, x2(, x3)]
    # voxel_size = 0.01       #   edge length of one pixel/voxel
    # mesh = "voxel"          #   voxel | simplex (2 triangles / 6 tetrahedra per voxel)
    # [rve.labels]            #   phase = pixel value(s); matrix required, others any name
    # matrix = 0              #   (a phase with [materials.<phase>] void = true is a pore)
    # inclusion = [1, 2]
    [physics]
    kind = "elasticity"       # diffusion | elasticity
    plane = "strain"          # 2D elasticity: strain | stress
    degree = 1                # Lagrange degree of the micro field
    [materials.matrix]        # law = "elastic" (default) | "j2" | "maxwell", elasticity only
    E = 3.0                   # elastic: E, nu (+ eps0, n: power law); diffusion: k (+ p, g0)
    nu = 0.35                 # j2: + sigma_y, H_iso, H_kin (default 0: perfect plasticity)
                              # maxwell: + prony = [[E_1, tau_1], ...] (1 to 10 terms)
                              # j2 and maxwell: 3D or 2D plane strain (plane stress refused)
    [materials.inclusion]
    E = 70.0
    nu = 0.2
    [petsc]                   # optional PETSc options of the micro solver, as in run files
    hmm_micro_pc_type = "lu"  #   (cell files of before: [solver] pc_type = "lu", no prefix)
    [micro]                   # optional: the micro boundary condition (apparent tensors)
    bc = "periodic"           # periodic | dirichlet | neumann | oversampling
    # oversampling = 3        # bc = "oversampling": periods per axis of the window (odd)

Every error names the key path (``materials.inclusion.nu``) and what is expected.

``[petsc]`` means the same in cell and run files: PETSc options by the solver they go to
(``hmm_micro_`` here; a cell file has no macro solver). The ``[solver]`` table of earlier
cell files, PETSc options without their prefix, is still read; a run file's ``[solver]``
(macro Newton: ``RUN_SOLVER_KEYS``) is another thing, and both tables at once are refused.
"""

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hmm_fenics.errors import InputError
from hmm_fenics.materials import Material, Void, material_from_dict
from hmm_fenics.micro.boundary import check_bc
from hmm_fenics.physics import Diffusion, Elasticity, Physics
from hmm_fenics.rve.mesh import REQUIRED_PHASES
from hmm_fenics.rve.spec import RVESpec
from hmm_fenics.rve.tiling import check_ratio

RVE_KEYS: dict[str, type] = {
    "kind": str,
    "dim": int,
    "fraction": float,
    "mesh_size": float,
    "path": str,
    "cell": list,
    "shape": str,
    "aspect": float,
    "angle": float,
    "center": list,
    "n": int,
    "lattice": str,
    "count": int,
    "radius_spread": float,
    "min_gap": float,
    "seed": int,
    "refine": float,
    "voxel_size": float,
    "labels": dict,
    "mesh": str,
}

DEFAULT_CELL = """\
# The default cell: glass fibres (E 70, nu 0.2) in epoxy (E 3, nu 0.35), fibre fraction 0.4,
# plane strain, a square array (one fibre per periodic cell).
[rve]
kind = "inclusion"
dim = 2
fraction = 0.4
mesh_size = 0.02

[physics]
kind = "elasticity"
plane = "strain"

[materials.matrix]
E = 3.0
nu = 0.35

[materials.inclusion]
E = 70.0
nu = 0.2
"""


@dataclass(frozen=True)
class CellConfig:
    """A homogenization job: which RVE, physics, phases, solver options and micro BC.

    ``bc`` is the micro boundary condition (``micro.boundary.BOUNDARY_CONDITIONS``) and
    ``oversampling`` the window's periods per axis (``bc = "oversampling"`` only).
    """

    rve: RVESpec
    physics: Physics
    materials: Mapping[str, Material]
    degree: int = 1
    solver: dict[str, Any] = field(default_factory=dict)
    bc: str = "periodic"
    oversampling: float | None = None


PETSC_PREFIXES = ("hmm_macro_", "hmm_micro_")
"""``[petsc]`` option prefixes: the solver an option goes to (macro Newton, micro solves)."""
RUN_SOLVER_KEYS = ("rtol", "atol", "max_iterations", "schedule")
"""The keys of a run file's ``[solver]`` table (the macro Newton solver and the schedule)."""

BC_KEYS = {"bc", "oversampling"}
"""The ``[micro]`` keys of the boundary condition, in cell and run files."""


def parse_micro_bc(table: dict[str, Any]) -> tuple[str, float | None]:
    """``(bc, oversampling)`` of a ``[micro]`` table (other keys are the caller's).

    Raises:
        InputError: naming ``micro.bc`` or ``micro.oversampling``.
    """
    bc = typed(table, "micro", "bc", str) if "bc" in table else "periodic"
    ratio = typed(table, "micro", "oversampling", float) if "oversampling" in table else None
    check_bc(bc, ratio)
    if ratio is not None:
        check_ratio(ratio)
    return bc, ratio


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a missing file or bad TOML is an ``InputError``."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"config file {str(file)!r} does not exist.")
    try:
        return tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{str(file)!r} is not valid TOML: {err}") from err


def load_cell_config(path: str | Path | None = None) -> CellConfig:
    """Read and validate a cell TOML file (``None``: the embedded default cell).

    Raises:
        InputError: missing file, bad TOML, unknown/missing keys, wrong types or values.
    """
    if path is None:
        return parse_cell_config(tomllib.loads(DEFAULT_CELL), Path.cwd())
    return parse_cell_config(read_toml(path), Path(path).parent)


def parse_cell_config(data: dict[str, Any], base: Path) -> CellConfig:
    """Validate a parsed cell TOML; relative mesh paths are resolved against ``base``."""
    check_keys(
        "", data, required={"rve", "physics", "materials"}, optional={"solver", "petsc", "micro"}
    )
    check_finite(data)
    rve_table = subtable(data, "rve")
    check_keys("rve", rve_table, required={"kind", "dim"}, optional=set(RVE_KEYS) - {"kind", "dim"})
    rve_args: dict[str, Any] = {
        key: typed(rve_table, "rve", key, RVE_KEYS[key]) for key in rve_table
    }
    kind, dim = rve_args["kind"], rve_args["dim"]
    if "labels" in rve_args:
        rve_args["labels"] = _labels(rve_args["labels"])
    if kind == "checkerboard":  # its fraction is fixed: a missing one is not the 0.4 default
        rve_args.setdefault("fraction", 0.5)
    if kind in ("file", "image") and "path" in rve_args:
        mesh_path = Path(rve_args["path"])
        rve_args["path"] = str(mesh_path if mesh_path.is_absolute() else base / mesh_path)
    for key in ("cell", "center"):
        if key in rve_args:
            rve_args[key] = tuple(rve_args[key])
    rve = RVESpec(**rve_args)

    physics_table = subtable(data, "physics")
    check_keys("physics", physics_table, required={"kind"}, optional={"plane", "degree"})
    physics_kind = typed(physics_table, "physics", "kind", str)
    physics: Physics
    if physics_kind == "diffusion":
        if "plane" in physics_table:
            raise InputError("physics.plane applies to elasticity only; remove it for diffusion.")
        physics = Diffusion(dim)
    elif physics_kind == "elasticity":
        plane = (
            typed(physics_table, "physics", "plane", str) if "plane" in physics_table else "strain"
        )
        if plane not in ("strain", "stress"):
            raise InputError(f'physics.plane must be "strain" or "stress", got {plane!r}.')
        physics = Elasticity(dim, plane)
    else:
        raise InputError(f'physics.kind must be "diffusion" or "elasticity", got {physics_kind!r}.')
    degree = typed(physics_table, "physics", "degree", int) if "degree" in physics_table else 1
    if degree not in (1, 2, 3):
        raise InputError(f"physics.degree must be 1, 2 or 3, got {degree}.")

    materials_table = subtable(data, "materials")
    if not materials_table:
        raise InputError("[materials] is empty; give one table per phase, e.g. [materials.matrix].")
    materials = {
        name: material_from_dict(
            name, subtable(materials_table, name, f"materials.{name}"), physics
        )
        for name in materials_table
    }
    if kind == "image":  # the labels name the phases; the void ones are pores
        _check_phases(tuple(rve.phase_labels), materials)
        voids = tuple(name for name, m in materials.items() if isinstance(m, Void))
        rve = replace(rve, voids=voids)
    elif isinstance(materials.get("inclusion"), Void):  # user mesh: its unmeshed part is pores
        rve = replace(rve, void=True)
    if kind not in ("file", "image"):  # generated cells: the phases are known before meshing
        _check_phases(REQUIRED_PHASES, materials)
    solver = _micro_petsc(data)
    solid = {name: m for name, m in materials.items() if not isinstance(m, Void)}
    micro = subtable(data, "micro") if "micro" in data else {}
    check_keys("micro", micro, required=set(), optional=BC_KEYS)
    bc, ratio = parse_micro_bc(micro)
    return CellConfig(rve, physics, solid, degree, dict(solver), bc, ratio)


def split_petsc(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``[petsc]`` table of ``data`` by prefix (``PETSC_PREFIXES``), prefixes stripped.

    Raises:
        InputError: an option without a known prefix, or a value that is not a string,
            number or boolean (naming ``petsc.<option>``).
    """
    options = subtable(data, "petsc") if "petsc" in data else {}
    split: dict[str, dict[str, Any]] = {prefix: {} for prefix in PETSC_PREFIXES}
    for key, value in options.items():
        prefix = next((p for p in PETSC_PREFIXES if key.startswith(p)), None)
        if prefix is None or key == prefix:
            raise InputError(
                f"petsc.{key}: PETSc options here start with {list(PETSC_PREFIXES)}, the solver "
                "they go to, e.g. hmm_macro_ksp_type or hmm_micro_pc_type."
            )
        _check_option(f"petsc.{key}", value)
        split[prefix][key.removeprefix(prefix)] = value
    return split


def _check_option(where: str, value: Any) -> None:
    if not isinstance(value, str | int | float | bool):
        raise InputError(f"{where} must be a string, number or boolean, got {value!r}.")


def _micro_petsc(data: dict[str, Any]) -> dict[str, Any]:
    """A cell file's micro PETSc options: ``[petsc]`` (``hmm_micro_``) or the older ``[solver]``."""
    if "petsc" in data:
        if "solver" in data:
            raise InputError(
                "a cell file gives the micro solver's PETSc options once: [petsc] with "
                "hmm_micro_ names (as in run files); remove [solver], the older spelling "
                "(its options had no prefix)."
            )
        split = split_petsc(data)
        if split["hmm_macro_"]:
            key = next(iter(split["hmm_macro_"]))
            raise InputError(
                f"petsc.hmm_macro_{key}: a cell file has no macro solver; give hmm_micro_ "
                "options only (hmm_macro_ ones belong in run files with [macro])."
            )
        return split["hmm_micro_"]
    solver = subtable(data, "solver") if "solver" in data else {}
    for key, value in solver.items():
        if key in RUN_SOLVER_KEYS or key.startswith(PETSC_PREFIXES):
            raise InputError(
                f"solver.{key}: a cell file's [solver] holds PETSc options of the micro solver "
                f"without a prefix (pc_type = ...); {list(RUN_SOLVER_KEYS)} are the macro "
                "Newton keys of run files. Prefer [petsc] with hmm_micro_ names, as in run files."
            )
        _check_option(f"solver.{key}", value)
    return dict(solver)


def _labels(table: Any) -> dict[str, Any]:
    """``[rve.labels]``: phase name → an integer or a list of integers (checked by RVESpec)."""
    if not isinstance(table, dict):
        raise InputError(
            f"rve.labels must be a table ([rve.labels] matrix = 0, inclusion = 1), got {table!r}."
        )
    for name, value in table.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise InputError(
                f"rve.labels.{name} must be a pixel value (an integer) or a list of them, "
                f"got {value!r}."
            )
    return dict(table)


def _check_phases(phases: tuple[str, ...], materials: dict[str, Material]) -> None:
    missing = [name for name in phases if name not in materials]
    if missing:
        raise InputError(
            f"phase(s) {missing} have no material; add a [materials.<phase>] table for each."
        )
    unknown = sorted(set(materials) - set(phases))
    if unknown:
        raise InputError(
            f"[materials] names {unknown}, which is no phase of the RVE (phases: {list(phases)})."
        )


def check_finite(data: Any, where: str = "") -> None:
    """Refuse NaN and infinity anywhere in parsed TOML (TOML has ``nan`` and ``inf``).

    Args:
        data: A parsed TOML value: a table, an array or a scalar.
        where: Its key path, for the message (``rve.center[1]``).
    """
    if isinstance(data, float) and not math.isfinite(data):
        raise InputError(f"{where} = {data}: give a finite number (TOML nan and inf are refused).")
    if isinstance(data, dict):
        for key, value in data.items():
            check_finite(value, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            check_finite(value, f"{where}[{i}]")


def check_keys(where: str, table: dict[str, Any], required: set[str], optional: set[str]) -> None:
    """Refuse unknown and missing keys of the table at key path ``where``."""
    prefix = f"{where}." if where else ""
    unknown = sorted(set(table) - required - optional)
    if unknown:
        raise InputError(
            f"unknown key(s) {[prefix + k for k in unknown]}; expected "
            f"{sorted(prefix + k for k in required | optional)}."
        )
    missing = sorted(required - set(table))
    if missing:
        raise InputError(f"missing key(s) {[prefix + k for k in missing]}.")


def subtable(data: dict[str, Any], key: str, path: str | None = None) -> dict[str, Any]:
    """``data[key]``, which must be a TOML table (``path``: its key path in messages)."""
    value = data[key]
    if not isinstance(value, dict):
        raise InputError(f"{path or key} must be a table ([{path or key}]), got {value!r}.")
    return value


def typed(table: dict[str, Any], where: str, key: str, kind: type) -> Any:
    """``table[key]`` checked to be of ``kind`` (ints pass as floats; list: of numbers)."""
    value = table[key]
    if kind is dict:
        return value
    if kind is list:
        if not isinstance(value, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            raise InputError(f"{where}.{key} must be a list of numbers, got {value!r}.")
        return [float(v) for v in value]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(
            f"{where}.{key} must be {'a number' if kind is float else kind.__name__}, got {value!r}."
        )
    return value

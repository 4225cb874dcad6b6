"""The run file (``hmm-fenics run CONFIG.toml``): schema, validation, defaults.

A run file is a cell file (``[rve]``, ``[physics]``, ``[materials.*]``, see
``hmm_fenics.config``) plus the macro problem. Without ``[macro]`` it is a homogenization
job. Everything is checked here, before any mesh is built or any rank talks to another;
every error names the key path (``materials.inclusion.nu``) and what is expected.

The full schema, every key with its default and a comment, is ``EXAMPLE`` (also in the
README, and written by ``hmm-fenics run --example``).
"""

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hmm_fenics.config import (
    BC_KEYS,
    RUN_SOLVER_KEYS,
    CellConfig,
    check_finite,
    check_keys,
    parse_cell_config,
    parse_micro_bc,
    read_toml,
    split_petsc,
    subtable,
    typed,
)
from hmm_fenics.errors import InputError
from hmm_fenics.macro.mesh import BOUNDARIES, GEOMETRIES, LENGTHS, check_geometry
from hmm_fenics.materials import HISTORY, NONLINEAR
from hmm_fenics.micro.history import LINEAR_SOLVERS
from hmm_fenics.micro.nonlinear import TANGENT_REUSE
from hmm_fenics.physics import Elasticity
from hmm_fenics.run.example import EXAMPLE as EXAMPLE
from hmm_fenics.run.loading import parse_loading
from hmm_fenics.run.medium import MEDIUM_KEYS, MediumConfig, cell_tables, parse_medium
from hmm_fenics.rve.spec import RVESpec
from hmm_fenics.stepping import LoadPath, ramp

GRADED_KEYS = ("fraction", "aspect", "angle")
AXES = ("x", "y", "z")
FREE = "free"
MAX_GRADED_CELLS = 100
"""A graded parameter may take at most this many values (one cell built and factored each)."""


@dataclass(frozen=True)
class MacroConfig:
    """The macro mesh and discretization."""

    geometry: str
    mesh_size: float
    lengths: dict[str, float]
    path: str | None
    degree: int = 1
    quadrature_degree: int = 2


@dataclass(frozen=True)
class Graded:
    """An RVE parameter that varies linearly along one macro axis (clamped at the ends).

    Values are rounded to multiples of ``step``, so that the number of distinct cells
    (each built and factored once) stays small.
    """

    parameter: str
    axis: int
    start: tuple[float, float]
    end: tuple[float, float]
    step: float

    def value_at(self, x: Any) -> float:
        """The rounded parameter value at macro point ``x``."""
        (x0, v0), (x1, v1) = self.start, self.end
        s = min(max((float(x[self.axis]) - x0) / (x1 - x0), 0.0), 1.0)
        return round(round((v0 + s * (v1 - v0)) / self.step) * self.step, 12)

    def spec_at(self, base: RVESpec, x: Any) -> RVESpec:
        """``base`` with the parameter set for macro point ``x``."""
        values: dict[str, Any] = {self.parameter: self.value_at(x)}
        return replace(base, **values)


@dataclass(frozen=True)
class MicroSolves:
    """How the micro problems are solved: fewer solves and factorizations, the same answers.

    Attributes:
        shortcut: History cells: the exact elastic shortcut first (``micro.shortcut``).
        linear_solver: History cells' micro Newton steps, ``"direct"`` or ``"krylov"``
            (``micro.linear_solver``).
        predict: Power-law cells: error-controlled prediction (``micro.predict``).
        tangent_reuse: Power-law cells: relative distance within which an accepted
            prediction reuses its anchor's tangent (``micro.tangent_reuse``).
    """

    shortcut: bool = True
    linear_solver: str = "direct"
    predict: bool = True
    tangent_reuse: float = TANGENT_REUSE


SOLVE_KEYS = {
    "shortcut": "history",
    "linear_solver": "history",
    "predict": "nonlinear",
    "tangent_reuse": "nonlinear",
}
"""``[micro]`` keys of ``MicroSolves`` and the kind of cell they apply to."""


@dataclass(frozen=True)
class RunConfig:
    """A validated run file.

    Attributes:
        cell: The micro cell (RVE, physics, phases, ``hmm_micro_`` options).
        macro: The macro problem, or None for a homogenization job.
        dirichlet, neumann, source: Prescribed values at load factor 1 (None: free).
        loading: The load path in time and its steps.
        model: ``cell`` or ``effective``.
        period: The RVE edge in macro units (ε), if given.
        graded: The graded parameter, if any.
        micro_solves: The micro solve switches (shortcut, Krylov, prediction).
        medium: The sampled medium (``run.medium``), if any.
        rtol, atol, max_iterations, schedule: Macro Newton and point distribution.
        macro_petsc: ``hmm_macro_`` options (prefix stripped).
        fields, snapshots, png: Output.
        curve: (Dirichlet boundary, component) of the load-displacement curve, or None
            (the first boundary with a non-zero prescribed value).
        data: The parsed TOML, echoed in the results.
        path: The file it came from.
    """

    cell: CellConfig
    macro: MacroConfig | None
    dirichlet: dict[str, Any] = field(default_factory=dict)
    neumann: dict[str, Any] = field(default_factory=dict)
    source: Any = None
    loading: LoadPath = field(default_factory=lambda: ramp(1))
    model: str = "cell"
    period: float | None = None
    graded: Graded | None = None
    micro_solves: MicroSolves = field(default_factory=MicroSolves)
    medium: MediumConfig | None = None
    rtol: float = 1e-10
    atol: float = 1e-12
    max_iterations: int = 25
    schedule: str = "owner"
    macro_petsc: dict[str, Any] = field(default_factory=dict)
    fields: str = "xdmf"
    snapshots: str | list[tuple[float, ...]] = "peak"
    png: bool = True
    curve: tuple[str, int] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def steps(self) -> int:
        """Steps along the load path."""
        return len(self.loading.times)

    @property
    def nonlinear(self) -> bool:
        """Whether some phase has a nonlinear law (a micro Newton solve per point)."""
        return any(isinstance(m, NONLINEAR) for m in self.cell.materials.values())

    @property
    def history(self) -> bool:
        """Whether some phase has internal variables (J2, Maxwell): states per macro point."""
        return any(isinstance(m, HISTORY) for m in self.cell.materials.values())


TOP_LEVEL = {
    "rve",
    "physics",
    "materials",
    "macro",
    "dirichlet",
    "neumann",
    "loading",
    "micro",
    "solver",
    "petsc",
    "output",
}


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate a run file (relative mesh paths resolve against its folder)."""
    data = read_toml(path)
    return parse_run_config(data, Path(path).parent, str(path))


def parse_run_config(data: dict[str, Any], base: Path, path: str = "<string>") -> RunConfig:
    """Validate a parsed run file; see ``EXAMPLE`` for the schema."""
    check_keys("", data, required={"rve", "physics", "materials"}, optional=TOP_LEVEL)
    check_finite(data)
    micro_petsc, macro_petsc = _petsc(data)
    cell = parse_cell_config(cell_tables(data), base)
    cell = replace(cell, solver=micro_petsc)
    physics = cell.physics
    config = RunConfig(cell, None, data=data, path=path, macro_petsc=macro_petsc)
    config = _micro(data, config, base)
    config = _solver(data, config)
    config = _output(data, config)
    if "macro" not in data:
        if config.medium is not None:
            raise InputError(
                "micro.medium samples the medium at macro points: add a [macro] problem."
            )
        rest = sorted({"dirichlet", "neumann", "loading"} & set(data))
        if rest:
            raise InputError(f"{rest} need a [macro] table (without one, the run homogenizes).")
        return config
    macro = _macro(data, base, physics.dim)
    boundaries = BOUNDARIES.get(macro.geometry)
    shape = (physics.dim,) if isinstance(physics, Elasticity) else ()
    dirichlet = _values(data, "dirichlet", shape, boundaries, free=True)
    if not dirichlet:
        raise InputError(
            "[dirichlet] is missing or empty: give at least one boundary (else the problem is "
            f"singular), e.g. left = {[0.0] * physics.dim if shape else 0.0}."
        )
    neumann = _values(data, "neumann", shape, boundaries, free=False)
    both = sorted(set(dirichlet) & set(neumann))
    if both:
        raise InputError(f"boundary(ies) {both} are in both [dirichlet] and [neumann]; choose one.")
    loading = subtable(data, "loading") if "loading" in data else {}
    path_in_time = parse_loading(loading)
    source = _value(loading["source"], "loading.source", shape) if "source" in loading else None
    if config.curve is not None:
        _check_curve(config.curve, dirichlet)
    return replace(
        config,
        macro=macro,
        dirichlet=dirichlet,
        neumann=neumann,
        source=source,
        loading=path_in_time,
    )


def _check_curve(curve: tuple[str, int], dirichlet: dict[str, Any]) -> None:
    """The curve's boundary is a Dirichlet one and its component is prescribed there."""
    name, component = curve
    if name not in dirichlet:
        raise InputError(
            f"output.curve: {name!r} is not a [dirichlet] boundary; choose one of "
            f"{sorted(dirichlet)}."
        )
    value = dirichlet[name]
    given = list(value) if isinstance(value, tuple) else [value]
    if not 0 <= component < len(given) or given[component] is None:
        prescribed = [i for i, v in enumerate(given) if v is not None]
        raise InputError(
            f"output.curve: component {component} of dirichlet.{name} is not prescribed; "
            f"choose one of {prescribed}."
        )


def _petsc(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    split = split_petsc(data)
    return split["hmm_micro_"], split["hmm_macro_"]


def _macro(data: dict[str, Any], base: Path, dim: int) -> MacroConfig:
    table = subtable(data, "macro")
    optional = {"mesh_size", "path", "degree", "quadrature_degree", *LENGTHS}
    check_keys("macro", table, required={"geometry"}, optional=optional)
    geometry = typed(table, "macro", "geometry", str)
    if geometry not in (*GEOMETRIES, "file"):
        raise InputError(
            f"macro.geometry must be one of {[*GEOMETRIES, 'file']}, got {geometry!r}."
        )
    lengths = {k: typed(table, "macro", k, float) for k in LENGTHS if k in table}
    path = None
    if geometry == "file":
        if "path" not in table:
            raise InputError('macro.path: geometry = "file" needs the mesh file.')
        given = Path(typed(table, "macro", "path", str))
        path = str(given if given.is_absolute() else base / given)
        extra = sorted({"mesh_size", *lengths} & set(table))
        if extra:
            raise InputError(f"{[f'macro.{k}' for k in extra]} apply to built-in geometries only.")
        size = math.inf
    else:
        if "path" in table:
            raise InputError(f'macro.path applies to geometry = "file" only, not {geometry!r}.')
        if "mesh_size" not in table:
            raise InputError(f"macro.mesh_size is missing: the element size of the {geometry}.")
        size = typed(table, "macro", "mesh_size", float)
        if (geometry == "box") != (dim == 3):
            raise InputError(
                f"macro.geometry = {geometry!r} is {3 if geometry == 'box' else 2}D but the RVE "
                f"and physics are {dim}D (rve.dim)."
            )
    error = check_geometry(geometry, size, LENGTHS | lengths, path)
    if error:
        raise InputError(error)
    degree = typed(table, "macro", "degree", int) if "degree" in table else 1
    if degree not in (1, 2):
        raise InputError(f"macro.degree must be 1 or 2, got {degree}.")
    qdeg = typed(table, "macro", "quadrature_degree", int) if "quadrature_degree" in table else 2
    if not 1 <= qdeg <= 6:
        raise InputError(f"macro.quadrature_degree must be from 1 to 6, got {qdeg}.")
    if qdeg < 2 * (degree - 1):  # the stiffness integrand ∇v·C∇u has degree 2(p − 1)
        raise InputError(
            f"macro.quadrature_degree = {qdeg} under-integrates the stiffness of degree-{degree} "
            f"elements (a polynomial of degree {2 * (degree - 1)}: spurious zero-energy modes); "
            f"use quadrature_degree ≥ {2 * (degree - 1)} or macro.degree = 1."
        )
    return MacroConfig(geometry, size, lengths, path, degree, qdeg)


def _value(raw: Any, where: str, shape: tuple[int, ...], free: bool = False) -> Any:
    """A number (shape ()) or a list of numbers (or "free") of the physics' shape."""

    def number(v: Any, at: str) -> float | None:
        if free and v == FREE:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            hint = ' or "free"' if free else ""
            raise InputError(f"{at} must be a finite number{hint}, got {v!r}.")
        return float(v)

    if not shape:
        return number(raw, where)
    if not isinstance(raw, list) or len(raw) != shape[0]:
        hint = ' ("free" for an unconstrained component)' if free else ""
        raise InputError(f"{where} must be a list of {shape[0]} components{hint}, got {raw!r}.")
    return tuple(number(v, f"{where}[{i}]") for i, v in enumerate(raw))


def _values(
    data: dict[str, Any],
    key: str,
    shape: tuple[int, ...],
    boundaries: tuple[str, ...] | None,
    free: bool,
) -> dict[str, Any]:
    table = subtable(data, key) if key in data else {}
    if boundaries is not None:  # built-in geometry: names known now (a file's: once read)
        unknown = sorted(set(table) - set(boundaries))
        if unknown:
            raise InputError(
                f"{[f'{key}.{name}' for name in unknown]}: no such boundary; this geometry has "
                f"{list(boundaries)}."
            )
    values = {name: _value(raw, f"{key}.{name}", shape, free) for name, raw in table.items()}
    if free and shape:
        for name, value in values.items():
            if all(v is None for v in value):
                raise InputError(f"{key}.{name} leaves every component free; remove it.")
    return values


def _micro(data: dict[str, Any], config: RunConfig, base: Path) -> RunConfig:
    table = subtable(data, "micro") if "micro" in data else {}
    check_keys(
        "micro",
        table,
        required=set(),
        optional={"model", "period", "graded", *BC_KEYS, *SOLVE_KEYS, *MEDIUM_KEYS},
    )
    bc, ratio = parse_micro_bc(table)
    model = typed(table, "micro", "model", str) if "model" in table else "cell"
    if model not in ("cell", "effective"):
        raise InputError(f'micro.model must be "cell" or "effective", got {model!r}.')
    if model == "effective" and (config.nonlinear or config.history):
        raise InputError(
            'micro.model = "effective" needs linear phases; a power-law, J2 or Maxwell phase '
            'needs "cell".'
        )
    if config.nonlinear and config.history:
        raise InputError(
            "a cell cannot mix power-law phases with J2/Maxwell phases (the history cell takes "
            'elastic, "j2" and "maxwell" laws); give the power-law phase law = "elastic" or make '
            "every phase path-independent."
        )
    period = typed(table, "micro", "period", float) if "period" in table else None
    if period is not None and not period > 0:
        raise InputError(f"micro.period must be a positive length, got {period}.")
    graded = _graded(table, config) if "graded" in table else None
    if graded is not None and model == "effective":
        raise InputError('micro.graded needs micro.model = "cell" (one cell per RVE value).')
    medium = parse_medium(table, config.cell, base, config.nonlinear or config.history)
    if medium is not None and (graded is not None or model == "effective"):
        raise InputError(
            'micro.medium is a micro model of its own: remove micro.graded and micro.model = "effective".'
        )
    solves = _micro_solves(table, config)
    cell = replace(config.cell, bc=bc, oversampling=ratio)
    return replace(
        config,
        cell=cell,
        model=model,
        period=period,
        graded=graded,
        micro_solves=solves,
        medium=medium,
    )


def _micro_solves(table: dict[str, Any], config: RunConfig) -> MicroSolves:
    """The ``SOLVE_KEYS`` of ``[micro]``: each checked, and refused for a cell it does not fit."""
    kind = "history" if config.history else "nonlinear" if config.nonlinear else "linear"
    laws = {"history": "J2/Maxwell", "nonlinear": "power-law", "linear": "linear"}
    for key in sorted(set(SOLVE_KEYS) & set(table)):
        if SOLVE_KEYS[key] != kind:
            own = [k for k, v in SOLVE_KEYS.items() if v == kind]
            hint = f"; this cell's switches are {own}" if own else ""
            raise InputError(
                f"micro.{key} applies to cells with {laws[SOLVE_KEYS[key]]} phases, not to this "
                f"{laws[kind]} cell: remove it{hint}."
            )
    values: dict[str, Any] = {}
    for key in ("shortcut", "predict"):
        if key in table:
            values[key] = typed(table, "micro", key, bool)
    if "linear_solver" in table:
        values["linear_solver"] = typed(table, "micro", "linear_solver", str)
        if values["linear_solver"] not in LINEAR_SOLVERS:
            raise InputError(
                f"micro.linear_solver must be one of {list(LINEAR_SOLVERS)}, got "
                f"{values['linear_solver']!r}."
            )
    if "tangent_reuse" in table:
        reuse = values["tangent_reuse"] = typed(table, "micro", "tangent_reuse", float)
        if not 0 <= reuse <= 1:
            raise InputError(
                f"micro.tangent_reuse must be a relative distance in [0, 1], got {reuse}."
            )
        if not values.get("predict", True):
            raise InputError("micro.tangent_reuse applies with micro.predict = true; remove it.")
    return MicroSolves(**values)


def _graded(micro: dict[str, Any], config: RunConfig) -> Graded:
    table = subtable(micro, "graded", "micro.graded")
    keys = {"parameter", "axis", "start", "end", "step"}
    check_keys("micro.graded", table, required=keys, optional=set())
    where = "micro.graded"
    parameter = typed(table, where, "parameter", str)
    if parameter not in GRADED_KEYS:
        raise InputError(
            f"{where}.parameter must be one of {list(GRADED_KEYS)}, got {parameter!r}."
        )
    axis_name = typed(table, where, "axis", str)
    dim = config.cell.physics.dim
    if axis_name not in AXES[:dim]:
        raise InputError(f"{where}.axis must be one of {list(AXES[:dim])}, got {axis_name!r}.")
    ends = []
    for key in ("start", "end"):
        pair = typed(table, where, key, list)
        if len(pair) != 2:
            raise InputError(f"{where}.{key} must be [position, value], got {pair!r}.")
        ends.append((pair[0], pair[1]))
    if not ends[1][0] > ends[0][0]:
        raise InputError(f"{where}: end position {ends[1][0]} must be beyond start {ends[0][0]}.")
    step = typed(table, where, "step", float)
    (_, v0), (_, v1) = ends
    cells = abs(v1 - v0) / step if step > 0 else math.inf
    if not (cells < MAX_GRADED_CELLS and math.isfinite(max(abs(v0), abs(v1)) / step)):
        raise InputError(
            f"{where}.step = {step} must be positive and give at most {MAX_GRADED_CELLS} cells "
            f"between the values {v0} and {v1}; use a step of at least "
            f"{abs(v1 - v0) / (MAX_GRADED_CELLS - 1):.3g}."
        )
    graded = Graded(parameter, AXES.index(axis_name), ends[0], ends[1], step)
    for position, value in ends:  # both end cells must be valid RVEs
        x = [0.0] * dim
        x[graded.axis] = position
        try:
            graded.spec_at(config.cell.rve, x)
        except InputError as err:
            raise InputError(f"{where}: the RVE at {parameter} = {value}: {err}") from err
    if config.nonlinear or config.history:
        raise InputError(
            f"{where} with power-law, J2 or Maxwell phases is not supported; use linear phases."
        )
    return graded


def _solver(data: dict[str, Any], config: RunConfig) -> RunConfig:
    table = subtable(data, "solver") if "solver" in data else {}
    check_keys("solver", table, set(), set(RUN_SOLVER_KEYS))
    values: dict[str, Any] = {}
    for key in ("rtol", "atol"):
        if key in table:
            values[key] = typed(table, "solver", key, float)
            if not 0 <= values[key] < 1:
                raise InputError(f"solver.{key} must lie in [0, 1), got {values[key]}.")
    if "max_iterations" in table:
        values["max_iterations"] = typed(table, "solver", "max_iterations", int)
        if not 1 <= values["max_iterations"] <= 1000:
            raise InputError(
                f"solver.max_iterations must be from 1 to 1000, got {values['max_iterations']}."
            )
    if "schedule" in table:
        values["schedule"] = typed(table, "solver", "schedule", str)
        if values["schedule"] not in ("owner", "balanced"):
            raise InputError(
                f'solver.schedule must be "owner" or "balanced", got {values["schedule"]!r}.'
            )
    return replace(config, **values)


def _output(data: dict[str, Any], config: RunConfig) -> RunConfig:
    table = subtable(data, "output") if "output" in data else {}
    check_keys("output", table, set(), {"fields", "snapshots", "png", "curve"})
    values: dict[str, Any] = {}
    if "fields" in table:
        values["fields"] = typed(table, "output", "fields", str)
        if values["fields"] not in ("xdmf", "vtx", "none"):
            raise InputError(
                f'output.fields must be "xdmf", "vtx" or "none", got {values["fields"]!r}.'
            )
    if "png" in table:
        values["png"] = typed(table, "output", "png", bool)
    if "curve" in table:
        raw = table["curve"]
        ok = isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], str)
        if not ok or isinstance(raw[1], bool) or not isinstance(raw[1], int):
            raise InputError(
                f'output.curve must be [boundary, component], e.g. ["right", 0], got {raw!r}.'
            )
        values["curve"] = (raw[0], raw[1])
    if "snapshots" in table:
        raw = table["snapshots"]
        dim = config.cell.physics.dim
        if raw == "peak":
            values["snapshots"] = "peak"
        elif isinstance(raw, list):
            points = []
            for i, point in enumerate(raw):
                ok = isinstance(point, list) and len(point) == dim
                if not ok or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) for v in point
                ):
                    raise InputError(
                        f"output.snapshots[{i}] must be a point of {dim} coordinates, got {point!r}."
                    )
                points.append(tuple(float(v) for v in point))
            values["snapshots"] = points
        else:
            raise InputError(
                f'output.snapshots must be "peak" or a list of points [[x, y], ...], got {raw!r}.'
            )
    return replace(config, **values)

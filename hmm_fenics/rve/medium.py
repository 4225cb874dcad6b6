"""A fine-scale medium given by a coefficient function, and the windows that sample it.

HMM's micro domain at a macro point x is the window x + δ·(−½, ½)^d cut from the medium.
Here the medium is a positive scalar field a(x) given by the user (a Python callable; in run
files ``module:function``), possibly locally periodic, a(x, x/ε). The window is meshed
structured (an interval, a rectangle or a box of δ, on ``MPI.COMM_SELF``) and a(x) is
evaluated at the quadrature points of that mesh, shifted to the window's place: a quadrature
coefficient, so the forms integrate a exactly at their points (no interpolation).

Calling convention: ``a(x)`` or ``a(x, epsilon)`` with ``x`` the global positions, shape
``(dim, n)`` (rows x1, x2[, x3], as DOLFINx's ``interpolate``), returning ``(n,)`` values,
finite and positive. No solver here (``coupling.sampling`` and ``micro.interval`` solve).
"""

import importlib.util
import inspect
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.rve.mesh import RVEMesh
from hmm_fenics.rve.spec import RVESpec

MEDIUM_KEY = "micro.medium"
MAX_WINDOW_CELLS = 2_000_000
"""Structured windows above this many cells are refused (a micro solve per macro point)."""


def load_function(target: str, base: Path, key: str = MEDIUM_KEY) -> Callable[..., Any]:
    """The callable named by ``module:function``, importable from ``base`` (the run file's folder).

    ``module`` is a file ``module.py`` (or a path to a ``.py`` file) relative to ``base``, or
    else an importable module name.

    Raises:
        InputError: naming ``key``: a malformed target, a missing or failing module, no such
            attribute, or an attribute that is not callable.
    """
    module_name, sep, name = target.rpartition(":")
    if not sep or not module_name or not name.isidentifier():
        raise InputError(
            f"{key} must be 'module:function' (e.g. 'medium.py:conductivity' or "
            f"'mypackage.media:a'), got {target!r}."
        )
    file = Path(module_name if module_name.endswith(".py") else f"{module_name}.py")
    file = file if file.is_absolute() else base / file
    try:
        if file.is_file():
            label = f"hmm_fenics_medium_{abs(hash(str(file.resolve())))}"
            spec = importlib.util.spec_from_file_location(label, file)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {file}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[label] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name.removesuffix(".py"))
    except Exception as err:  # the user's module may raise anything while importing
        raise InputError(
            f"{key}: cannot import {module_name!r} (looked for {str(file)!r} and an installed "
            f"module): {type(err).__name__}: {err}"
        ) from err
    function = getattr(module, name, None)
    if function is None:
        raise InputError(f"{key}: module {module_name!r} has no attribute {name!r}.")
    if not callable(function):
        raise InputError(f"{key}: {target!r} is not callable (a {type(function).__name__}).")
    return function  # type: ignore[no-any-return]


EPSILON_NAMES = ("eps", "epsilon")


def _epsilon_parameter(function: Callable[..., Any]) -> str | None:
    """How ``function`` takes ε: ``""`` positionally, a name as a keyword, None not at all.

    ε goes to a second positional parameter without a default (or ``*args``), else to a
    parameter named ``eps`` or ``epsilon``; a defaulted second parameter with another name
    (``a(x, scale=2.0)``) keeps its default.
    """
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: a(x) only
        return None
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2 and positional[1].default is inspect.Parameter.empty:
        return ""
    if len(positional) < 2 and any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return ""
    named = [p for p in parameters[1:] if p.name in EPSILON_NAMES and p.kind != p.POSITIONAL_ONLY]
    return named[0].name if named else None


def _evaluate(function: Callable[..., Any], x: Any, epsilon: float | None) -> Any:
    """``function`` at ``x``, with ε passed as :func:`_epsilon_parameter` says."""
    how = _epsilon_parameter(function)
    if how is None or (how and epsilon is None):  # a named ε without a period keeps its default
        return function(x)
    return function(x, epsilon) if how == "" else function(x, **{how: epsilon})


@dataclass(frozen=True)
class CoefficientMedium:
    """A medium whose coefficient a(x) > 0 is a function of the global position.

    Args:
        function: ``a(x)`` or ``a(x, epsilon)``, ``x`` of shape ``(dim, n)``, returning ``(n,)``.
        epsilon: The period ε of a locally periodic medium (passed on as the second argument,
            if the function takes one), or None.
        key: The key path that names the function in messages (``micro.medium``).
    """

    function: Callable[..., Any]
    epsilon: float | None = None
    key: str = MEDIUM_KEY

    def __post_init__(self) -> None:
        if not callable(self.function):
            raise InputError(f"{self.key} must be a callable a(x), got {self.function!r}.")
        if self.epsilon is not None and not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise InputError(f"micro.epsilon must be a positive length, got {self.epsilon}.")
        if _epsilon_parameter(self.function) == "" and self.epsilon is None:
            raise InputError(
                f"{self.key} takes a second argument (ε) but no period is given: set "
                "micro.epsilon (or epsilon= in the API)."
            )

    def values(self, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """A at ``points`` (shape ``(n, dim)``, global positions), checked; shape ``(n,)``.

        Raises:
            InputError: the function raised, or returned the wrong shape, non-finite or
                non-positive values (the message names the key and a bad point).
        """
        x = np.ascontiguousarray(np.asarray(points, dtype=np.float64).T)
        try:
            raw = _evaluate(self.function, x, self.epsilon)
            values = np.asarray(raw, dtype=np.float64)
        except InputError:
            raise
        except Exception as err:  # the user's function may raise anything
            raise InputError(
                f"{self.key} raised {type(err).__name__} for positions of shape {x.shape}: {err}"
            ) from err
        n = x.shape[1]
        if values.shape == () and n:  # a constant medium
            values = np.full(n, float(values))
        if values.shape != (n,):
            raise InputError(
                f"{self.key} must return one value per point, shape ({n},) for x of shape "
                f"{x.shape}, got shape {values.shape}."
            )
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            i = int(np.argmax(bad))
            where = ", ".join(f"{c:.6g}" for c in x[:, i])
            raise InputError(
                f"{self.key} must be finite and positive, got {values[i]!r} at x = ({where}) "
                f"({int(bad.sum())} of {n} points)."
            )
        return values


def as_medium(
    medium: "CoefficientMedium | Callable[..., Any]", epsilon: float | None = None
) -> CoefficientMedium:
    """``medium`` itself, or a plain callable wrapped as a ``CoefficientMedium``."""
    if isinstance(medium, CoefficientMedium):
        return medium
    return CoefficientMedium(medium, epsilon)


def check_window(
    delta: float,
    cells: int,
    dim: int,
    key: str = "micro.delta",
    remedy: str = "lower micro.cells_per_epsilon or micro.delta",
) -> None:
    """Refuse a window size that is not positive and finite, or too many cells.

    Args:
        delta: The window's edge.
        cells: Elements per direction.
        dim: Dimension of the window.
        key: The name of the size in the caller's input (a run-file key or a study option).
        remedy: What to change, in the names of the caller's inputs, when there are too
            many cells.

    Raises:
        InputError: naming ``key`` (the size), or with ``remedy`` (the count).
    """
    if not (math.isfinite(delta) and delta > 0):
        raise InputError(f"{key} must be a positive length, got {delta}.")
    if not cells >= 1:
        raise InputError(f"the window needs at least one cell per direction, got {cells}.")
    if dim * math.log10(cells) > math.log10(MAX_WINDOW_CELLS):  # no float overflow
        raise InputError(
            f"a window of {float(cells):.3g}^{dim} cells is above the limit "
            f"{MAX_WINDOW_CELLS:.0e} cells: {remedy}."
        )


def window_mesh(dim: int, delta: float, cells: int) -> Any:
    """A structured mesh of the box [0, δ]^dim on ``MPI.COMM_SELF`` (interval, triangles, tets).

    Opposite faces of the structured mesh match node for node, so the periodic map applies
    to any δ (not only whole periods).
    """
    from dolfinx import mesh as dmesh

    check_window(delta, cells, dim)
    if dim == 1:
        return dmesh.create_interval(MPI.COMM_SELF, cells, [0.0, delta])
    if dim == 2:
        return dmesh.create_rectangle(
            MPI.COMM_SELF, [[0.0, 0.0], [delta, delta]], [cells, cells], dmesh.CellType.triangle
        )
    if dim == 3:
        return dmesh.create_box(
            MPI.COMM_SELF,
            [[0.0, 0.0, 0.0], [delta] * 3],
            [cells] * 3,
            dmesh.CellType.tetrahedron,
        )
    raise InputError(f"a window is 1D, 2D or 3D, got dim = {dim}.")


def window_rve(mesh: Any, delta: float, label: str) -> RVEMesh:
    """The 2D/3D window mesh as a one-phase (``matrix``) periodic RVE for the cell problems.

    Args:
        mesh: From ``window_mesh`` (dim 2 or 3).
        delta: Its edge.
        label: How messages name the cell (``spec.path`` of a ``file`` spec, never read).
    """
    from dolfinx import mesh as dmesh

    dim = mesh.topology.dim
    n_cells = mesh.topology.index_map(dim).size_local
    tags = dmesh.meshtags(
        mesh, dim, np.arange(n_cells, dtype=np.int32), np.ones(n_cells, dtype=np.int32)
    )
    return RVEMesh(
        mesh,
        tags,
        {"matrix": 1},
        np.zeros(dim),
        np.full(dim, float(delta)),
        0.0,
        RVESpec(kind="file", dim=dim, path=label),
    )


def quadrature_space(mesh: Any, degree: int) -> Any:
    """The scalar quadrature space of ``degree`` (the points of the forms that use it).

    Gauss–Jacobi points: all inside the cells. (Basix's default tetrahedron rule of degree 4
    has points on the edges, where a layered coefficient is ambiguous.)
    """
    import basix.ufl
    from dolfinx import fem

    element = basix.ufl.quadrature_element(
        mesh.basix_cell(), value_shape=(), scheme="gauss_jacobi", degree=degree
    )
    return fem.functionspace(mesh, element)


def sample(
    medium: CoefficientMedium, space: Any, origin: npt.NDArray[np.float64], into: Any = None
) -> Any:
    """a(origin + y) at the quadrature points y of ``space``, as a ``Function`` (``into``, reused).

    Args:
        medium: The medium.
        space: From ``quadrature_space`` on the window mesh.
        origin: Global position of the window's corner y = 0, shape ``(dim,)``.
        into: A function of ``space`` to overwrite (None: a new one).
    """
    from dolfinx import fem

    dim = space.mesh.topology.dim
    local = space.tabulate_dof_coordinates()[:, :dim]
    shift = np.asarray(origin, dtype=np.float64).reshape(-1)[:dim]
    coefficient = fem.Function(space) if into is None else into
    coefficient.x.array[:] = medium.values(local + shift)
    return coefficient


def window_origin(x: npt.NDArray[np.float64], delta: float, dim: int) -> npt.NDArray[np.float64]:
    """Lower corner x − δ/2 of the window centred at macro point ``x``, shape ``(dim,)``."""
    return np.asarray(x, dtype=np.float64).reshape(-1)[:dim] - 0.5 * delta

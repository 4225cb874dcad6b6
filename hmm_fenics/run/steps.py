"""Results of a run in steps: the micro averages per point, their cell field, the curve.

The load-displacement curve is the reaction of one Dirichlet boundary (one component)
against its prescribed value, step by step from the unloaded start; a cyclic path draws its
hysteresis loop. Which boundary: ``[output] curve = [name, component]``, else the first
Dirichlet boundary with a non-zero prescribed value and its first non-zero component.
"""

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hmm_fenics.physics import Elasticity
from hmm_fenics.run.pictures import curve_picture
from hmm_fenics.run.schema import RunConfig


def model_averages(model: Any) -> dict[str, npt.NDArray[np.float64]]:
    """The per-point cell averages of the model's last response, or {} (collective)."""
    method = getattr(model, "averages", None)
    return {} if method is None else dict(method())


def point_field(
    mesh: Any, values: npt.NDArray[np.float64], weights: npt.NDArray[np.float64], name: str
) -> Any:
    """A DG0 scalar of the cell averages of point values (the exact L2 projection).

    Args:
        mesh: The macro mesh.
        values: One value per owned quadrature point, ``(n_points,)``, cell by cell.
        weights: Their quadrature weights, ``(n_points,)``.
        name: The field's name.
    """
    from dolfinx import fem

    space = fem.functionspace(mesh, ("DG", 0))
    field = fem.Function(space, name=name)
    n_cells = mesh.topology.index_map(mesh.topology.dim).size_local
    if n_cells:
        w = weights.reshape(n_cells, -1)
        per_cell = (w * np.asarray(values).reshape(n_cells, -1)).sum(axis=1) / w.sum(axis=1)
        field.x.array[space.dofmap.list[:n_cells, 0]] = per_cell
    field.x.scatter_forward()
    return field


def curve_of(config: RunConfig) -> tuple[str, int, float] | None:
    """(boundary, component, prescribed value at factor 1) of the curve, or None.

    None: no boundary was chosen and no Dirichlet value is non-zero.
    """
    if config.curve is not None:
        name, component = config.curve
        value = config.dirichlet[name]
        given = list(value) if isinstance(value, tuple) else [value]
        return name, component, float(given[component])
    for name, value in config.dirichlet.items():
        given = list(value) if isinstance(value, tuple) else [value]
        for component, v in enumerate(given):
            if v is not None and v != 0:
                return name, component, float(v)
    return None


def curve_points(
    config: RunConfig, steps: list[dict[str, Any]]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """Prescribed displacement and reaction from the unloaded start through every step."""
    chosen = curve_of(config)
    if chosen is None:
        return None
    name, component, value = chosen
    displacement = [0.0] + [s["factor"] * value for s in steps]
    force = [0.0] + [s["reactions"][name][component] for s in steps]
    return np.asarray(displacement), np.asarray(force)


def path_segments(config: RunConfig, steps: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """The curve points of each segment of the load path: ``(first, last, label)``.

    Point 0 is the unloaded start, point k the end of step k; a segment runs from the point
    that ends the previous one. A segment without steps (none ends in it) is left out.
    """
    vertices = config.loading.points
    times = np.array([vertices[0][0]] + [s["time"] for s in steps])
    segments = []
    for k, ((t0, f0), (t1, f1)) in enumerate(itertools.pairwise(vertices)):
        inside = np.nonzero((times > t0) & (times <= t1 * (1 + 1e-12) + 1e-12))[0]
        if len(inside):
            first = int(inside[0]) - 1
            kind = "hold" if f1 == f0 else "loading" if abs(f1) > abs(f0) else "unloading"
            segments.append(
                (first, int(inside[-1]), f"{k + 1}: {kind}, factor {f0:.3g} → {f1:.3g}")
            )
    return segments


def load_curve(path: Path, config: RunConfig, steps: list[dict[str, Any]]) -> Path | None:
    """Draw ``curve.png`` (this rank), or nothing without a prescribed non-zero value.

    The axes are in the run file's units: displacements in the mesh's length unit, forces
    (2D: per unit thickness) in the materials' stress unit times that length.
    """
    points = curve_points(config, steps)
    chosen = curve_of(config)
    if points is None or chosen is None:
        return None
    name, component, _ = chosen
    if isinstance(config.cell.physics, Elasticity):
        what = "displacement"
        per = " per unit thickness" if config.cell.physics.dim == 2 else ""
        labels = (
            f"prescribed u{component + 1} on {name!r} [length unit of the mesh]",
            f"reaction F{component + 1} on {name!r} [stress unit × length{per}]",
        )
    else:
        what = "value"
        labels = (f"prescribed value on {name!r}", f"reaction flux through {name!r}")
    segments = path_segments(config, steps) if len(config.loading.points) > 2 else None
    title = f"load-{what} curve ({len(steps)} steps)"
    return curve_picture(path, *points, labels, title, segments)

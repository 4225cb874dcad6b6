"""Results of a run in steps: the micro averages per point, their cell field, the curve.

The load-displacement curve is the reaction of one Dirichlet boundary (one component)
against its prescribed value, step by step from the unloaded start; a cyclic path draws its
hysteresis loop. Which boundary: ``[output] curve = [name, component]``, else the first
Dirichlet boundary with a non-zero prescribed value and its first non-zero component.
"""

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


def load_curve(path: Path, config: RunConfig, steps: list[dict[str, Any]]) -> Path | None:
    """Draw ``curve.png`` (this rank), or nothing without a prescribed non-zero value."""
    points = curve_points(config, steps)
    chosen = curve_of(config)
    if points is None or chosen is None:
        return None
    name, component, _ = chosen
    if isinstance(config.cell.physics, Elasticity):
        what = ("displacement", "reaction force")
        labels = (f"prescribed u{component + 1} on {name!r}", f"reaction F{component + 1}")
    else:
        what = ("value", "reaction flux")
        labels = (f"prescribed value on {name!r}", "reaction flux")
    return curve_picture(path, *points, labels, f"load-{what[0]} curve ({len(steps)} steps)")

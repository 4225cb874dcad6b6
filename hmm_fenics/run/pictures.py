"""PNG pictures of 2D results with matplotlib: the macro fields and one RVE's micro field.

Cells are drawn as polygons coloured by their cell-average values (what the XDMF files
hold), so that the picture shows exactly the data written, on any number of ranks (the
owned cells are gathered on rank 0).
"""

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hmm_fenics.parallel.collective import on_one_rank
from hmm_fenics.physics import Elasticity, Physics
from hmm_fenics.plots import colour_range, figure_size


def equivalent(physics: Physics, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per cell: |flux| (diffusion) or the von Mises stress of the 3×3 stress (2D: padded).

    The macro stress of a plane-strain run holds ⟨σ33⟩ (``run.fields.set_out_of_plane``); a
    micro snapshot's stress has σ33 = 0, so its von Mises stress is the in-plane one.
    """
    if not isinstance(physics, Elasticity):
        return np.asarray(np.linalg.norm(values.reshape(len(values), -1), axis=1))
    s = values.reshape(len(values), 3, 3)
    deviator = s - np.einsum("pii->p", s)[:, None, None] / 3 * np.eye(3)
    return np.asarray(np.sqrt(1.5 * np.einsum("pij,pij->p", deviator, deviator)))


def _polygons(mesh: Any) -> npt.NDArray[np.float64]:
    """Vertex coordinates of the owned cells, ``(n_cells, n_vertices, 2)``, drawable order."""
    n_owned = mesh.topology.index_map(2).size_local
    nodes = mesh.geometry.dofmaps[0][:n_owned]  # the vertices first, then edge/face nodes
    if mesh.topology.cell_type.name == "quadrilateral":  # vertices as a tensor product
        nodes = nodes[:, [0, 1, 3, 2]]
    else:  # second-order triangles: the corners only (edge nodes made the polygons cross)
        nodes = nodes[:, :3]
    return np.asarray(mesh.geometry.x[nodes][:, :, :2])


def _cell_values(function: Any) -> npt.NDArray[np.float64]:
    """Owned cell values of a DG0 function, ``(n_cells, value size)``."""
    mesh = function.function_space.mesh
    n_owned = mesh.topology.index_map(2).size_local
    size = int(np.prod(function.function_space.value_shape, dtype=int))
    dofs = function.function_space.dofmap.list[:n_owned, 0]
    return np.asarray(function.x.array.reshape(-1, size)[dofs])


def _extent(polygons: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Width and height of the cells' bounding box."""
    if len(polygons) == 0:
        return (1.0, 1.0)
    span = polygons.reshape(-1, 2).max(axis=0) - polygons.reshape(-1, 2).min(axis=0)
    return (float(span[0]), float(span[1]))


def _fit(axes: Any, polygons: npt.NDArray[np.float64]) -> None:
    """Axes limits = the cells' bounding box (no margins), equal scales."""
    if len(polygons):
        points = polygons.reshape(-1, 2)
        low, high = points.min(axis=0), points.max(axis=0)
        axes.set_xlim(low[0], high[0])
        axes.set_ylim(low[1], high[1])
    axes.set_aspect("equal")


def _panel(
    figure: Any,
    axes: Any,
    polygons: Any,
    values: Any,
    title: str,
    label: str,
    edges: bool,
    units: str = "mesh units",
) -> Any:
    """Cells coloured by ``values``, a colour bar labelled ``label`` (returned), axes in ``units``.

    A nearly constant field gets a widened colour range (``plots.colour_range``) and its
    values' range in the title, so that noise is not drawn as structure.
    """
    from matplotlib.collections import PolyCollection

    limits = colour_range(values)
    collection = PolyCollection(
        polygons,
        array=values,
        cmap="viridis",
        edgecolors="k" if edges else "face",
        linewidths=0.1 if edges else 0.0,
    )
    collection.set_clim(limits.vmin, limits.vmax)
    axes.add_collection(collection)
    _fit(axes, polygons)
    axes.set_title(f"{title}\n{limits.note}" if limits.note else title, fontsize=10)
    first, second = ("y₁", "y₂") if units == "cell units" else ("x", "y")
    axes.set_xlabel(f"{first} ({units})")
    axes.set_ylabel(f"{second} ({units})")
    bar = figure.colorbar(collection, ax=axes, shrink=0.8)
    bar.set_label(label)
    return bar


def flux_label(physics: Physics, micro: bool = False) -> str:
    """The name of the equivalent flux/stress drawn: von Mises stress or |flux|."""
    if isinstance(physics, Elasticity):
        return "von Mises stress (in-plane)" if micro else "von Mises stress"
    return "|flux|"


def macro_figure(
    polygons: npt.NDArray[np.float64],
    primary: npt.NDArray[np.float64],
    flux: npt.NDArray[np.float64],
    physics: Physics,
    primary_title: str,
) -> Any:
    """The figure of ``macro_picture``: the macro field and the equivalent flux/stress.

    Args:
        polygons: Cell vertices, ``(n_cells, n_vertices, 2)``.
        primary: Cell values of the macro field, ``(n_cells,)``.
        flux: Cell values of |flux| or the von Mises stress, ``(n_cells,)``.
        physics: The macro physics.
        primary_title: The macro field's name (its colour bar's label).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    extent = _extent(polygons)
    if extent[1] < 0.75 * extent[0]:  # a wide domain: the two pictures one above the other
        width, height = figure_size(extent)
        figure, axes = plt.subplots(2, 1, figsize=(width, 2 * height - 0.6))
    else:
        figure, axes = plt.subplots(1, 2, figsize=figure_size(extent, panels=2))
    name = flux_label(physics)
    primary_title = primary_title.removesuffix(", cell averages")
    _panel(figure, axes[0], polygons, primary, f"{primary_title}, cell averages", primary_title,
           edges=False)  # fmt: skip
    _panel(figure, axes[1], polygons, flux, f"{name}, cell averages", f"{name}, cell average",
           edges=False)  # fmt: skip
    figure.tight_layout()
    return figure


def macro_picture(
    path: Path, physics: Physics, primary: Any, primary_title: str, flux: Any, comm: Any
) -> Path | None:
    """The macro field and the equivalent flux/stress side by side (collective; rank 0 draws).

    Args:
        path: PNG to write.
        physics: The macro physics.
        primary: DG0 scalar: temperature, or displacement magnitude.
        primary_title: Its name (e.g. ``"temperature"``): panel title and colour bar label.
        flux: DG0 flux (vector) or stress (tensor).
        comm: The macro communicator.
    """
    mesh = primary.function_space.mesh
    mine = (_polygons(mesh), _cell_values(primary)[:, 0], equivalent(physics, _cell_values(flux)))
    everything = comm.gather(mine, root=0)

    def draw() -> Path:
        polygons = np.concatenate([p for p, _, _ in everything])
        u = np.concatenate([v for _, v, _ in everything])
        q = np.concatenate([v for _, _, v in everything])
        return _save(macro_figure(polygons, u, q, physics, primary_title), path)

    return on_one_rank(comm, draw)  # rank 0 draws; its failure is raised on every rank


def gradient_text(physics: Physics, gradient: npt.ArrayLike) -> str:
    """The macro gradient for a title: ``∇u = (…)`` or ``ε = (…) (Mandel)``."""
    values = ", ".join(f"{v:.3g}" for v in np.asarray(gradient, dtype=np.float64) + 0.0)
    if isinstance(physics, Elasticity):
        return f"macro strain ε = ({values}) (Mandel)"
    return f"macro gradient ∇u = ({values})"


def micro_figure(
    polygons: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    physics: Physics,
    title: str,
    gradient: npt.ArrayLike | None = None,
) -> Any:
    """The figure of ``micro_picture``: one RVE coloured by its micro flux/stress, in cell units.

    Args:
        polygons: Cell vertices, ``(n_cells, n_vertices, 2)``.
        values: Cell values of |flux| or the von Mises stress, ``(n_cells,)``.
        physics: The micro physics.
        title: Where the RVE is (first title line).
        gradient: The macro gradient that loads it (Mandel for elasticity), for the title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=figure_size(_extent(polygons), width=4.5))
    name = flux_label(physics, micro=True)
    lines = [title] if gradient is None else [title, gradient_text(physics, gradient)]
    _panel(figure, axes, polygons, values, "\n".join([*lines, name]), f"{name}, cell average",
           edges=True, units="cell units")  # fmt: skip
    figure.tight_layout()
    return figure


def micro_picture(
    path: Path, physics: Physics, flux: Any, title: str, gradient: npt.ArrayLike | None = None
) -> Path:
    """One RVE coloured by its equivalent micro flux/stress, with the mesh (this rank).

    Args:
        path: PNG to write.
        physics: The micro physics.
        flux: DG0 micro flux (vector) or stress (tensor).
        title: Where the RVE is.
        gradient: The macro gradient that loads it, shown in the title.
    """
    values = equivalent(physics, _cell_values(flux))
    figure = micro_figure(_polygons(flux.function_space.mesh), values, physics, title, gradient)
    return _save(figure, path)


def _save(figure: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(figure)
    return path


def scalar_figure(
    polygons: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    title: str,
    label: str,
    zero_as_background: bool = False,
) -> Any:
    """The figure of ``scalar_picture`` (arguments as there; ``label`` names the colour bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import PowerNorm

    figure, axes = plt.subplots(figsize=figure_size(_extent(polygons)))
    if not zero_as_background:
        _panel(figure, axes, polygons, values, title, label, edges=False)
        figure.tight_layout()
        return figure
    zero = values == 0.0
    axes.add_collection(PolyCollection(polygons[zero], facecolors="0.85", edgecolors="0.85"))
    top = float(values.max(initial=0.0))
    collection = PolyCollection(
        polygons[~zero],
        array=values[~zero],
        cmap="viridis",
        norm=PowerNorm(0.5, vmin=0.0, vmax=top if top > 0 else 1.0),
        edgecolors="face",
    )
    axes.add_collection(collection)
    _fit(axes, polygons)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("x (mesh units)")
    axes.set_ylabel("y (mesh units)")
    figure.colorbar(collection, ax=axes, shrink=0.8).set_label(f"{label}, square-root scale")
    figure.tight_layout()
    return figure


def scalar_picture(
    path: Path,
    field: Any,
    title: str,
    comm: Any,
    label: str,
    zero_as_background: bool = False,
) -> Path | None:
    """A DG0 scalar macro field (e.g. the equivalent plastic strain), cell by cell (collective).

    Args:
        path: PNG to write.
        field: The DG0 scalar.
        title: The title.
        comm: The macro communicator.
        label: The colour bar's label (what and units).
        zero_as_background: Cells whose value is exactly 0 (a plastic zone's elastic rest)
            are drawn light grey, the others on a square-root colour scale (a zone whose
            peak at a notch is far above the rest stays visible).
    """
    mesh = field.function_space.mesh
    everything = comm.gather((_polygons(mesh), _cell_values(field)[:, 0]), root=0)

    def draw() -> Path:
        polygons = np.concatenate([p for p, _ in everything])
        values = np.concatenate([v for _, v in everything])
        return _save(scalar_figure(polygons, values, title, label, zero_as_background), path)

    return on_one_rank(comm, draw)


def curve_picture(
    path: Path,
    displacement: npt.NDArray[np.float64],
    force: npt.NDArray[np.float64],
    labels: tuple[str, str],
    title: str,
    segments: list[tuple[int, int, str]] | None = None,
) -> Path:
    """The load-displacement curve through the steps, with markers (this rank draws).

    Args:
        path: PNG to write.
        displacement: Prescribed displacement at the start and after each step, ``(k,)``.
        force: Reaction at the same instants, ``(k,)``.
        labels: Axis labels (x, y).
        title: The title.
        segments: ``(first, last, label)`` index ranges (inclusive) of the load path's
            segments, drawn in their own colours with a legend (a cyclic path: loading,
            unloading and reloading tell apart); None draws one line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(figsize=(6.5, 4.8))
    if segments:
        for k, (first, last, label) in enumerate(segments):
            part = slice(first, last + 1)
            axes.plot(
                displacement[part], force[part], "-o", color=f"C{k % 10}", markersize=3,
                linewidth=1.4, label=label,
            )  # fmt: skip
        axes.legend(fontsize=8, loc="best")
    else:
        axes.plot(displacement, force, "-o", markersize=3, linewidth=1.2)
    axes.axhline(0.0, color="0.7", linewidth=0.6)
    axes.axvline(0.0, color="0.7", linewidth=0.6)
    for axis in (axes.xaxis, axes.yaxis):  # few ticks, small numbers with a common ×10^k
        axis.set_major_locator(MaxNLocator(6))
    axes.ticklabel_format(style="sci", scilimits=(-2, 3), useMathText=True)
    axes.set_xlabel(labels[0])
    axes.set_ylabel(labels[1])
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)
    return path

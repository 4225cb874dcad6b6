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


def _panel(figure: Any, axes: Any, polygons: Any, values: Any, title: str, edges: bool) -> Any:
    """Cells coloured by ``values`` with a colour bar (returned)."""
    from matplotlib.collections import PolyCollection

    collection = PolyCollection(
        polygons,
        array=values,
        cmap="viridis",
        edgecolors="k" if edges else "face",
        linewidths=0.1 if edges else 0.0,
    )
    axes.add_collection(collection)
    axes.autoscale_view()
    axes.set_aspect("equal")
    axes.set_title(title, fontsize=10)
    return figure.colorbar(collection, ax=axes, shrink=0.8)


def macro_picture(
    path: Path, physics: Physics, primary: Any, primary_title: str, flux: Any, comm: Any
) -> Path | None:
    """The macro field and the equivalent flux/stress side by side (collective; rank 0 draws).

    Args:
        path: PNG to write.
        physics: The macro physics.
        primary: DG0 scalar: temperature, or displacement magnitude.
        primary_title: Its title.
        flux: DG0 flux (vector) or stress (tensor).
        comm: The macro communicator.
    """
    mesh = primary.function_space.mesh
    mine = (_polygons(mesh), _cell_values(primary)[:, 0], equivalent(physics, _cell_values(flux)))
    everything = comm.gather(mine, root=0)

    def draw() -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        polygons = np.concatenate([p for p, _, _ in everything])
        u = np.concatenate([v for _, v, _ in everything])
        q = np.concatenate([v for _, _, v in everything])
        name = "von Mises stress" if isinstance(physics, Elasticity) else "|flux|"
        figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        _panel(figure, axes[0], polygons, u, primary_title, edges=False)
        _panel(figure, axes[1], polygons, q, f"{name}, cell averages", edges=False)
        figure.tight_layout()
        figure.savefig(path, dpi=130)
        plt.close(figure)
        return path

    return on_one_rank(comm, draw)  # rank 0 draws; its failure is raised on every rank


def micro_picture(path: Path, physics: Physics, flux: Any, title: str) -> Path:
    """One RVE coloured by its equivalent micro flux/stress, with the mesh (this rank)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mesh = flux.function_space.mesh
    figure, axes = plt.subplots(figsize=(5.5, 4.5))
    name = "von Mises stress (in-plane)" if isinstance(physics, Elasticity) else "|flux|"
    values = equivalent(physics, _cell_values(flux))
    _panel(figure, axes, _polygons(mesh), values, f"{title}\n{name}", edges=True)
    figure.tight_layout()
    figure.savefig(path, dpi=130)
    plt.close(figure)
    return path


def scalar_picture(
    path: Path,
    field: Any,
    title: str,
    comm: Any,
    label: str | None = None,
    zero_as_background: bool = False,
) -> Path | None:
    """A DG0 scalar macro field (e.g. the equivalent plastic strain), cell by cell (collective).

    Args:
        path: PNG to write.
        field: The DG0 scalar.
        title: The title.
        comm: The macro communicator.
        label: The colour bar's label (what and units), if any.
        zero_as_background: Cells whose value is exactly 0 (a plastic zone's elastic rest)
            are drawn light grey, the others on a square-root colour scale (a zone whose
            peak at a notch is far above the rest stays visible).
    """
    mesh = field.function_space.mesh
    everything = comm.gather((_polygons(mesh), _cell_values(field)[:, 0]), root=0)

    def draw() -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.collections import PolyCollection
        from matplotlib.colors import PowerNorm

        polygons = np.concatenate([p for p, _ in everything])
        values = np.concatenate([v for _, v in everything])
        figure, axes = plt.subplots(figsize=(6.5, 4.8))
        if zero_as_background:
            zero = values == 0.0
            axes.add_collection(
                PolyCollection(polygons[zero], facecolors="0.85", edgecolors="0.85")
            )
            top = float(values.max(initial=0.0))
            collection = PolyCollection(
                polygons[~zero],
                array=values[~zero],
                cmap="viridis",
                norm=PowerNorm(0.5, vmin=0.0, vmax=top if top > 0 else 1.0),
                edgecolors="face",
            )
            axes.add_collection(collection)
            axes.autoscale_view()
            axes.set_aspect("equal")
            axes.set_title(title, fontsize=10)
            bar = figure.colorbar(collection, ax=axes, shrink=0.8)
        else:
            bar = _panel(figure, axes, polygons, values, title, edges=False)
        if label is not None:
            bar.set_label(label)
        axes.set_xlabel("x")
        axes.set_ylabel("y")
        figure.tight_layout()
        figure.savefig(path, dpi=130)
        plt.close(figure)
        return path

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

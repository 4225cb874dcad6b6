"""Files for people: RVE previews (``.msh``, XDMF through meshio, PNG pictures in 2D)."""

import contextlib
import io
import logging
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.plots import figure_size
from hmm_fenics.rve.mesh import write_msh
from hmm_fenics.rve.spec import RVESpec

PHASE_COLOURS = {1: "#d9d4c7", 2: "#3b6ea8"}  # matrix, inclusion
OTHER_COLOURS = ("#c8553d", "#588b5b", "#8e6c8a", "#e0a458")  # further image phases
XDMF_GRID = "mesh"  # the grid name that ``dolfinx.io.XDMFFile.read_mesh`` looks for
SHAPES = {
    "triangle": "triangles",
    "quad": "quadrilaterals",
    "tetra": "tetrahedra",
    "hexahedron": "hexahedra",
}

log = logging.getLogger(__name__)


class RVEPreview(NamedTuple):
    """What ``preview_rve`` wrote and what the mesh holds.

    Attributes:
        files: The files written (``.msh``, ``.xdmf``, ``.h5`` and the PNG if any).
        fraction: Inclusion fraction achieved by the mesh (1 − matrix volume / box volume
            for a void inclusion phase).
        target: The fraction asked for (None for an image cell: its pixels decide).
        cells: Number of mesh cells.
        cell_type: Their kind, e.g. ``"triangles"``.
        inclusions: Number of inclusions placed by the generator (None for an image cell).
        phases: Phase name → volume fraction of the meshed phases.
    """

    files: list[Path]
    fraction: float
    target: float | None
    cells: int
    cell_type: str
    inclusions: int | None
    phases: dict[str, float]

    def summary(self, spec: RVESpec) -> str:
        """A few lines for the terminal: kind, mesh, inclusions, fraction achieved."""
        box = " × ".join(f"{length:g}" for length in spec.lengths)
        lines = [
            f"{spec.kind} RVE ({spec.dim}D), box {box} (cell units): {self.cells} {self.cell_type}"
        ]
        if self.inclusions is not None:
            void = " (voids)" if spec.void else ""
            lines.append(f"  inclusions            {self.inclusions}{void}")
        target = "" if self.target is None else f" (target {self.target:g})"
        lines.append(f"  inclusion fraction    {self.fraction:.4f} achieved by the mesh{target}")
        for name, share in self.phases.items():
            lines.append(f"  {name:21s} {share:.4f} of the box")
        return "\n".join(lines)


def write_rve_preview(spec: RVESpec, msh: str | Path, png: str | Path | None = None) -> list[Path]:
    """Write the RVE mesh of ``spec`` as ``.msh`` and ``.xdmf``, and a PNG picture in 2D.

    See ``preview_rve``, which this calls; returns only the files written.
    """
    return preview_rve(spec, msh, png).files


def preview_rve(spec: RVESpec, msh: str | Path, png: str | Path | None = None) -> RVEPreview:
    """Write the RVE mesh of ``spec`` as ``.msh`` and ``.xdmf`` (and a 2D PNG); summarize it.

    The XDMF (with its ``.h5`` data, uncompressed) has one grid named ``mesh`` with the
    cell attribute ``phase`` (1 matrix, 2 inclusion): ParaView and meshio read it, and so
    does DOLFINx (``XDMFFile.read_mesh()``, ``read_meshtags(mesh, "mesh",
    attribute_name="phase")``). The PNG shows the phases with a legend (name and fraction
    achieved) on axes in cell units.

    Args:
        spec: A generated (or image) RVE spec.
        msh: Output ``.msh`` path; the XDMF goes next to it with the same stem.
        png: Optional picture of the phases and the mesh (2D only; for a 3D cell a
            warning is logged and no picture written).

    Returns:
        The files written and the mesh's cells, inclusions and achieved fractions.
    """
    import meshio

    msh_path = Path(msh)
    if msh_path.suffix != ".msh":
        raise InputError(f"-o must name a .msh file, got {str(msh_path)!r}.")
    if png is not None and spec.dim != 2:
        log.warning(
            "warning: no picture %s: --png pictures 2D cells only; open the XDMF of a 3D "
            "cell in ParaView.",
            png,
        )
        png = None
    write_msh(spec, msh_path)
    with contextlib.redirect_stdout(io.StringIO()):  # meshio's gmsh reader prints a blank line
        mesh = meshio.read(msh_path)
    kinds = ("triangle", "quad") if spec.dim == 2 else ("tetra", "hexahedron")
    blocks = [
        (c, d)
        for c, d in zip(mesh.cells, mesh.cell_data["gmsh:physical"], strict=True)
        if c.type in kinds
    ]
    kind = blocks[0][0].type  # one type per cell mesh
    cells = np.concatenate([c.data for c, _ in blocks])
    phases = np.concatenate([d for _, d in blocks]).astype(np.int32)
    xdmf = msh_path.with_suffix(".xdmf")
    meshio.write(  # HDF5 data without compression: DOLFINx's HDF5 has no deflate filter
        xdmf,
        meshio.Mesh(mesh.points[:, : spec.dim], [(kind, cells)], cell_data={"phase": [phases]}),
        compression=None,
    )
    # DOLFINx reads a grid by name (``read_mesh(name="mesh")``); meshio names its grid "Grid"
    xdmf.write_text(xdmf.read_text().replace('<Grid Name="Grid">', f'<Grid Name="{XDMF_GRID}">', 1))
    written = [msh_path, xdmf, xdmf.with_suffix(".h5")]
    names = {
        int(tag): name
        for name, (tag, dim) in ((n, v[:2]) for n, v in mesh.field_data.items())
        if int(dim) == spec.dim
    }
    volumes = _cell_measures(mesh.points[:, : spec.dim], cells, kind)
    shares = {
        names.get(int(tag), f"phase {tag}"): float(volumes[phases == tag].sum() / spec.volume)
        for tag in np.unique(phases)
    }
    fraction = 1.0 - shares.get("matrix", 0.0) if spec.void else shares.get("inclusion", 0.0)
    preview = RVEPreview(
        written,
        fraction,
        None if spec.kind == "image" else spec.fraction,
        len(cells),
        SHAPES.get(kind, kind),
        _inclusions(spec),
        shares,
    )
    if png is not None:
        figure = rve_figure(mesh.points, cells, phases, spec, preview, names)
        path = Path(png)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, bbox_inches="tight")
        _close(figure)
        written.append(path)
    return preview


def rve_figure(
    points: npt.NDArray[np.float64],
    cells: npt.NDArray[np.int64],
    phases: npt.NDArray[np.int32],
    spec: RVESpec,
    preview: RVEPreview,
    names: dict[int, str],
) -> Any:
    """The matplotlib figure of a 2D RVE: phases coloured, mesh edges, legend, cell units.

    Args:
        points: Node coordinates, ``(n_nodes, ≥ 2)``.
        cells: Node indices per cell, ``(n_cells, 3 or 4)`` (counter-clockwise).
        phases: Phase tag per cell, ``(n_cells,)``.
        spec: The cell's spec (kind, box, void).
        preview: Its summary (fractions, counts) for the title and the legend.
        names: Phase tag → phase name.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch

    L = spec.lengths
    fig, ax = plt.subplots(figsize=figure_size(L, width=5.5), dpi=110)  # room for the legend
    colour_of = dict(PHASE_COLOURS)
    for k, tag in enumerate(sorted(set(np.unique(phases).tolist()) - set(PHASE_COLOURS))):
        colour_of[int(tag)] = OTHER_COLOURS[k % len(OTHER_COLOURS)]
    ax.add_collection(
        PolyCollection(
            list(points[cells][:, :, :2]),
            facecolors=[colour_of[int(p)] for p in phases],
            edgecolors="#333333",
            linewidths=0.15,
        )
    )
    handles = [
        Patch(
            facecolor=colour_of[int(tag)],
            edgecolor="#333333",
            label=f"{names.get(int(tag), f'phase {tag}')}: {preview.phases[_name(names, tag)]:.3f}",
        )
        for tag in sorted(np.unique(phases).tolist())
    ]
    if spec.void:
        handles.append(
            Patch(facecolor="white", edgecolor="#333333", label=f"void: {preview.fraction:.3f}")
        )
    ax.legend(
        handles=handles,
        title="phase: area fraction",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        title_fontsize=8,
    )
    ax.set_xlim(0, L[0])
    ax.set_ylim(0, L[1])
    ax.set_aspect("equal")
    ax.set_xlabel("y₁ (cell units)")
    ax.set_ylabel("y₂ (cell units)")
    count = "" if preview.inclusions is None else f", {preview.inclusions} inclusion(s)"
    target = "" if preview.target is None else f" (target {preview.target:g})"
    what = "void fraction" if spec.void else "inclusion fraction"
    ax.set_title(
        f"{spec.kind} RVE: {preview.cells} {preview.cell_type}{count}\n"
        f"{what} {preview.fraction:.4f} achieved{target}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _name(names: dict[int, str], tag: int) -> str:
    return names.get(int(tag), f"phase {tag}")


def _close(figure: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(figure)


def _cell_measures(
    points: npt.NDArray[np.float64], cells: npt.NDArray[np.int64], kind: str
) -> npt.NDArray[np.float64]:
    """Areas/volumes of straight-sided cells, ``(n_cells,)`` (first-order nodes only).

    Triangles and tetrahedra exactly; quadrilaterals as two triangles (exact for planar
    ones); hexahedra as six tetrahedra of the split along the 0–6 diagonal (exact for
    parallelepipeds, such as voxels).
    """
    x = points[cells]
    if kind == "triangle":
        return np.abs(_cross2(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0])) / 2
    if kind == "quad":
        first = _cross2(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0])
        second = _cross2(x[:, 2] - x[:, 0], x[:, 3] - x[:, 0])
        return np.abs(first + second) / 2
    if kind == "tetra":
        return _tet_volumes(x[:, 0], x[:, 1], x[:, 2], x[:, 3])
    # gmsh hexahedron: 0-1-2-3 bottom, 4-5-6-7 top; six tetrahedra around the 0–6 diagonal
    loops = ((1, 2), (2, 3), (3, 7), (7, 4), (4, 5), (5, 1))
    return np.asarray(sum(_tet_volumes(x[:, 0], x[:, a], x[:, b], x[:, 6]) for a, b in loops))


def _cross2(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])


def _tet_volumes(
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    c: npt.NDArray[np.float64],
    d: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    return np.asarray(np.abs(np.einsum("ij,ij->i", b - a, np.cross(c - a, d - a))) / 6)


def _inclusions(spec: RVESpec) -> int | None:
    """How many inclusions the generator places (None for an image or a mesh file)."""
    if spec.kind in ("image", "file"):
        return None
    from hmm_fenics.rve.geometry import primitives

    return len(primitives(spec))

"""Files for people: RVE previews (``.msh``, XDMF through meshio, PNG pictures in 2D)."""

import logging
from pathlib import Path

import numpy as np

from hmm_fenics.errors import InputError
from hmm_fenics.rve.mesh import write_msh
from hmm_fenics.rve.spec import RVESpec

PHASE_COLOURS = {1: "#d9d4c7", 2: "#3b6ea8"}  # matrix, inclusion
XDMF_GRID = "mesh"  # the grid name that ``dolfinx.io.XDMFFile.read_mesh`` looks for

log = logging.getLogger(__name__)


def write_rve_preview(spec: RVESpec, msh: str | Path, png: str | Path | None = None) -> list[Path]:
    """Write the RVE mesh of ``spec`` as ``.msh`` and ``.xdmf``, and a PNG picture in 2D.

    The XDMF (with its ``.h5`` data, uncompressed) has one grid named ``mesh`` with the
    cell attribute ``phase`` (1 matrix, 2 inclusion): ParaView and meshio read it, and so
    does DOLFINx (``XDMFFile.read_mesh()``, ``read_meshtags(mesh, "mesh",
    attribute_name="phase")``).

    Args:
        spec: A generated RVE spec.
        msh: Output ``.msh`` path; the XDMF goes next to it with the same stem.
        png: Optional picture of the phases and the mesh (2D only; for a 3D cell a
            warning is logged and no picture written).

    Returns:
        The files written.
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
    if png is not None:
        written.append(_picture(mesh.points, cells, phases, spec, Path(png)))
    return written


def _picture(
    points: np.ndarray, cells: np.ndarray, phases: np.ndarray, spec: RVESpec, png: Path
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    L = spec.lengths
    fig, ax = plt.subplots(figsize=(6, 6 * L[1] / L[0]), dpi=110)
    polys = points[cells][:, :, :2]
    colours = [PHASE_COLOURS.get(int(p), "#999999") for p in phases]
    ax.add_collection(
        PolyCollection(polys, facecolors=colours, edgecolors="#333333", linewidths=0.15)
    )
    ax.set_xlim(0, L[0])
    ax.set_ylim(0, L[1])
    ax.set_aspect("equal")
    shape = "quadrilaterals" if cells.shape[1] == 4 else "triangles"
    title = f"{spec.kind} RVE, {len(cells)} {shape}"
    if spec.void:
        title += " (inclusions are voids)"
    ax.set_title(title)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return png

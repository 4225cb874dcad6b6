# DOLFINx's Function/Expression APIs are looser at run time than their stubs.
# mypy: disable-error-code="arg-type, misc"
"""Fields for viewing: the macro solution and flux/stress, and micro snapshots.

The flux/stress lives at quadrature points only; for viewing it is projected onto cell
averages (DG0, the exact L2 projection of the quadrature values), as a vector (diffusion) or
a symmetric tensor (elasticity, which ParaView reads as a 3×3 tensor). Fields of degree > 1
are interpolated onto P1, which is what XDMF stores. Each field goes to its own file, so
that any reader (ParaView, meshio) sees all of it; load steps are its time steps.
"""

from pathlib import Path
from typing import Any, NamedTuple

from mpi4py import MPI

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.parallel.collective import on_one_rank
from hmm_fenics.physics import Elasticity, Physics
from hmm_fenics.rve.checks import cell_volumes


def as_tensor(physics: Physics, mandel: Any) -> Any:
    """UFL stress (3×3, see ``padded``) or flux vector of a Mandel/plain component vector."""
    import ufl

    if isinstance(physics, Elasticity):
        return padded(physics, physics.from_mandel(mandel))
    return ufl.as_vector([mandel[i] for i in range(physics.dim)])


def padded(physics: Physics, value: Any) -> Any:
    """A 2D stress as a 3×3 tensor (σ33 = 0 here; see ``set_out_of_plane``), else itself.

    XDMF stores a 2×2 tensor in the first four of nine slots, which ParaView then reads as
    the wrong 3×3 components; a padded tensor is read right.
    """
    import ufl

    if not isinstance(physics, Elasticity) or physics.dim == 3:
        return value
    zero = ufl.as_ufl(0.0)
    return ufl.as_tensor(
        [[value[0, 0], value[0, 1], zero], [value[1, 0], value[1, 1], zero], [zero, zero, zero]]
    )


def flux_shape(physics: Physics) -> tuple[int, ...]:
    """Value shape of the flux (vector) or stress (3×3 tensor, also in 2D)."""
    return (3, 3) if isinstance(physics, Elasticity) else (physics.dim,)


def cell_average(mesh: Any, expression: Any, shape: tuple[int, ...], dx: Any, name: str) -> Any:
    """DG0 function of the cell averages of a UFL expression over measure ``dx``."""
    import ufl
    from dolfinx import fem

    Q = fem.functionspace(mesh, ("DG", 0, shape))
    tau = ufl.TestFunction(Q)
    # DG0 mass matrix is diagonal: the projection is a division by the cell volumes
    numerator = fem.assemble_vector(fem.form(ufl.inner(expression, tau) * dx)).array
    ones = ufl.as_tensor(np.ones(shape).tolist()) if shape else 1.0
    volume = fem.assemble_vector(fem.form(ufl.inner(ones, tau) * dx)).array
    average = fem.Function(Q, name=name)
    owned = Q.dofmap.index_map.size_local * Q.dofmap.index_map_bs
    inside = volume[:owned] > 0  # a measure restricted to one phase leaves the rest at 0
    np.divide(numerator[:owned], volume[:owned], out=average.x.array[:owned], where=inside)
    average.x.scatter_forward()
    return average


def set_out_of_plane(
    average: Any, values: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]
) -> None:
    """Put the cell averages of σ33 into the (3, 3) slot of a DG0 3×3 stress (plane strain).

    Args:
        average: DG0 3×3 stress of the owned cells (from ``cell_average``).
        values: σ33 at the owned quadrature points, ``(n_points,)``, cell by cell.
        weights: Their quadrature weights, ``(n_points,)``: the averages are exact L2
            projections, as for the other components.
    """
    n_cells = average.function_space.mesh.topology.index_map(2).size_local
    w = weights.reshape(n_cells, -1)
    per_cell = (w * values.reshape(n_cells, -1)).sum(axis=1) / w.sum(axis=1)
    dofs = average.function_space.dofmap.list[:n_cells, 0]
    average.x.array.reshape(-1, 9)[dofs, 8] = per_cell
    average.x.scatter_forward()


def viewable(function: Any) -> Any:
    """The function itself if XDMF can store it, else its P1 interpolant (same name)."""
    from dolfinx import fem

    element = function.function_space.ufl_element()
    if element.embedded_superdegree <= 1:
        return function
    shape = function.function_space.value_shape
    V1 = fem.functionspace(function.function_space.mesh, ("Lagrange", 1, shape))
    p1 = fem.Function(V1, name=function.name)
    p1.interpolate(function)
    return p1


class Snapshot(NamedTuple):
    """What ``write_micro_snapshot`` wrote: file names, ⟨flux⟩ (tensor) and the DG0 flux."""

    files: dict[str, str]
    mean_flux: list[Any]
    flux: Any


def write_micro_snapshot(
    path: Path, physics: Physics, cell: Any, gradient: npt.NDArray[np.float64], fluctuation: Any
) -> Snapshot:
    """Write the micro fields of one macro gradient to ``<path stem>_<field>.xdmf`` (COMM_SELF).

    Writes the total field (affine G·y plus the periodic fluctuation), the fluctuation,
    the cell-averaged micro flux/stress and the phase of each cell; returns ⟨flux⟩ over
    the cell box (it should be the macro flux of the point).

    Args:
        path: Folder and stem of the files.
        physics: The micro physics.
        cell: The cell problem (``rve``, ``laws``, ``V``).
        gradient: The macro gradient (Mandel for elasticity).
        fluctuation: The periodic fluctuation ``Function`` of that gradient.
    """
    import ufl
    from dolfinx import fem, io

    rve, V = cell.rve, fluctuation.function_space
    n_nodes = V.dofmap.index_map.size_local
    y = V.tabulate_dof_coordinates()[:n_nodes, : physics.dim] - rve.lower
    total = fem.Function(V, name="total")
    total.x.array[:] = physics.affine_nodal_values(y) @ gradient + fluctuation.x.array
    fluctuation.name = "fluctuation"
    G = fem.Constant(rve.mesh, np.asarray(gradient, dtype=np.float64))
    strain = physics.from_mandel(G) + physics.gradient(fluctuation)
    dx = ufl.Measure("dx", domain=rve.mesh, subdomain_data=rve.cell_tags)
    shape = flux_shape(physics)
    parts = [
        cell_average(rve.mesh, padded(physics, law(strain)), shape, dx(tag), "flux")
        for tag, law in cell.laws.items()
    ]
    micro_flux = parts[0]
    for part in parts[1:]:  # each part is zero outside its phase
        micro_flux.x.array[:] += part.x.array
    micro_flux.name = "stress" if isinstance(physics, Elasticity) else "flux"
    phase = fem.Function(fem.functionspace(rve.mesh, ("DG", 0)), name="phase")
    phase.x.array[rve.cell_tags.indices] = rve.cell_tags.values
    files = {}
    for function in (total, fluctuation, micro_flux, phase):
        name = f"{path.stem}_{function.name}.xdmf"
        with io.XDMFFile(MPI.COMM_SELF, str(path.parent / name), "w") as xdmf:
            xdmf.write_mesh(rve.mesh)
            xdmf.write_function(viewable(function))
        files[function.name] = name
    # ⟨flux⟩ from the cell averages: each is the exact integral over its cell / its volume
    dofs = micro_flux.function_space.dofmap.list[:, 0]
    per_cell = micro_flux.x.array.reshape(-1, int(np.prod(shape)))[dofs]
    mean = (averaging_volumes(cell) @ per_cell).reshape(shape)
    return Snapshot(files, (mean / cell.volume).tolist(), micro_flux)


def averaging_volumes(cell: Any) -> npt.NDArray[np.float64]:
    """Cell volumes ``(n_cells,)``, zero outside the averaging domain (a window's inner cell)."""
    volumes: npt.NDArray[np.float64] = cell_volumes(cell.rve.mesh) * cell.inner_cells
    return volumes


def mandel_tensors(mandel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """3×3 tensors ``(m, 9)`` (row-major) of 3D Mandel vectors ``(m, 6)``."""
    s = mandel / np.array([1.0, 1.0, 1.0, np.sqrt(2.0), np.sqrt(2.0), np.sqrt(2.0)])
    tensors: npt.NDArray[np.float64] = s[:, [0, 5, 4, 5, 1, 3, 4, 3, 2]]
    return tensors


def write_history_snapshot(
    path: Path,
    physics: Physics,
    cell: Any,
    gradient: npt.NDArray[np.float64],
    fluctuation_reduced: npt.NDArray[np.float64],
    internal_row: npt.NDArray[np.float64],
) -> Snapshot:
    """Write the micro fields of a converged history-cell state to ``<path stem>_<field>.xdmf``.

    As ``write_micro_snapshot`` (COMM_SELF; total displacement, fluctuation, phase), with the
    fields of ``cell.micro_fields`` as cell averages (DG0, the quadrature-weighted means over
    each cell): the stress (a 3×3 tensor, σ33 of a plane-strain cell included), the equivalent
    plastic strain, the dissipated and stored energy densities and the von Mises stress.
    ⟨σ⟩ over the cell is the macro stress of the point (with ⟨σ33⟩ in plane strain).

    Args:
        path: Folder and stem of the files.
        physics: The micro physics (``Elasticity``).
        cell: The ``HistoryCellProblem``.
        gradient: The macro strain of the step (Mandel).
        fluctuation_reduced: Its reduced fluctuation: a solve's converged one
            (``HistorySolution``) or a committed state's, derived from its row
            (``HistoryCellProblem.committed_fluctuation``).
        internal_row: Its updated internal variables (``HistorySolution.internal_row``).
    """
    from dolfinx import fem, io

    rve, V = cell.rve, cell.V
    fluctuation = fem.Function(V, name="fluctuation")
    fluctuation.x.array[:] = cell.P @ np.asarray(fluctuation_reduced, dtype=np.float64)
    n_nodes = V.dofmap.index_map.size_local
    y = V.tabulate_dof_coordinates()[:n_nodes, : physics.dim] - rve.lower
    total = fem.Function(V, name="total")
    total.x.array[:] = physics.affine_nodal_values(y) @ gradient + fluctuation.x.array
    fields = cell.micro_fields(gradient, fluctuation_reduced, internal_row)
    per_cell = mandel_tensors(cell.cell_values(fields.stress))
    stress = fem.Function(fem.functionspace(rve.mesh, ("DG", 0, (3, 3))), name="stress")
    stress.x.array.reshape(-1, 9)[stress.function_space.dofmap.list[:, 0]] = per_cell
    DG0 = fem.functionspace(rve.mesh, ("DG", 0))
    cells = DG0.dofmap.list[:, 0]
    scalars = []
    for name in ("plastic_strain", "dissipation", "stored_energy", "von_mises"):
        function = fem.Function(DG0, name=name)
        function.x.array[cells] = cell.cell_values(getattr(fields, name))
        scalars.append(function)
    phase = fem.Function(DG0, name="phase")
    phase.x.array[rve.cell_tags.indices] = rve.cell_tags.values
    files = {}
    for function in (total, fluctuation, stress, *scalars, phase):
        name = f"{path.stem}_{function.name}.xdmf"
        with io.XDMFFile(MPI.COMM_SELF, str(path.parent / name), "w") as xdmf:
            xdmf.write_mesh(rve.mesh)
            xdmf.write_function(viewable(function))
        files[function.name] = name
    mean = (averaging_volumes(cell) @ per_cell).reshape(3, 3) / cell.volume
    return Snapshot(files, mean.tolist(), stress)


def check_output_folder(comm: Any, folder: Path, overwrite: bool) -> None:
    """Refuse a non-empty output folder unless ``overwrite`` (decided on rank 0 for all)."""

    def prepare() -> None:
        if folder.exists() and not folder.is_dir():
            raise InputError(
                f"output {str(folder)!r} is a file, not a folder; choose another --output."
            )
        if folder.exists() and any(folder.iterdir()) and not overwrite:
            raise InputError(
                f"output folder {str(folder)!r} is not empty; pass --overwrite to write into it "
                "(files of the same name are replaced), or choose another --output."
            )
        folder.mkdir(parents=True, exist_ok=True)

    on_one_rank(comm, prepare)

"""DOLFINx meshes of one process (``MPI.COMM_SELF``): cells, tilings and image voxels."""

from typing import Any

import numpy as np
import numpy.typing as npt


def serial_mesh(cells: npt.NDArray[np.int64], element: Any, x: npt.NDArray[np.float64]) -> Any:
    """A DOLFINx mesh on ``MPI.COMM_SELF``, as ``dolfinx.mesh.create_mesh`` builds it.

    ``dolfinx.mesh.create_mesh`` hands its 2D array of cells to an overloaded C++ function
    whose first candidates take a list of 1D arrays (mixed topologies): nanobind converts
    the array row by row for each of them before it reaches the 2D one, four conversions
    per cell, more than half of the call (0.107 s of a 42k-triangle cell). The mixed-
    topology entry point, given one cell type, builds the same mesh (the same nodes, cells
    and original cell indices: ``tests/test_rve_library.py``) in 0.047 s.

    Args:
        cells: Node indices of each cell in DOLFINx's node order, ``(n_cells, nodes per cell)``.
        element: The coordinate element, a Basix UFL element of shape ``(gdim,)``.
        x: Node coordinates, ``(n_nodes, gdim)``.
    """
    from mpi4py import MPI

    import ufl
    from dolfinx import cpp
    from dolfinx.fem import coordinate_element
    from dolfinx.mesh import Mesh

    cmap = coordinate_element(element.basix_element)  # type: ignore[call-arg]  # singledispatch
    flat = np.ascontiguousarray(cells, dtype=np.int64).reshape(-1)
    points = np.ascontiguousarray(x, dtype=np.float64)
    mesh = cpp.mesh.create_mesh(MPI.COMM_SELF, [flat], [cmap._cpp_object], points, None, 2)
    return Mesh(mesh, ufl.Mesh(element))

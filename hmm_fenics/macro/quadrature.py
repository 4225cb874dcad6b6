"""Quadrature coupling: macro gradients at the owned quadrature points out, flux/tangent in.

The macro forms integrate quadrature functions (one value per quadrature point) that the
micro solver fills: the flux/stress (Mandel vector) and the tangent (Mandel matrix). Point
arrays are ordered cell by cell over the owned cells: shape ``(n_cells · n_qp, …)``.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

from hmm_fenics.physics import Physics


class QuadratureFields:
    """Flux and tangent quadrature functions of a macro mesh, and point evaluation.

    Args:
        mesh: The macro mesh.
        physics: Its physics (sets the number of components n).
        degree: Quadrature degree of the macro forms.
    """

    def __init__(self, mesh: Any, physics: Physics, degree: int) -> None:
        import basix
        import basix.ufl
        import ufl
        from dolfinx import fem

        self.mesh, self.physics, self.degree = mesh, physics, degree
        n = physics.n_components
        cell = mesh.basix_cell()
        points, _ = basix.make_quadrature(cell, degree)
        self.points_ref = np.asarray(points, dtype=np.float64)
        self.n_qp = len(self.points_ref)
        flux_element = basix.ufl.quadrature_element(cell, value_shape=(n,), degree=degree)
        tangent_element = basix.ufl.quadrature_element(cell, value_shape=(n, n), degree=degree)
        self.flux = fem.Function(fem.functionspace(mesh, flux_element), name="flux")
        self.tangent = fem.Function(fem.functionspace(mesh, tangent_element), name="tangent")
        self.dx = ufl.Measure(
            "dx",
            domain=mesh,
            metadata={"quadrature_degree": degree, "quadrature_scheme": "default"},
        )
        tdim = mesh.topology.dim
        self.cells = np.arange(mesh.topology.index_map(tdim).size_local, dtype=np.int32)
        # dof blocks of the owned cells' points, in the point order of the arrays below
        self._blocks = self.flux.function_space.dofmap.list[self.cells].ravel()
        x = ufl.SpatialCoordinate(mesh)
        self._coordinates = fem.Expression(x, self.points_ref)

    @property
    def n_points(self) -> int:
        """Owned quadrature points."""
        return len(self._blocks)

    def global_ids(self) -> npt.NDArray[np.int64]:
        """Global index of each owned point, ``(n_points,)``, the same on any number of ranks.

        original cell index (the input mesh's numbering) × points per cell + local point.
        """
        original = np.asarray(self.mesh.topology.original_cell_index, dtype=np.int64)
        cells = original[self.cells]
        return (cells[:, None] * self.n_qp + np.arange(self.n_qp)).ravel()

    def evaluate(self, expression: Any) -> npt.NDArray[np.float64]:
        """Values of a compiled ``fem.Expression`` at the owned points, ``(n_points, size)``."""
        values = expression.eval(self.mesh, self.cells)
        return np.asarray(values, dtype=np.float64).reshape(self.n_points, -1)

    def coordinates(self) -> npt.NDArray[np.float64]:
        """Physical coordinates of the owned points, shape ``(n_points, gdim)``."""
        return self.evaluate(self._coordinates)

    def values(self) -> npt.NDArray[np.float64]:
        """The stored flux at the owned points, ``(n_points, n)`` (a copy)."""
        n = self.physics.n_components
        return np.array(self.flux.x.array.reshape(-1, n)[self._blocks])

    def tangent_values(self) -> npt.NDArray[np.float64]:
        """The stored tangent at the owned points, ``(n_points, n, n)`` (a copy)."""
        n = self.physics.n_components
        return np.array(self.tangent.x.array.reshape(-1, n * n)[self._blocks]).reshape(-1, n, n)

    def weights(self) -> npt.NDArray[np.float64]:
        """Quadrature weight × |det J| of the owned points, ``(n_points,)``: Σ w f ≈ ∫ f."""
        import basix.ufl
        import ufl
        from dolfinx import fem

        element = basix.ufl.quadrature_element(self.mesh.basix_cell(), degree=self.degree)
        space = fem.functionspace(self.mesh, element)
        w = fem.assemble_vector(fem.form(ufl.TestFunction(space) * self.dx))
        blocks = space.dofmap.list[self.cells].ravel()
        return np.asarray(w.array[blocks], dtype=np.float64)

    def store(self, flux: npt.NDArray[np.float64], tangent: npt.NDArray[np.float64]) -> None:
        """Put the micro response into the quadrature functions.

        Args:
            flux: Shape ``(n_points, n)`` (Mandel for elasticity).
            tangent: Shape ``(n_points, n, n)``.
        """
        n = self.physics.n_components
        self.flux.x.array.reshape(-1, n)[self._blocks] = flux
        self.tangent.x.array.reshape(-1, n * n)[self._blocks] = tangent.reshape(-1, n * n)
        self.flux.x.scatter_forward()
        self.tangent.x.scatter_forward()

"""Small-strain linear elasticity: strain, Hooke's law and the Mandel notation.

Mandel vectors: 2D (e11, e22, √2 e12); 3D (e11, e22, e33, √2 e23, √2 e13, √2 e12).
The Mandel basis is orthonormal, so C[i, j] = E_i : C : E_j and tensor contractions are
plain dot products. 2D is plane strain unless ``plane = "stress"``.

UFL is imported by the methods that build forms, so that the command line can read a cell
file and start meshing it before UFL has loaded (``rve.mesh.mesh_ahead``).
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

_SQRT2 = float(np.sqrt(2.0))

# (i, j) index pairs of the Mandel components.
_PAIRS = {
    2: [(0, 0), (1, 1), (0, 1)],
    3: [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)],
}


@dataclass(frozen=True)
class Elasticity:
    """Small-strain elasticity with Mandel notation.

    Args:
        dim: Geometric dimension, 2 or 3.
        plane: 2D assumption, ``"strain"`` (default) or ``"stress"``; ignored in 3D.
    """

    dim: int
    plane: str = "strain"
    name: str = "elasticity"

    def __post_init__(self) -> None:
        if self.dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {self.dim}.")
        if self.plane not in ("strain", "stress"):
            raise ValueError(f"plane must be 'strain' or 'stress', got {self.plane!r}.")

    @property
    def n_components(self) -> int:
        """Length of a Mandel strain/stress vector: 3 in 2D, 6 in 3D."""
        return len(_PAIRS[self.dim])

    @property
    def value_shape(self) -> tuple[int, ...]:
        """Shape of the displacement field."""
        return (self.dim,)

    @property
    def notation(self) -> str:
        """Layout of strains and stresses in arrays."""
        if self.dim == 2:
            return "Mandel (11, 22, √2·12)"
        return "Mandel (11, 22, 33, √2·23, √2·13, √2·12)"

    def gradient(self, u: Any) -> Any:
        """UFL small strain ε(u) = sym ∇u."""
        import ufl

        return ufl.sym(ufl.grad(u))

    def from_mandel(self, g: Any) -> Any:
        """UFL symmetric tensor from a Mandel vector (indexable, length n_components)."""
        import ufl

        rows: list[list[Any]] = [[0] * self.dim for _ in range(self.dim)]
        for a, (i, j) in enumerate(_PAIRS[self.dim]):
            if i == j:
                rows[i][i] = g[a]
            else:
                rows[i][j] = rows[j][i] = g[a] / _SQRT2
        return ufl.as_matrix(rows)

    def to_mandel(self, s: Any) -> Any:
        """UFL Mandel vector of a symmetric tensor."""
        import ufl

        return ufl.as_vector([s[i, j] if i == j else _SQRT2 * s[i, j] for i, j in _PAIRS[self.dim]])

    def mandel_basis(self) -> npt.NDArray[np.float64]:
        """Orthonormal basis tensors E_a of the Mandel components, shape ``(n, dim, dim)``."""
        basis = np.zeros((self.n_components, self.dim, self.dim))
        for a, (i, j) in enumerate(_PAIRS[self.dim]):
            if i == j:
                basis[a, i, i] = 1.0
            else:
                basis[a, i, j] = basis[a, j, i] = 1.0 / _SQRT2
        return basis

    def affine_nodal_values(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Nodal values of the affine displacements u_a(x) = E_a x for each Mandel unit strain.

        Args:
            x: Node coordinates relative to the cell origin, shape ``(n_nodes, dim)``.

        Returns:
            Shape ``(n_nodes * dim, n_components)`` in DOLFINx's blocked dof layout (node-major,
            component-minor): column a interpolates u_a exactly.
        """
        values = np.einsum("akl,nl->nka", self.mandel_basis(), x[:, : self.dim])
        return np.asarray(values.reshape(-1, self.n_components), dtype=np.float64)

    def stress(self, lmbda: Any, mu: Any, eps: Any) -> Any:
        """Isotropic Hooke's law σ = λ tr(ε) I + 2 μ ε (λ already reduced for plane stress)."""
        import ufl

        return lmbda * ufl.tr(eps) * ufl.Identity(self.dim) + 2 * mu * eps

    def lame(self, E: float, nu: float) -> tuple[float, float]:
        """Lamé parameters (λ, μ) for this dimension and plane assumption."""
        mu = E / (2 * (1 + nu))
        lmbda = E * nu / ((1 + nu) * (1 - 2 * nu))
        if self.dim == 2 and self.plane == "stress":
            lmbda = 2 * lmbda * mu / (lmbda + 2 * mu)
        return lmbda, mu

    def isotropic_tensor(self, E: float, nu: float) -> npt.NDArray[np.float64]:
        """Mandel stiffness of an isotropic material, shape ``(n, n)``."""
        lmbda, mu = self.lame(E, nu)
        n = self.n_components
        C = np.zeros((n, n))
        C[: self.dim, : self.dim] = lmbda
        C += 2 * mu * np.eye(n)
        return C

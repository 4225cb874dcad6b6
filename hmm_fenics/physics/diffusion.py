"""Scalar diffusion (heat conduction, Darcy flow): gradient, flux and their Mandel-free layout.

For diffusion the "Mandel" vector of a gradient is the gradient itself, shape ``(dim,)``,
and a conductivity is a plain ``(dim, dim)`` matrix.

UFL is imported by the methods that build forms, so that the command line can read a cell
file and start meshing it before UFL has loaded (``rve.mesh.mesh_ahead``).
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Diffusion:
    """Steady scalar diffusion, flux q = k ∇u (sign convention: q is the conjugate of ∇u).

    Args:
        dim: Geometric dimension, 2 or 3.
    """

    dim: int
    name: str = "diffusion"

    def __post_init__(self) -> None:
        if self.dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {self.dim}.")

    @property
    def n_components(self) -> int:
        """Length of a gradient/flux vector."""
        return self.dim

    @property
    def value_shape(self) -> tuple[int, ...]:
        """Shape of the unknown field (scalar)."""
        return ()

    @property
    def notation(self) -> str:
        """Layout of gradients and fluxes in arrays."""
        return "vector (d1, d2[, d3])"

    def gradient(self, u: Any) -> Any:
        """UFL gradient of the field."""
        import ufl

        return ufl.grad(u)

    def from_mandel(self, g: Any) -> Any:
        """UFL gradient vector from its component vector (identity for diffusion)."""
        import ufl

        return ufl.as_vector([g[i] for i in range(self.dim)])

    def to_mandel(self, q: Any) -> Any:
        """UFL component vector of a gradient or flux (identity for diffusion)."""
        import ufl

        return ufl.as_vector([q[i] for i in range(self.dim)])

    def flux(self, k: Any, g: Any) -> Any:
        """Isotropic Fourier/Darcy law q = k g."""
        return k * g

    def affine_nodal_values(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Nodal values of the affine fields u_j(x) = x_j for each unit gradient e_j.

        Args:
            x: Node coordinates relative to the cell origin, shape ``(n_nodes, dim)``.

        Returns:
            Shape ``(n_nodes, n_components)``: column j interpolates u_j exactly.
        """
        return np.ascontiguousarray(x[:, : self.dim], dtype=np.float64)

    def isotropic_tensor(self, k: float) -> npt.NDArray[np.float64]:
        """Conductivity matrix k I, shape ``(dim, dim)``."""
        return k * np.eye(self.dim)

"""Constitutive updates at quadrature points, vectorized in NumPy: the laws with a history.

A point law maps (total strain, committed internal variables, time step) to (stress,
algorithmic tangent, new internal variables) for ``m`` points at once. Strains and stresses
are 3D Mandel vectors (ε11, ε22, ε33, √2 ε23, √2 ε13, √2 ε12), shape ``(m, 6)``; tangents
``(m, 6, 6)``. A 2D plane-strain cell embeds its in-plane strain with ``plane_strain_3d``
(ε33 = ε23 = ε13 = 0) and keeps the components ``IN_PLANE`` of the answer, so the 3D state
(σ33, the 3D plastic strain) is carried in full.

Internal variables are a float64 array ``(m, n_vars)`` per law, zero in the virgin state;
the last column of every law with a history is its accumulated dissipated energy density, so
that energy balances need no knowledge of the law.
"""

from typing import Protocol

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

IN_PLANE = np.array([0, 1, 5])
"""Indices of the 2D Mandel components (11, 22, √2·12) in the 3D Mandel vector."""

IDENTITY = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
"""The identity tensor in 3D Mandel notation."""

DEVIATOR = np.eye(6) - np.outer(IDENTITY, IDENTITY) / 3.0
"""The deviatoric projector in 3D Mandel notation."""


class PointLaw(Protocol):
    """What the history cell asks of a phase law (see the module docstring)."""

    n_vars: int
    """Internal variables per quadrature point (0 for a law without history)."""

    def update(self, strain: Array, state: Array, dt: float) -> tuple[Array, Array, Array]:
        """Stress ``(m, 6)``, tangent ``(m, 6, 6)`` and new state ``(m, n_vars)``.

        Args:
            strain: Total strain at the end of the step, ``(m, 6)``.
            state: Committed internal variables at the start of the step, ``(m, n_vars)``
                (never modified).
            dt: Time step (> 0); rate-independent laws ignore it.
        """
        ...

    def free_energy(self, strain: Array, state: Array) -> Array:
        """Stored (Helmholtz) energy density at a strain and its state, ``(m,)``."""
        ...

    def dissipation(self, state: Array) -> Array:
        """Dissipated energy density accumulated in ``state``, ``(m,)``."""
        ...

    def plastic_strain(self, state: Array) -> Array:
        """Equivalent plastic strain (0 for a law without plasticity), ``(m,)``."""
        ...


def plane_strain_3d(strain: Array) -> Array:
    """3D Mandel strains ``(m, 6)`` of 2D Mandel strains ``(m, 3)`` (ε33 = ε13 = ε23 = 0)."""
    out = np.zeros((len(strain), 6))
    out[:, IN_PLANE] = strain
    return out


def isotropic_stiffness(E: float, nu: float) -> Array:
    """3D Mandel stiffness of an isotropic material, ``(6, 6)``."""
    bulk, shear = E / (3.0 * (1.0 - 2.0 * nu)), E / (2.0 * (1.0 + nu))
    return bulk * np.outer(IDENTITY, IDENTITY) + 2.0 * shear * DEVIATOR


class Elastic:
    """Isotropic linear elasticity: no history (``n_vars`` = 0)."""

    n_vars = 0

    def __init__(self, E: float, nu: float) -> None:
        self.stiffness = isotropic_stiffness(E, nu)

    def update(self, strain: Array, state: Array, dt: float) -> tuple[Array, Array, Array]:
        """σ = C ε, tangent C; the (empty) state is returned unchanged."""
        stress = strain @ self.stiffness.T
        tangent = np.broadcast_to(self.stiffness, (len(strain), 6, 6))
        return stress, tangent, state

    def free_energy(self, strain: Array, state: Array) -> Array:
        """½ ε : C ε."""
        return 0.5 * np.einsum("mi,ij,mj->m", strain, self.stiffness, strain)

    def dissipation(self, state: Array) -> Array:
        """An elastic phase dissipates nothing."""
        return np.zeros(len(state))

    def plastic_strain(self, state: Array) -> Array:
        """An elastic phase does not yield."""
        return np.zeros(len(state))

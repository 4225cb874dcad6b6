"""Phase material laws: parameters, validation, and their UFL flux for a given physics."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.physics import Diffusion, Elasticity, Physics

Law = Callable[[Any], Any]
"""A UFL constitutive map: gradient (vector or strain tensor) → flux (vector or stress tensor)."""


@dataclass(frozen=True)
class Conductivity:
    """Isotropic conductivity k > 0 (or a callable of the UFL coordinate, for smooth media).

    Args:
        k: Conductivity, a positive number, or ``k(x) -> UFL expression`` of the spatial
            coordinate for a continuously varying phase (no validation possible then).
    """

    k: float | Callable[[Any], Any]

    def __post_init__(self) -> None:
        if not callable(self.k) and not (np.isfinite(self.k) and self.k > 0):
            raise InputError(f"conductivity k must be a positive number, got {self.k}.")

    def law(self, mesh: Any, physics: Physics) -> Law:
        """UFL flux q(g) = k g on ``mesh``."""
        import ufl
        from dolfinx import fem

        if not isinstance(physics, Diffusion):
            raise InputError("a Conductivity phase needs diffusion physics; give E and nu instead.")
        if callable(self.k):
            k = self.k(ufl.SpatialCoordinate(mesh))
        else:
            k = fem.Constant(mesh, float(self.k))
        return lambda g: physics.flux(k, g)

    def tensor(self, physics: Physics) -> npt.NDArray[np.float64]:
        """Conductivity matrix, shape ``(dim, dim)``."""
        if callable(self.k) or not isinstance(physics, Diffusion):
            raise InputError("a tensor is defined only for a constant conductivity in diffusion.")
        return physics.isotropic_tensor(float(self.k))


@dataclass(frozen=True)
class IsotropicElastic:
    """Isotropic linear elastic phase.

    Args:
        E: Young's modulus, > 0 (the user's units).
        nu: Poisson's ratio in (−1, 0.5).
    """

    E: float
    nu: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.E) and self.E > 0):
            raise InputError(f"Young's modulus E must be positive, got {self.E}.")
        if not (np.isfinite(self.nu) and -1.0 < self.nu < 0.5):
            raise InputError(
                f"Poisson's ratio nu must lie in (-1, 0.5), got {self.nu} "
                "(0.5 is incompressible, which this displacement formulation cannot represent)."
            )

    def law(self, mesh: Any, physics: Physics) -> Law:
        """UFL stress σ(ε) on ``mesh``."""
        from dolfinx import fem

        if not isinstance(physics, Elasticity):
            raise InputError("an IsotropicElastic phase needs elasticity physics; give k instead.")
        lmbda, mu = physics.lame(self.E, self.nu)
        lmbda_c, mu_c = fem.Constant(mesh, lmbda), fem.Constant(mesh, mu)
        return lambda eps: physics.stress(lmbda_c, mu_c, eps)

    def tensor(self, physics: Physics) -> npt.NDArray[np.float64]:
        """Mandel stiffness, shape ``(3, 3)`` in 2D, ``(6, 6)`` in 3D."""
        if not isinstance(physics, Elasticity):
            raise InputError("an IsotropicElastic phase needs elasticity physics.")
        return physics.isotropic_tensor(self.E, self.nu)


@dataclass(frozen=True)
class Void:
    """A hole: the phase is removed from the mesh (``RVESpec(void=True)``); no law, no tensor."""


Material = Conductivity | IsotropicElastic | Void


def material_from_dict(name: str, params: dict[str, Any], physics: Physics) -> Material:
    """Build the phase law named ``name`` from TOML-like parameters for ``physics``.

    Raises:
        InputError: unknown or missing keys, or values out of range; the message names the
            key path ``materials.<name>.<key>``.
    """
    if "void" in params:
        if params["void"] is not True or len(params) > 1:
            raise InputError(
                f"materials.{name}: a void phase is given by `void = true` alone, got {params}."
            )
        if name == "matrix":
            raise InputError(
                "materials.matrix: a void matrix leaves nothing to carry load; only the inclusion "
                "phase can be void (pores, holes)."
            )
        return Void()
    expected = {"k"} if isinstance(physics, Diffusion) else {"E", "nu"}
    unknown = set(params) - expected
    if unknown:
        raise InputError(
            f"materials.{name}: unknown key(s) {sorted(unknown)} for {physics.name}; "
            f"expected {sorted(expected)}."
        )
    missing = expected - set(params)
    if missing:
        raise InputError(f"materials.{name}: missing {sorted(missing)} for {physics.name}.")
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"materials.{name}.{key} must be a number, got {value!r}.")
    try:
        if isinstance(physics, Diffusion):
            return Conductivity(float(params["k"]))
        return IsotropicElastic(float(params["E"]), float(params["nu"]))
    except InputError as err:
        raise InputError(f"materials.{name}: {err}") from err

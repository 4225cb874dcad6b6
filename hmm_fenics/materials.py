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
class PowerLawConductivity:
    """Nonlinear conductivity k(|g|) = k (1 + |g|²/g0²)^((p − 2)/2), q = k(|g|) g.

    A regularized p-Laplacian: linear (k) for |g| ≪ g0, |g|^(p−1) growth beyond; p = 2 is
    linear. p > 2 conducts more at high gradients, 1 < p < 2 less.

    Args:
        k: Conductivity at small gradients, > 0.
        p: Exponent, > 1.
        g0: Reference gradient magnitude, > 0.
    """

    k: float
    p: float
    g0: float

    def __post_init__(self) -> None:
        if not (self.k > 0 and self.p > 1 and self.g0 > 0):
            raise InputError(
                f"power-law conductivity needs k > 0, p > 1, g0 > 0; got k={self.k}, p={self.p}, g0={self.g0}."
            )

    def law(self, mesh: Any, physics: Physics) -> Law:
        """UFL flux q(g) = k (1 + g·g/g0²)^((p−2)/2) g."""
        import ufl
        from dolfinx import fem

        if not isinstance(physics, Diffusion):
            raise InputError("a conductivity phase needs diffusion physics.")
        k, p, g0 = (fem.Constant(mesh, float(v)) for v in (self.k, self.p, self.g0))
        return lambda g: k * (1 + ufl.inner(g, g) / g0**2) ** ((p - 2) / 2) * g


@dataclass(frozen=True)
class PowerLawElastic:
    """Small-strain nonlinear elasticity (deformation theory, Ramberg–Osgood type).

    σ = K tr(ε) I + 2 μ(ε_eq) dev(ε), μ(ε_eq) = μ (1 + (ε_eq/ε0)²)^((n − 1)/2), with
    ε_eq = √(2/3 dev ε : dev ε), K = λ + 2μ/3 the bulk modulus and (λ, μ) the linear
    moduli: linear in volume, power law n in shear (n < 1 softens, n = 1 is linear).
    Hyperelastic, so the tangent is symmetric.

    The law is three-dimensional. In 2D it is evaluated in plane strain: on the 3D strain with
    ε33 = ε13 = ε23 = 0 (its 3D deviator, the 3D bulk modulus), returning the in-plane stress.
    Plane stress would need ε33 solved from σ33 = 0 at every point and is refused.

    Args:
        E: Young's modulus at small strain, > 0.
        nu: Poisson's ratio at small strain, in (−1, 0.5).
        eps0: Reference equivalent strain, > 0.
        n: Shear exponent, > 0.
    """

    E: float
    nu: float
    eps0: float
    n: float

    def __post_init__(self) -> None:
        IsotropicElastic(self.E, self.nu)  # same checks
        if not (self.eps0 > 0 and self.n > 0):
            raise InputError(
                f"power-law elasticity needs eps0 > 0 and n > 0; got eps0={self.eps0}, n={self.n}."
            )

    def check_physics(self, physics: Physics) -> None:
        """Refuse physics this law is not defined for (diffusion, 2D plane stress).

        Raises:
            InputError: ``physics`` is not elasticity, or is 2D plane stress.
        """
        if not isinstance(physics, Elasticity):
            raise InputError("an elastic phase needs elasticity physics.")
        if physics.dim == 2 and physics.plane == "stress":
            raise InputError(
                "power-law elasticity (eps0, n) is a 3D law: in 2D it is supported in plane "
                "strain only (plane stress would need ε33 solved from σ33 = 0 at every point); "
                'set physics.plane = "strain" or use a 3D cell.'
            )

    def law(self, mesh: Any, physics: Physics) -> Law:
        """UFL stress σ(ε); in 2D the in-plane stress of the 3D law at ε33 = 0."""
        import ufl
        from dolfinx import fem

        self.check_physics(physics)
        assert isinstance(physics, Elasticity)  # checked above
        lmbda, mu = physics.lame(self.E, self.nu)  # 3D moduli (3D or plane strain)
        dim = physics.dim
        bulk = fem.Constant(mesh, lmbda + 2 * mu / 3)
        mu_c, eps0, n = (fem.Constant(mesh, float(v)) for v in (mu, self.eps0, self.n))

        def stress(eps: Any) -> Any:
            mean = ufl.tr(eps) / 3
            dev = eps - mean * ufl.Identity(dim)  # the in-plane block of the 3D deviator
            # 2D: the 3D deviator also has dev33 = −tr(ε)/3 (ε33 = 0).
            dev_dev = ufl.inner(dev, dev) + (3 - dim) * mean**2
            secant = mu_c * (1 + 2.0 / 3.0 * dev_dev / eps0**2) ** ((n - 1) / 2)
            return bulk * ufl.tr(eps) * ufl.Identity(dim) + 2 * secant * dev

        return stress


@dataclass(frozen=True)
class Void:
    """A hole: the phase is removed from the mesh (``RVESpec(void=True)``); no law, no tensor."""

    def law(self, mesh: Any, physics: Physics) -> Law:
        """A void has no law: it must not be meshed."""
        raise InputError("a void phase has no constitutive law; build the RVE with void=True.")


Material = Conductivity | IsotropicElastic | PowerLawConductivity | PowerLawElastic | Void
NONLINEAR = (PowerLawConductivity, PowerLawElastic)


RANGES = {  # TOML key → open interval and how to say it
    "k": (0.0, np.inf, "a conductivity > 0"),
    "E": (0.0, np.inf, "a Young's modulus > 0"),
    "nu": (-1.0, 0.5, "a Poisson's ratio in (-1, 0.5); 0.5 (incompressible) is not supported"),
    "p": (1.0, np.inf, "a power-law exponent > 1"),
    "g0": (0.0, np.inf, "a reference gradient > 0"),
    "eps0": (0.0, np.inf, "a reference strain > 0"),
    "n": (0.0, np.inf, "a shear exponent > 0"),
}


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
    linear = {"k"} if isinstance(physics, Diffusion) else {"E", "nu"}
    power_law = {"p", "g0"} if isinstance(physics, Diffusion) else {"eps0", "n"}
    unknown = set(params) - linear - power_law
    if unknown:
        raise InputError(
            f"materials.{name}: unknown key(s) {sorted(unknown)} for {physics.name}; expected "
            f"{sorted(linear)}, plus {sorted(power_law)} for a power law."
        )
    missing = linear - set(params)
    if missing:
        raise InputError(f"materials.{name}: missing {sorted(missing)} for {physics.name}.")
    nonlinear = power_law & set(params)
    if nonlinear and nonlinear != power_law:
        raise InputError(
            f"materials.{name}: a power law needs all of {sorted(power_law)}, got only "
            f"{sorted(nonlinear)}."
        )
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"materials.{name}.{key} must be a number, got {value!r}.")
    v = {key: float(value) for key, value in params.items()}
    for key, value in v.items():
        low, high, expected = RANGES[key]
        if not low < value < high:
            raise InputError(
                f"materials.{name}.{key} = {value} is out of range: expected {expected}."
            )
    try:
        if isinstance(physics, Diffusion):
            if nonlinear:
                return PowerLawConductivity(v["k"], v["p"], v["g0"])
            return Conductivity(v["k"])
        if nonlinear:
            power_law_elastic = PowerLawElastic(v["E"], v["nu"], v["eps0"], v["n"])
            power_law_elastic.check_physics(physics)
            return power_law_elastic
        return IsotropicElastic(v["E"], v["nu"])
    except InputError as err:
        raise InputError(f"materials.{name}: {err}") from err

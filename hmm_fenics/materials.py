"""Phase material laws: parameters, validation, their UFL flux and their NumPy point laws."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

import hmm_fenics.point_laws as point_laws
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

    def point_law(self) -> point_laws.Elastic:
        """The NumPy law at quadrature points (3D Mandel; a phase without history)."""
        return point_laws.Elastic(self.E, self.nu)


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


def check_history_physics(physics: Physics, what: str) -> None:
    """Refuse physics a history law is not defined for (diffusion, 2D plane stress).

    Args:
        physics: The cell's physics.
        what: The law, for the message (``"J2 plasticity"``).

    Raises:
        InputError: ``physics`` is not elasticity, or is 2D plane stress.
    """
    if not isinstance(physics, Elasticity):
        raise InputError(f"{what} is a solid law: it needs elasticity physics, not {physics.name}.")
    if physics.dim == 2 and physics.plane == "stress":
        raise InputError(
            f"{what} is a 3D law: in 2D it is supported in plane strain only (plane stress "
            "would need ε33 solved from σ33 = 0 at every point and every step); "
            'set physics.plane = "strain" or use a 3D cell.'
        )


def _instantaneous_tensor(
    physics: Physics, E: float, nu: float, what: str
) -> npt.NDArray[np.float64]:
    check_history_physics(physics, what)
    stiffness = point_laws.isotropic_stiffness(E, nu)
    if physics.dim == 2:  # plane strain: the in-plane block of the 3D tensor
        block: npt.NDArray[np.float64] = stiffness[np.ix_(point_laws.IN_PLANE, point_laws.IN_PLANE)]
        return block
    return stiffness


def _no_ufl_law(what: str) -> NoReturn:
    raise InputError(
        f"{what} has internal variables: it is evaluated at quadrature points by the history "
        "cell (a micro model that keeps a state per point and follows a load path), not by a "
        'path-independent cell problem; use law = "elastic" for a linear homogenization.'
    )


@dataclass(frozen=True)
class J2Plastic:
    """Von Mises elastoplasticity, linear isotropic and kinematic (Prager) hardening.

    Small strain, rate independent; H_iso = H_kin = 0 is perfect plasticity. The law is
    three-dimensional: in 2D it is evaluated in plane strain with the full 3D state (ε33 = 0,
    σ33 and the 3D plastic strain tracked); plane stress is refused. See
    ``point_laws.J2Plasticity`` for the equations and the state layout.

    Args:
        E: Young's modulus, > 0.
        nu: Poisson's ratio, in (−1, 0.5).
        sigma_y: Initial (uniaxial) yield stress, > 0.
        H_iso: Linear isotropic hardening modulus, ≥ 0.
        H_kin: Linear kinematic hardening modulus, ≥ 0 (backstress α̇ = (2/3) H_kin ε̇ᵖ).
    """

    E: float
    nu: float
    sigma_y: float
    H_iso: float = 0.0
    H_kin: float = 0.0

    def __post_init__(self) -> None:
        IsotropicElastic(self.E, self.nu)  # same checks
        if not (np.isfinite(self.sigma_y) and self.sigma_y > 0):
            raise InputError(f"the yield stress sigma_y must be positive, got {self.sigma_y}.")
        for key in ("H_iso", "H_kin"):
            value = getattr(self, key)
            if not (np.isfinite(value) and value >= 0):
                raise InputError(
                    f"the hardening modulus {key} must be >= 0 (softening is not supported), "
                    f"got {value}."
                )

    def point_law(self) -> point_laws.J2Plasticity:
        """The NumPy law at quadrature points (3D Mandel, 14 internal variables)."""
        return point_laws.J2Plasticity(self.E, self.nu, self.sigma_y, self.H_iso, self.H_kin)

    def tensor(self, physics: Physics) -> npt.NDArray[np.float64]:
        """Elastic Mandel stiffness (2D plane strain: in-plane block of the 3D tensor)."""
        return _instantaneous_tensor(physics, self.E, self.nu, "J2 plasticity")

    def check_physics(self, physics: Physics) -> None:
        """Refuse diffusion and 2D plane stress (``InputError``)."""
        check_history_physics(physics, "J2 plasticity")

    def law(self, mesh: Any, physics: Physics) -> Law:
        """A history law has no UFL law (``InputError``)."""
        return _no_ufl_law("J2 plasticity")


MAX_PRONY_TERMS = 10


@dataclass(frozen=True)
class Maxwell:
    """Generalized Maxwell (Prony series) linear viscoelasticity, isotropic.

    Relaxation modulus E(t) = E + Σ E_i exp(−t/τ_i), the same Poisson's ratio in every
    branch. The law is three-dimensional: in 2D it is evaluated in plane strain (ε33 = 0,
    σ33 tracked); plane stress is refused. See ``point_laws.Maxwell`` for the exact step
    integration and the state layout.

    Args:
        E: Long-term (relaxed) Young's modulus, > 0.
        nu: Poisson's ratio, in (−1, 0.5).
        prony: 1 to 10 branches ``((E_1, tau_1), ...)``, moduli > 0, relaxation times > 0
            (the time unit of the load path).
    """

    E: float
    nu: float
    prony: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        IsotropicElastic(self.E, self.nu)  # same checks
        if not 1 <= len(self.prony) <= MAX_PRONY_TERMS:
            raise InputError(
                f"a Prony series needs 1 to {MAX_PRONY_TERMS} terms (E_i, tau_i), "
                f"got {len(self.prony)}."
            )
        for i, (modulus, time) in enumerate(self.prony):
            if not (np.isfinite(modulus) and modulus > 0 and np.isfinite(time) and time > 0):
                raise InputError(
                    f"Prony term {i} must have a modulus E_i > 0 and a relaxation time "
                    f"tau_i > 0, got ({modulus}, {time})."
                )

    def point_law(self) -> point_laws.Maxwell:
        """The NumPy law at quadrature points (3D Mandel, 7 + 6 × branches variables)."""
        return point_laws.Maxwell(self.E, self.nu, self.prony)

    def tensor(self, physics: Physics) -> npt.NDArray[np.float64]:
        """Instantaneous (glassy) Mandel stiffness, modulus E + Σ E_i (2D: plane strain)."""
        glassy = self.E + sum(modulus for modulus, _ in self.prony)
        return _instantaneous_tensor(physics, glassy, self.nu, "Maxwell viscoelasticity")

    def check_physics(self, physics: Physics) -> None:
        """Refuse diffusion and 2D plane stress (``InputError``)."""
        check_history_physics(physics, "Maxwell viscoelasticity")

    def law(self, mesh: Any, physics: Physics) -> Law:
        """A history law has no UFL law (``InputError``)."""
        return _no_ufl_law("Maxwell viscoelasticity")


@dataclass(frozen=True)
class Void:
    """A hole: the phase is removed from the mesh (``RVESpec(void=True)``); no law, no tensor."""

    def law(self, mesh: Any, physics: Physics) -> Law:
        """A void has no law: it must not be meshed."""
        raise InputError("a void phase has no constitutive law; build the RVE with void=True.")


Material = (
    Conductivity
    | IsotropicElastic
    | PowerLawConductivity
    | PowerLawElastic
    | J2Plastic
    | Maxwell
    | Void
)
NONLINEAR = (PowerLawConductivity, PowerLawElastic)
HISTORY = (J2Plastic, Maxwell)
"""Laws with internal variables: solved by the history cell, states committed per step."""


RANGES = {  # TOML key → open interval and how to say it
    "k": (0.0, np.inf, "a conductivity > 0"),
    "E": (0.0, np.inf, "a Young's modulus > 0"),
    "nu": (-1.0, 0.5, "a Poisson's ratio in (-1, 0.5); 0.5 (incompressible) is not supported"),
    "p": (1.0, np.inf, "a power-law exponent > 1"),
    "g0": (0.0, np.inf, "a reference gradient > 0"),
    "eps0": (0.0, np.inf, "a reference strain > 0"),
    "n": (0.0, np.inf, "a shear exponent > 0"),
    "sigma_y": (0.0, np.inf, "a yield stress > 0"),
}
NON_NEGATIVE = {  # TOML key → how to say it; 0 allowed
    "H_iso": "a hardening modulus >= 0 (0: no isotropic hardening; softening is not supported)",
    "H_kin": "a hardening modulus >= 0 (0: no kinematic hardening; softening is not supported)",
}
LAWS = ("elastic", "j2", "maxwell")
"""Values of ``materials.<phase>.law`` (elasticity only; default: elastic or power law)."""
HISTORY_KEYS = {  # law → (required keys, optional keys)
    "j2": ({"E", "nu", "sigma_y"}, {"H_iso", "H_kin"}),
    "maxwell": ({"E", "nu", "prony"}, set()),
}
HISTORY_NAMES = {"j2": "J2 plasticity", "maxwell": "Maxwell viscoelasticity"}


def material_from_dict(name: str, params: dict[str, Any], physics: Physics) -> Material:
    """Build the phase law named ``name`` from TOML-like parameters for ``physics``.

    Elasticity phases may name their law: ``law = "elastic"`` (the default: E, nu, plus
    eps0, n for a power law), ``"j2"`` (E, nu, sigma_y, optional H_iso, H_kin) or
    ``"maxwell"`` (E, nu, prony = [[E_1, tau_1], ...], 1 to 10 terms).

    Raises:
        InputError: unknown or missing keys, or values out of range, a history law in
            diffusion or 2D plane stress; the message names the key path
            ``materials.<name>.<key>``.
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
    if "law" in params:
        law = params["law"]
        if not isinstance(law, str) or law not in LAWS:
            raise InputError(f"materials.{name}.law must be one of {list(LAWS)}, got {law!r}.")
        if not isinstance(physics, Elasticity):
            raise InputError(
                f"materials.{name}.law = {law!r} applies to elasticity; a {physics.name} phase "
                "gives k (and p, g0 for a power law) without a law key."
            )
        params = {key: value for key, value in params.items() if key != "law"}
        if law in HISTORY_KEYS:
            return _history_material(name, law, params, physics)
    linear = {"k"} if isinstance(physics, Diffusion) else {"E", "nu"}
    power_law = {"p", "g0"} if isinstance(physics, Diffusion) else {"eps0", "n"}
    unknown = set(params) - linear - power_law
    if unknown:
        hint = "" if isinstance(physics, Diffusion) else ', or law = "j2" | "maxwell"'
        raise InputError(
            f"materials.{name}: unknown key(s) {sorted(unknown)} for {physics.name}; expected "
            f"{sorted(linear)}, plus {sorted(power_law)} for a power law{hint}."
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
    v = _numbers(name, params)
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


def _numbers(name: str, params: dict[str, Any]) -> dict[str, float]:
    """The scalar parameters as floats, each checked against its range (key named)."""
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"materials.{name}.{key} must be a number, got {value!r}.")
    v = {key: float(value) for key, value in params.items()}
    for key, value in v.items():
        if key in NON_NEGATIVE:
            if not 0.0 <= value < np.inf:
                raise InputError(
                    f"materials.{name}.{key} = {value} is out of range: expected "
                    f"{NON_NEGATIVE[key]}."
                )
            continue
        low, high, expected = RANGES[key]
        if not low < value < high:
            raise InputError(
                f"materials.{name}.{key} = {value} is out of range: expected {expected}."
            )
    return v


def _history_material(
    name: str, law: str, params: dict[str, Any], physics: Physics
) -> J2Plastic | Maxwell:
    """A ``law = "j2" | "maxwell"`` phase from its keys (``law`` removed)."""
    try:
        check_history_physics(physics, HISTORY_NAMES[law])
    except InputError as err:
        raise InputError(f"materials.{name}.law = {law!r}: {err}") from err
    required, optional = HISTORY_KEYS[law]
    unknown = set(params) - required - optional
    if unknown:
        raise InputError(
            f"materials.{name}: unknown key(s) {sorted(unknown)} for law = {law!r}; expected "
            f"{sorted(required)}" + (f", optionally {sorted(optional)}." if optional else ".")
        )
    missing = required - set(params)
    if missing:
        raise InputError(f"materials.{name}: missing {sorted(missing)} for law = {law!r}.")
    try:
        if law == "j2":
            v = _numbers(name, params)
            return J2Plastic(
                v["E"], v["nu"], v["sigma_y"], v.get("H_iso", 0.0), v.get("H_kin", 0.0)
            )
        v = _numbers(name, {key: params[key] for key in ("E", "nu")})
        return Maxwell(v["E"], v["nu"], _prony(name, params["prony"]))
    except InputError as err:
        if str(err).startswith(f"materials.{name}"):
            raise
        raise InputError(f"materials.{name}: {err}") from err


def _prony(name: str, value: Any) -> tuple[tuple[float, float], ...]:
    """``materials.<name>.prony = [[E_1, tau_1], ...]`` checked term by term."""
    where = f"materials.{name}.prony"
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= MAX_PRONY_TERMS:
        raise InputError(
            f"{where} must be a list of 1 to {MAX_PRONY_TERMS} pairs [E_i, tau_i] (branch "
            f"modulus, relaxation time), got {value!r}."
        )
    terms = []
    for i, term in enumerate(value):
        if not (
            isinstance(term, list | tuple)
            and len(term) == 2
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in term)
        ):
            raise InputError(f"{where}[{i}] must be a pair of numbers [E_i, tau_i], got {term!r}.")
        modulus, time = float(term[0]), float(term[1])
        if not (np.isfinite(modulus) and modulus > 0):
            raise InputError(
                f"{where}[{i}][0] = {modulus} is out of range: expected a branch modulus E_i > 0."
            )
        if not (np.isfinite(time) and time > 0):
            raise InputError(
                f"{where}[{i}][1] = {time} is out of range: expected a relaxation time tau_i > 0."
            )
        terms.append((modulus, time))
    return tuple(terms)

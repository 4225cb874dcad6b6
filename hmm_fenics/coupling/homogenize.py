"""Homogenization of one RVE: mesh, cell problem, effective tensor, checks and timings."""

import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.coupling.restriction import check_averages
from hmm_fenics.materials import Material
from hmm_fenics.micro.cell_problem import CellProblem, cell_problem
from hmm_fenics.physics import Physics
from hmm_fenics.rve.mesh import RVEMesh, build_rve
from hmm_fenics.rve.spec import RVESpec


class HomogenizationResult(NamedTuple):
    """Effective properties of one RVE.

    Attributes:
        tensor: Effective tensor, shape ``(n, n)``: Mandel stiffness for elasticity,
            conductivity matrix for diffusion (energy form, symmetric by construction).
        notation: Layout of ``tensor``.
        physics: ``"diffusion"`` or ``"elasticity"``.
        dim: 2 or 3.
        degree: Lagrange degree of the micro field.
        dofs: Dofs of the micro space; ``unknowns`` after periodicity and pinning.
        unknowns: Reduced system size.
        fraction: Inclusion volume fraction achieved by the mesh.
        hill_mandel_residual: Worst |⟨σ:ε⟩ − ⟨σ⟩:G| / |⟨σ:ε⟩| over the unit gradients. An
            identity of the Galerkin system for any periodic map: round-off only.
        gradient_error: Worst ‖⟨ε⟩ − G‖ / ‖G‖, ⟨ε⟩ over the whole box (with the pore-boundary
            term in a porous cell): nonzero if the fluctuations are not periodic.
        periodicity_error: Worst |w(y) − w(y − L_d e_d)| / max |w| over the dofs on the max
            faces, from the DOLFINx function: catches a wrong pairing of the faces.
        symmetry_error: ‖F − Fᵀ‖ / ‖F‖ (Frobenius) of the flux-averaged tensor F. F is
            symmetric for any periodic map once the solves are exact (Fᵢⱼ = ⟨C⟩ᵢⱼ −
            bᵢᵀ K_r⁻¹ bⱼ/|Y|), so this measures the solve error only.
        timings: Seconds per stage (``mesh``, ``compile``, ``assemble``, ``ptap``, ``factor``,
            ``solve``, ``check``, ``total``).
        bc: The micro boundary condition: ``periodic`` gives the effective tensor, the others
            apparent ones. For them ``periodicity_error`` is NaN; for ``oversampling`` the
            Hill–Mandel residual is the algebraic one of the inner cell (not zero: it is
            reported, not an identity) and ``gradient_error`` is NaN.
        oversampling: The window's periods per axis (``oversampling`` only).
    """

    tensor: npt.NDArray[np.float64]
    notation: str
    physics: str
    dim: int
    degree: int
    dofs: int
    unknowns: int
    fraction: float
    hill_mandel_residual: float
    gradient_error: float
    periodicity_error: float
    symmetry_error: float
    timings: dict[str, float]
    bc: str = "periodic"
    oversampling: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the tensor as a list of lists)."""
        data = self._asdict()
        data["tensor"] = self.tensor.tolist()
        return data


def homogenize(
    rve: RVESpec | RVEMesh,
    physics: Physics,
    materials: Mapping[str, Material],
    degree: int = 1,
    petsc_options: Mapping[str, Any] | None = None,
    check: bool = True,
    bc: str = "periodic",
    oversampling: float | None = None,
) -> HomogenizationResult:
    """Effective (periodic) or apparent tensor of an RVE, with the Hill–Mandel check.

    Args:
        rve: An RVE spec (meshed here) or an already built RVE mesh.
        physics: ``Diffusion(dim)`` or ``Elasticity(dim, plane)``.
        materials: Phase name → material for every phase of the RVE.
        degree: Lagrange degree of the micro field.
        petsc_options: ``hmm_micro_`` solver options over the defaults.
        check: Integrate the micro fields to report Hill–Mandel, ⟨ε⟩ = G and the periodicity
            of w (one assembly and one point evaluation per unit gradient); if False, those
            entries are NaN.
        bc: The micro boundary condition (``periodic``, ``dirichlet``, ``neumann``,
            ``oversampling``; ``micro.boundary``).
        oversampling: Periods per axis of the oversampling window (odd; default 3).

    Returns:
        ``HomogenizationResult``.
    """
    start = time.perf_counter()
    mesh = build_rve(rve) if isinstance(rve, RVESpec) else rve
    meshed = time.perf_counter()
    cell = cell_problem(physics, mesh, materials, degree, petsc_options, bc, oversampling)
    return summarize(cell, check, {"mesh": meshed - start}, start)


def summarize(
    cell: CellProblem,
    check: bool = True,
    timings: dict[str, float] | None = None,
    start: float | None = None,
) -> HomogenizationResult:
    """The ``HomogenizationResult`` of a factored cell (``check``: see :func:`homogenize`).

    ``timings`` are put first; ``start`` (a ``perf_counter`` value) sets the total.
    """
    physics, mesh, degree = cell.physics, cell.rve, cell.degree
    solved = time.perf_counter()
    start = solved - sum(cell.timings.values()) if start is None else start
    hill_mandel = gradient_error = periodicity = float("nan")
    if check and cell.window is not None:  # the integrated checks average over the window
        hill_mandel = cell.hill_mandel_residual
    elif check:
        checks = check_averages(cell)
        hill_mandel, gradient_error = checks.hill_mandel_residual, checks.gradient_error
        if cell.bc == "periodic":
            periodicity = checks.periodicity_error
    end = time.perf_counter()
    C, F = cell.effective_tensor, cell.flux_tensor
    timings = {**(timings or {}), **cell.timings, "check": end - solved, "total": end - start}
    return HomogenizationResult(
        tensor=C,
        notation=physics.notation,
        physics=physics.name,
        dim=physics.dim,
        degree=degree,
        dofs=cell.n_dofs,
        unknowns=cell.n_unknowns,
        fraction=mesh.fraction,
        hill_mandel_residual=hill_mandel,
        gradient_error=gradient_error,
        periodicity_error=periodicity,
        symmetry_error=float(np.linalg.norm(F - F.T) / np.linalg.norm(F)),
        timings=timings,
        bc=cell.bc,
        oversampling=None if cell.window is None else float(cell.window.ratio),
    )

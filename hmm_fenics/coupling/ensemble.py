"""Ensembles of random cells: apparent tensors per realization, their statistics, RVE size.

For a stationary and ergodic random medium, one cell of size δ is a sample of the apparent
tensor; its scatter over realizations (seeds) measures the statistical error, which for
periodized random cells decays like (ε/δ)^d in variance (ε the inclusion size, d the
dimension). ``ensemble`` samples one cell size under one micro boundary condition,
``ensembles`` under several (every realization meshed once and solved with each BC, so the
BCs see the same packings), ``size_study`` sweeps δ/ε at fixed fraction.
"""

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from mpi4py import MPI

import numpy as np
import numpy.typing as npt

from hmm_fenics.coupling.homogenize import homogenize
from hmm_fenics.errors import InputError
from hmm_fenics.materials import Material
from hmm_fenics.micro.boundary import check_bc
from hmm_fenics.parallel.collective import agree
from hmm_fenics.physics import Physics
from hmm_fenics.rve.mesh import build_rve
from hmm_fenics.rve.spec import RVESpec

MAX_REALIZATIONS = 1000
"""Ensembles are refused above this many realizations (each one a meshed and solved cell)."""

log = logging.getLogger(__name__)


class EnsembleResult(NamedTuple):
    """Apparent tensors of N realizations and their statistics.

    Attributes:
        seeds: Seed of each realization, shape ``(N,)``.
        tensors: Shape ``(N, n, n)`` (Mandel for elasticity).
        fractions: Achieved inclusion fractions, shape ``(N,)``.
        mean: Shape ``(n, n)``.
        std: Sample standard deviation (ddof = 1), shape ``(n, n)``.
        ci95: Half-width of the 95% confidence interval of the mean (Student t), ``(n, n)``.
        bc: The micro boundary condition of the apparent tensors.
    """

    seeds: npt.NDArray[np.int64]
    tensors: npt.NDArray[np.float64]
    fractions: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    std: npt.NDArray[np.float64]
    ci95: npt.NDArray[np.float64]
    bc: str = "periodic"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {k: np.asarray(v).tolist() for k, v in self._asdict().items()}


def ensemble(
    spec: RVESpec,
    physics: Physics,
    materials: Mapping[str, Material],
    realizations: int,
    degree: int = 1,
    petsc_options: Mapping[str, Any] | None = None,
    comm: Any = MPI.COMM_SELF,
    bc: str = "periodic",
    oversampling: float | None = None,
) -> EnsembleResult:
    """Homogenize ``realizations`` random cells with seeds ``spec.seed, spec.seed + 1, …``.

    Args:
        spec: A ``random`` RVE spec (other kinds have one realization only).
        physics: ``Diffusion`` or ``Elasticity``.
        materials: Phase → material.
        realizations: N, from 2 to ``MAX_REALIZATIONS``.
        degree: Lagrange degree of the micro field.
        petsc_options: ``hmm_micro_`` solver options.
        comm: Realizations are shared round-robin over its ranks (each solves on
            ``COMM_SELF``) and gathered on all; the default solves all of them here.
        bc: The micro boundary condition (``periodic`` gives effective tensors of the
            periodized cells, the others apparent ones; ``micro.bc``).
        oversampling: Periods per axis of the window (``bc = "oversampling"`` only).
    """
    return ensembles(
        spec, physics, materials, realizations, (bc,), degree, petsc_options, comm, oversampling
    )[bc]


def ensembles(
    spec: RVESpec,
    physics: Physics,
    materials: Mapping[str, Material],
    realizations: int,
    bcs: Sequence[str] = ("periodic", "dirichlet", "neumann"),
    degree: int = 1,
    petsc_options: Mapping[str, Any] | None = None,
    comm: Any = MPI.COMM_SELF,
    oversampling: float | None = None,
) -> dict[str, EnsembleResult]:
    """The ensemble of :func:`ensemble` under each micro BC of ``bcs``, on the same packings.

    Each realization is meshed once and its cell problem solved with every BC, so the
    differences between the BCs are those of the boundary conditions, not of the draws.

    Returns:
        BC → its ``EnsembleResult`` (the same seeds and fractions in each).

    Raises:
        InputError: a spec that is not ``random``, N out of range, an unknown BC (naming
            ``micro.bc``) or a bad ``oversampling``.
    """
    if spec.kind != "random":
        raise InputError(f'realizations need rve.kind = "random"; {spec.kind!r} is deterministic.')
    if not 2 <= realizations <= MAX_REALIZATIONS:
        raise InputError(
            f"--realizations must be from 2 (for statistics) to {MAX_REALIZATIONS}, got "
            f"{realizations}."
        )
    if not bcs:
        raise InputError("micro.bc: give at least one boundary condition.")
    for bc in bcs:
        check_bc(bc, oversampling if bc == "oversampling" else None)
    seeds = np.arange(spec.seed, spec.seed + realizations, dtype=np.int64)

    def solve_mine() -> dict[int, tuple[dict[str, Any], float]]:
        mine = {}
        share = range(comm.rank, realizations, comm.size)
        start = time.perf_counter()
        for done, k in enumerate(share, start=1):
            rve = build_rve(replace(spec, seed=int(seeds[k])))
            tensors = {
                bc: homogenize(
                    rve,
                    physics,
                    materials,
                    degree,
                    petsc_options,
                    check=False,
                    bc=bc,
                    oversampling=oversampling if bc == "oversampling" else None,
                ).tensor
                for bc in bcs
            }
            mine[k] = (tensors, rve.fraction)
            if comm.rank == 0:  # progress of rank 0's share (the others work alongside)
                log.info(
                    "ensemble: realization %d of %d (seed %d, %s)%s, %.1f s so far",
                    k + 1, realizations, seeds[k], "/".join(bcs),
                    "" if comm.size == 1 else f", rank 0's {done} of {len(share)}",
                    time.perf_counter() - start,
                )  # fmt: skip
        return mine

    mine = agree(comm, solve_mine)  # one failed realization is raised on every rank
    gathered: dict[int, tuple[dict[str, Any], float]] = {}
    for part in comm.allgather(mine):
        gathered.update(part)
    fractions = np.array([gathered[k][1] for k in range(realizations)])
    return {
        bc: _statistics(
            seeds, np.array([gathered[k][0][bc] for k in range(realizations)]), fractions, bc
        )
        for bc in bcs
    }


def _statistics(
    seeds: npt.NDArray[np.int64],
    tensors: npt.NDArray[np.float64],
    fractions: npt.NDArray[np.float64],
    bc: str = "periodic",
) -> EnsembleResult:
    from scipy.stats import t as student

    n = len(tensors)
    mean = tensors.mean(axis=0)
    std = tensors.std(axis=0, ddof=1)
    ci95 = float(student.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return EnsembleResult(seeds, tensors, fractions, mean, std, ci95, bc)


class SizeStudy(NamedTuple):
    """How the scatter of the apparent tensor decays with the cell size.

    Attributes:
        ratios: δ/ε, cell length over inclusion diameter, shape ``(m,)``.
        counts: Inclusions per cell at each size.
        means: Mean of the scalar (trace / n) of the apparent tensor, shape ``(m,)``.
        variances: Its sample variance over the realizations, shape ``(m,)``.
        exponent: Fitted p in variance ∝ (ε/δ)^p (theory for periodized cells: p = d).
        ensembles: The ensembles behind each point.
    """

    ratios: npt.NDArray[np.float64]
    counts: npt.NDArray[np.int64]
    means: npt.NDArray[np.float64]
    variances: npt.NDArray[np.float64]
    exponent: float
    ensembles: list[EnsembleResult]


def size_study(
    spec: RVESpec,
    physics: Physics,
    materials: Mapping[str, Material],
    scales: Sequence[float],
    realizations: int,
    **kwargs: Any,
) -> SizeStudy:
    """Sweep the cell size at fixed fraction and inclusion size; fit the variance decay.

    Args:
        spec: A ``random`` spec: its cell, count and mesh_size define scale 1.
        physics: As for :func:`ensemble`.
        materials: As for :func:`ensemble`.
        scales: Cell size multipliers s; the cell is s·L and holds round(count·s^d)
            inclusions, so the inclusions keep their size (mesh_size and min_gap too).
        realizations: Realizations per size.
        **kwargs: Passed to :func:`ensemble`.
    """
    if spec.kind != "random":
        raise InputError('size_study needs rve.kind = "random".')
    ratios, counts, means, variances, results = [], [], [], [], []
    for s in scales:
        scaled = scaled_spec(spec, s)
        count = scaled.count
        result = ensemble(scaled, physics, materials, realizations, **kwargs)
        scalar = np.trace(result.tensors, axis1=1, axis2=2) / result.tensors.shape[1]
        ratios.append(s * min(spec.lengths) / inclusion_diameter(spec))
        counts.append(count)
        means.append(float(scalar.mean()))
        variances.append(float(scalar.var(ddof=1)))
        results.append(result)
        log.info(
            "size study: scale %d of %d, δ/ε = %.3g (%d inclusions): mean %.6g, variance %.3g",
            len(results), len(scales), ratios[-1], count, means[-1], variances[-1],
        )  # fmt: skip
    r, v = np.asarray(ratios), np.asarray(variances)
    exponent = float(-np.polyfit(np.log(r), np.log(v), 1)[0])
    return SizeStudy(r, np.asarray(counts), np.asarray(means), v, exponent, results)


def inclusion_diameter(spec: RVESpec) -> float:
    """ε of a ``random`` spec: the diameter of a disk/sphere of the mean inclusion volume."""
    each = spec.fraction * spec.volume / spec.count
    if spec.dim == 2:
        return 2 * math.sqrt(each / math.pi)
    return float(2 * (3 * each / (4 * math.pi)) ** (1 / 3))


SCALE_TOLERANCE = 0.05
"""How far rounding the inclusion count of a scaled cell may move ε (relative)."""


def check_scale(spec: RVESpec, scale: float, name: str) -> None:
    """Refuse a scale whose rounded inclusion count changes the inclusion size ε.

    The scaled cell keeps the fraction, so its round(count·s^d) inclusions have the volume
    count·s^d / round(count·s^d) times the cell's, and ε that ratio to the power 1/d: a
    study reporting δ/ε with the cell's ε would be off by as much.

    Raises:
        InputError: ε changes by more than ``SCALE_TOLERANCE``, naming ``name``.
    """
    exact = spec.count * scale**spec.dim
    count = max(1, round(exact))
    change = (exact / count) ** (1 / spec.dim) - 1
    if abs(change) > SCALE_TOLERANCE:
        raise InputError(
            f"{name} {scale:g}: the cell would hold {exact:.3g} inclusions, rounded to {count}, "
            f"which changes their size ε by {100 * change:+.0f}% (limit "
            f"{100 * SCALE_TOLERANCE:.0f}%); choose scales s with count·s^{spec.dim} near a whole "
            "number."
        )


def scaled_spec(spec: RVESpec, scale: float) -> RVESpec:
    """The random medium of ``spec`` in a cell ``scale`` times larger per axis.

    The cell holds round(count·scale^d) inclusions (at least one) of the same size, at the
    same fraction, mesh size and gap.

    Raises:
        InputError: a scale that is not positive, or whose rounded count changes the
            inclusion size (``check_scale``).
    """
    if not (math.isfinite(scale) and scale > 0):
        raise InputError(f"a cell scale must be positive and finite, got {scale}.")
    check_scale(spec, scale, "the cell scale")
    count = max(1, round(spec.count * scale**spec.dim))
    return replace(spec, cell=tuple(scale * x for x in spec.lengths), count=count, center=None)

"""Ensembles of random cells: apparent tensors per realization, their statistics, RVE size.

For a stationary and ergodic random medium, one cell of size δ is a sample of the apparent
tensor; its scatter over realizations (seeds) measures the statistical error, which for
periodized random cells decays like (ε/δ)^d in variance (ε the inclusion size, d the
dimension). ``ensemble`` samples one cell size, ``size_study`` sweeps δ/ε at fixed fraction.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from mpi4py import MPI

import numpy as np
import numpy.typing as npt

from hmm_fenics.coupling.homogenize import homogenize
from hmm_fenics.errors import InputError
from hmm_fenics.materials import Material
from hmm_fenics.parallel.collective import agree
from hmm_fenics.physics import Physics
from hmm_fenics.rve.spec import RVESpec

MAX_REALIZATIONS = 1000
"""Ensembles are refused above this many realizations (each one a meshed and solved cell)."""


class EnsembleResult(NamedTuple):
    """Apparent tensors of N realizations and their statistics.

    Attributes:
        seeds: Seed of each realization, shape ``(N,)``.
        tensors: Shape ``(N, n, n)`` (Mandel for elasticity).
        fractions: Achieved inclusion fractions, shape ``(N,)``.
        mean: Shape ``(n, n)``.
        std: Sample standard deviation (ddof = 1), shape ``(n, n)``.
        ci95: Half-width of the 95% confidence interval of the mean (Student t), ``(n, n)``.
    """

    seeds: npt.NDArray[np.int64]
    tensors: npt.NDArray[np.float64]
    fractions: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    std: npt.NDArray[np.float64]
    ci95: npt.NDArray[np.float64]

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
    """
    if spec.kind != "random":
        raise InputError(f'realizations need rve.kind = "random"; {spec.kind!r} is deterministic.')
    if not 2 <= realizations <= MAX_REALIZATIONS:
        raise InputError(
            f"--realizations must be from 2 (for statistics) to {MAX_REALIZATIONS}, got "
            f"{realizations}."
        )
    seeds = np.arange(spec.seed, spec.seed + realizations, dtype=np.int64)

    def solve_mine() -> dict[int, tuple[Any, float]]:
        mine = {}
        for k in range(comm.rank, realizations, comm.size):
            result = homogenize(
                replace(spec, seed=int(seeds[k])),
                physics,
                materials,
                degree,
                petsc_options,
                check=False,
            )
            mine[k] = (result.tensor, result.fraction)
        return mine

    mine = agree(comm, solve_mine)  # one failed realization is raised on every rank
    gathered: dict[int, tuple[Any, float]] = {}
    for part in comm.allgather(mine):
        gathered.update(part)
    tensors = np.array([gathered[k][0] for k in range(realizations)])
    fractions = np.array([gathered[k][1] for k in range(realizations)])
    return _statistics(seeds, tensors, fractions)


def _statistics(
    seeds: npt.NDArray[np.int64],
    tensors: npt.NDArray[np.float64],
    fractions: npt.NDArray[np.float64],
) -> EnsembleResult:
    from scipy.stats import t as student

    n = len(tensors)
    mean = tensors.mean(axis=0)
    std = tensors.std(axis=0, ddof=1)
    ci95 = float(student.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return EnsembleResult(seeds, tensors, fractions, mean, std, ci95)


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
    ratios, counts, means, variances, ensembles = [], [], [], [], []
    for s in scales:
        count = max(1, round(spec.count * s**spec.dim))
        scaled = replace(spec, cell=tuple(s * x for x in spec.lengths), count=count, center=None)
        result = ensemble(scaled, physics, materials, realizations, **kwargs)
        scalar = np.trace(result.tensors, axis1=1, axis2=2) / result.tensors.shape[1]
        diameter = (
            2 * math.sqrt(spec.fraction * spec.volume / (spec.count * math.pi))
            if spec.dim == 2
            else 2 * (3 * spec.fraction * spec.volume / (4 * math.pi * spec.count)) ** (1 / 3)
        )
        ratios.append(s * min(spec.lengths) / diameter)
        counts.append(count)
        means.append(float(scalar.mean()))
        variances.append(float(scalar.var(ddof=1)))
        ensembles.append(result)
    r, v = np.asarray(ratios), np.asarray(variances)
    exponent = float(-np.polyfit(np.log(r), np.log(v), 1)[0])
    return SizeStudy(r, np.asarray(counts), np.asarray(means), v, exponent, ensembles)

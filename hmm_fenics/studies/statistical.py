"""Statistical study: apparent tensors of random media against the window size δ, per micro BC.

For a random medium, one cell of size δ is a sample of the apparent tensor. At each size the
study homogenizes N realizations (seeds ``rve.seed`` … ``rve.seed + N − 1``, the cell scaled
as in ``coupling.ensemble.scaled_spec``: s·L holding round(count·s^d) inclusions of the same
size) under each micro boundary condition, every BC on the same packings. It reports the
ensemble mean and the 95% confidence interval of the mean (Student t) of the scalar
trace(C)/n (n = d for diffusion, 3 or 6 Mandel components for elasticity) and of every
entry of the tensor, against δ/ε (ε the inclusion diameter, ``inclusion_diameter``).

Theory: for every realization Neumann ≤ periodic ≤ Dirichlet (quadratic forms), so the
means are ordered too; the Dirichlet–Neumann bracket closes and the scatter shrinks as δ/ε
grows (variance ∝ (ε/δ)^d).
"""

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.studies.output import StudyOutput

if TYPE_CHECKING:
    from hmm_fenics.coupling.ensemble import EnsembleResult
    from hmm_fenics.materials import Material
    from hmm_fenics.physics import Physics
    from hmm_fenics.rve.spec import RVESpec

BCS = ("periodic", "dirichlet", "neumann")
"""The boundary conditions of the study: the bracket and the effective estimate between."""
DEFAULT_SIZES = (1.0, 2.0, 3.0)
DEFAULT_REALIZATIONS = 8
COLOURS = {"neumann": "tab:blue", "periodic": "tab:green", "dirichlet": "tab:red"}


class Scalar(NamedTuple):
    """Statistics of the scalar trace(C)/n over an ensemble.

    Attributes:
        values: One per realization, shape ``(N,)``.
        mean: Their mean.
        std: Their sample standard deviation (ddof = 1).
        ci95: Half-width of the 95% confidence interval of the mean (Student t, N − 1).
    """

    values: npt.NDArray[np.float64]
    mean: float
    std: float
    ci95: float


def scalar_statistics(tensors: npt.NDArray[np.float64]) -> Scalar:
    """Mean, spread and 95% CI of trace(C)/n over tensors of shape ``(N, n, n)``, N ≥ 2."""
    from scipy.stats import t as student

    values = np.trace(tensors, axis1=1, axis2=2) / tensors.shape[1]
    n = len(values)
    std = float(values.std(ddof=1))
    ci95 = float(student.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return Scalar(values, float(values.mean()), std, ci95)


class SizeEnsembles(NamedTuple):
    """The ensembles of one window size.

    Attributes:
        scale: s, the cell's size over the cell file's.
        lengths: The window's box lengths δ, ``(dim,)``.
        ratio: δ/ε (smallest length over the inclusion diameter).
        inclusions: Inclusions per window.
        ensembles: BC → its ensemble (the same seeds in each).
        seconds: Wall time of this size (meshing and solving every realization and BC).
    """

    scale: float
    lengths: tuple[float, ...]
    ratio: float
    inclusions: int
    ensembles: dict[str, "EnsembleResult"]
    seconds: float

    def scalar(self, bc: str) -> Scalar:
        """Statistics of trace(C)/n under ``bc``."""
        return scalar_statistics(self.ensembles[bc].tensors)


class StatisticalStudy(NamedTuple):
    """Apparent tensors of a random medium at growing window sizes, per micro BC.

    Attributes:
        physics: ``diffusion`` or ``elasticity``.
        notation: Layout of the tensors.
        dim: 2 or 3.
        epsilon: The inclusion diameter ε.
        realizations: N per size.
        bcs: The boundary conditions.
        sizes: One entry per window size, smallest first.
    """

    physics: str
    notation: str
    dim: int
    epsilon: float
    realizations: int
    bcs: tuple[str, ...]
    sizes: list[SizeEnsembles]

    def to_dict(self) -> dict[str, Any]:
        """Every number, JSON-ready: per size and BC the scalar's and the tensor's statistics."""
        rows = []
        for size in self.sizes:
            per_bc = {}
            for bc, result in size.ensembles.items():
                s = size.scalar(bc)
                per_bc[bc] = {
                    "scalar_mean": s.mean,
                    "scalar_std": s.std,
                    "scalar_ci95": s.ci95,
                    "scalar_values": s.values.tolist(),
                    **{k: v for k, v in result.to_dict().items() if k != "bc"},
                }
            rows.append(
                {
                    "scale": size.scale,
                    "lengths": list(size.lengths),
                    "delta_over_epsilon": size.ratio,
                    "count": size.inclusions,
                    "seconds": size.seconds,
                    "bcs": per_bc,
                }
            )
        return {
            "study": "statistical",
            "physics": self.physics,
            "notation": self.notation,
            "dim": self.dim,
            "epsilon": self.epsilon,
            "realizations": self.realizations,
            "scalar": "trace(C)/n",
            "interval": "95% confidence interval of the mean (Student t, N - 1)",
            "sizes": rows,
        }


def check_sizes(spec: "RVESpec", sizes: Sequence[float], name: str = "--sizes") -> list[float]:
    """Window scales: positive, finite, distinct, each cell at most ``MAX_COUNT`` inclusions.

    The rounded inclusion count of each scale must keep ε (``coupling.ensemble.check_scale``).

    Returns:
        The scales, smallest first.

    Raises:
        InputError: naming ``name``.
    """
    from hmm_fenics.coupling.ensemble import check_scale
    from hmm_fenics.rve.spec import MAX_COUNT

    if not sizes:
        raise InputError(f"{name}: give at least one window scale.")
    bad = [s for s in sizes if not (math.isfinite(s) and s > 0)]
    if bad:
        raise InputError(f"{name} must be positive, finite scales of the cell, got {bad}.")
    if len(set(sizes)) != len(sizes):
        raise InputError(f"{name}: a scale is given twice ({list(sizes)}).")
    largest = max(sizes)
    if spec.count * largest**spec.dim > MAX_COUNT:
        raise InputError(
            f"{name}: a cell {largest:g} times larger would hold about "
            f"{spec.count * largest**spec.dim:.0f} inclusions (limit {MAX_COUNT}); use smaller "
            "scales or a cell with fewer inclusions."
        )
    for s in sizes:
        check_scale(spec, s, name)
    return sorted(float(s) for s in sizes)


def statistical_study(
    spec: "RVESpec",
    physics: "Physics",
    materials: Mapping[str, "Material"],
    sizes: Sequence[float] = DEFAULT_SIZES,
    realizations: int = DEFAULT_REALIZATIONS,
    bcs: Sequence[str] = BCS,
    degree: int = 1,
    petsc_options: Mapping[str, Any] | None = None,
    comm: Any = None,
) -> StatisticalStudy:
    """Ensembles of the random medium of ``spec`` at each window scale, under each BC.

    Args:
        spec: A ``random`` RVE spec: scale 1.
        physics: ``Diffusion`` or ``Elasticity``.
        materials: Phase → material.
        sizes: Window scales s (the cell s·L, see ``scaled_spec``).
        realizations: N per size, 2 to ``MAX_REALIZATIONS``.
        bcs: Micro boundary conditions (each realization solved with every one).
        degree: Lagrange degree of the micro field.
        petsc_options: ``hmm_micro_`` solver options.
        comm: Realizations are shared over its ranks (default ``MPI.COMM_SELF``).

    Raises:
        InputError: a spec that is not random (naming ``rve.kind``), bad sizes (``--sizes``),
            or a bad N (``--realizations``).
    """
    from mpi4py import MPI

    from hmm_fenics.coupling.ensemble import ensembles, inclusion_diameter, scaled_spec

    if spec.kind != "random":
        raise InputError(
            f"rve.kind = {spec.kind!r}: the statistical study needs a random medium (kind = "
            '"random"); for a periodic cell use hmm-fenics rve-size.'
        )
    scales = check_sizes(spec, sizes)
    epsilon = inclusion_diameter(spec)
    rows = []
    for s in scales:
        start = time.perf_counter()
        scaled = scaled_spec(spec, s)
        results = ensembles(
            scaled,
            physics,
            materials,
            realizations,
            tuple(bcs),
            degree,
            petsc_options,
            MPI.COMM_SELF if comm is None else comm,
        )
        ratio = min(scaled.lengths) / epsilon
        seconds = time.perf_counter() - start
        rows.append(SizeEnsembles(s, scaled.lengths, ratio, scaled.count, results, seconds))
    return StatisticalStudy(
        physics.name, physics.notation, physics.dim, epsilon, realizations, tuple(bcs), rows
    )


def draw(study: StatisticalStudy, path: Path) -> Path:
    """PNG of the mean of trace(C)/n ± its 95% CI against δ/ε (log x), one band per BC.

    The grey band between the Neumann and the Dirichlet means is the bracket they give.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.array([size.ratio for size in study.sizes])
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    stats = {bc: [size.scalar(bc) for size in study.sizes] for bc in study.bcs}
    if "dirichlet" in stats and "neumann" in stats:
        ax.fill_between(
            x,
            [s.mean for s in stats["neumann"]],
            [s.mean for s in stats["dirichlet"]],
            color="0.9",
            label="Dirichlet–Neumann bracket (means)",
        )
    order = ("dirichlet", "periodic", "neumann")  # top to bottom, as the curves lie
    for bc in sorted(stats, key=lambda b: order.index(b) if b in order else len(order)):
        mean = np.array([s.mean for s in stats[bc]])
        ci = np.array([s.ci95 for s in stats[bc]])
        colour = COLOURS.get(bc, "tab:purple")
        ax.fill_between(x, mean - ci, mean + ci, color=colour, alpha=0.25, linewidth=0)
        ax.plot(x, mean, "o-", color=colour, label=f"{bc}: mean ± 95% CI")
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:.3g}" for v in x])
    ax.minorticks_off()
    ax.set_xlabel("δ/ε (window size over inclusion diameter)")
    what, units = (
        ("conductivity", "the phases' k")
        if study.physics == "diffusion"
        else ("stiffness (Mandel)", "the phases' E")
    )
    ax.set_ylabel(f"apparent {what}: trace / n\n(units of {units})")
    ax.set_title(f"Random medium, {study.realizations} realizations per size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summary(study: StatisticalStudy) -> str:
    """A table: per size, each BC's mean ± 95% CI of trace(C)/n."""
    lines = [
        f"Statistical study ({study.physics}, {study.dim}D): {study.realizations} realizations "
        f"per size, ε = {study.epsilon:.4g}; trace(C)/n, mean ± 95% CI of the mean",
        f"{'δ/ε':>7} {'incl.':>6} "
        + "".join(f"{bc:>24}" for bc in study.bcs)
        + f"{'time [s]':>10}",
    ]
    for size in study.sizes:
        cells = "".join(
            f"{s.mean:>14.5g} ± {s.ci95:<7.2g}" for s in (size.scalar(bc) for bc in study.bcs)
        )
        lines.append(f"{size.ratio:7.3g} {size.inclusions:6d} {cells}{size.seconds:10.1f}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``CELL.toml``, ``--sizes``, ``--realizations``."""
    parser.add_argument("cell", help='cell TOML file of a random medium (rve.kind = "random")')
    parser.add_argument(
        "--sizes",
        type=float,
        nargs="+",
        metavar="S",
        default=list(DEFAULT_SIZES),
        help="window scales: the cell S times larger per axis, holding count·S^d inclusions "
        f"(default: {' '.join(f'{s:g}' for s in DEFAULT_SIZES)})",
    )
    parser.add_argument(
        "--realizations",
        type=int,
        metavar="N",
        default=DEFAULT_REALIZATIONS,
        help=f"realizations per size (default {DEFAULT_REALIZATIONS})",
    )


def run(args: argparse.Namespace, comm: Any) -> StudyOutput:
    """The study of ``args.cell`` (the cell file's micro BC is ignored: all three are run)."""
    from hmm_fenics.config import load_cell_config

    config = load_cell_config(args.cell)
    study = statistical_study(
        config.rve,
        config.physics,
        config.materials,
        args.sizes,
        args.realizations,
        BCS,
        config.degree,
        config.solver,
        comm,
    )
    data = {"input": args.cell, **study.to_dict()}
    return StudyOutput(
        "statistical",
        data,
        summary(study),
        lambda folder: [draw(study, folder / "statistical.png")],
    )

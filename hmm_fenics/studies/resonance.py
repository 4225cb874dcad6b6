"""Resonance study: the apparent coefficient's error against δ/ε for every micro boundary condition.

The medium is the smooth layered a(x) = 2 + cos(2π x1/ε), whose homogenized coefficient is
A = diag(√3, 2) exactly (harmonic mean across the layers, arithmetic mean along them;
references.md). At a fixed macro point x0 the window x0 + δ·(−½, ½)² is solved under each
BC (``studies.windows``, structured P2 windows with ``cells_per_epsilon`` elements per
period) for δ/ε whole and not, and the relative error ‖A_δ − A‖₂/‖A‖₂ is recorded.

What theory says and the picture shows: periodic windows are exact at whole δ/ε (only the
mesh error is left) and show the resonance error at the others; affine Dirichlet and
uniform-flux (Neumann) windows have a boundary layer of width ~ε, error O(ε/δ) at every δ
(a fitted slope ≈ −1 on the log–log plot); oversampling (the window of 3δ solved with
Dirichlet data, averaged over the middle δ) keeps the boundary layer outside the average:
its error is the mesh error at whole δ/ε and the averaging (resonance) error at the others.
"""

import argparse
import math
import sys
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.micro.boundary import BOUNDARY_CONDITIONS
from hmm_fenics.studies.output import StudyOutput, save_figure

DEFAULT_RATIOS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 4.5, 6.0, 8.0)
CENTER = (0.3, 0.3)
"""The macro point x0 of every window, in units of ε (a generic phase of the medium)."""
HOMOGENIZED = np.diag([math.sqrt(3.0), 2.0])
"""A of a(y) = 2 + cos(2π y1): diag(harmonic mean, arithmetic mean) (references.md)."""
REGIMES = {
    "periodic": "non-whole",
    "dirichlet": "whole",
    "neumann": "whole",
    "oversampling": "non-whole",
}
"""The δ/ε over which each BC's rate is fitted: where its O(ε/δ) error is the only one.

Periodic and oversampling windows are exact up to the mesh error at whole δ/ε, so their
resonance rate is fitted at the non-whole ones (mixing in the whole ones fits the mesh
error); Dirichlet and Neumann windows have the boundary layer at every δ, seen alone at the
whole δ/ε (at the non-whole ones a phase-dependent resonance term adds to it).
"""
COLOURS = {
    "periodic": "tab:green",
    "dirichlet": "tab:red",
    "neumann": "tab:blue",
    "oversampling": "tab:purple",
}


def layered(x: npt.NDArray[np.float64], epsilon: float) -> npt.NDArray[np.float64]:
    """a(x) = 2 + cos(2π x1/ε); ``x`` of shape ``(dim, n)``, returns ``(n,)``."""
    return np.asarray(2.0 + np.cos(2.0 * np.pi * np.asarray(x)[0] / epsilon), dtype=np.float64)


def relative_error(tensor: npt.NDArray[np.float64], reference: npt.NDArray[np.float64]) -> float:
    """‖tensor − reference‖₂ / ‖reference‖₂ (spectral norms)."""
    return float(np.linalg.norm(tensor - reference, 2) / np.linalg.norm(reference, 2))


def fitted_rate(ratios: Sequence[float], errors: Sequence[float]) -> float:
    """The least-squares slope of log(error) against log(δ/ε) (NaN for fewer than 2 sizes)."""
    if len(set(ratios)) < 2:
        return math.nan
    slope = np.polyfit(np.log(np.asarray(ratios)), np.log(np.asarray(errors)), 1)[0]
    return float(slope)


def is_whole(ratio: float) -> bool:
    """Whether δ/ε is a whole number of periods."""
    return abs(ratio - round(ratio)) < 1e-9


def regime_rate(ratios: Sequence[float], errors: Sequence[float], regime: str) -> float:
    """``fitted_rate`` over the ratios that are whole (``regime`` "whole") or not."""
    chosen = [i for i, r in enumerate(ratios) if is_whole(r) == (regime == "whole")]
    return fitted_rate([ratios[i] for i in chosen], [errors[i] for i in chosen])


def _rate(value: float) -> str:
    """A fitted rate in two decimals, or n/a (fewer than two ratios in its regime)."""
    return "n/a" if math.isnan(value) else f"{value:.2f}"


class ResonanceResult(NamedTuple):
    """The resonance study.

    Attributes:
        ratios: δ/ε of the windows.
        bcs: The boundary conditions.
        tensors: BC → apparent tensors, one ``(2, 2)`` per ratio.
        errors: BC → ‖A_δ − A‖₂/‖A‖₂ per ratio.
        rates: BC → the fitted log–log slope of the errors over the ratios of its regime
            (``REGIMES``; NaN with fewer than two of them).
        cells_per_epsilon, degree, oversampling: The discretization and the oversampling ratio.
        seconds: Wall time of the windows.
    """

    ratios: list[float]
    bcs: list[str]
    tensors: dict[str, list[list[list[float]]]]
    errors: dict[str, list[float]]
    rates: dict[str, float]
    cells_per_epsilon: int
    degree: int
    oversampling: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers, with the medium and the reference."""
        return {
            "medium": "a(x) = 2 + cos(2π x1/ε), ε = 1",
            "center": list(CENTER),
            "homogenized": HOMOGENIZED.tolist(),
            "error_norm": "‖A_δ − A‖₂/‖A‖₂ (spectral)",
            **self._asdict(),
            "rates": {bc: _finite(v) for bc, v in self.rates.items()},
            "regimes": {bc: REGIMES[bc] for bc in self.bcs},
        }


def _finite(value: float) -> float | None:
    """``value``, or None for NaN (strict JSON)."""
    return None if math.isnan(value) else value


def check_ratios(ratios: Sequence[float], cells_per_epsilon: int) -> None:
    """Refuse bad δ/ε values and resolutions (InputError naming the option)."""
    from hmm_fenics.rve.medium import check_window

    if not ratios or not all(math.isfinite(r) and r > 0 for r in ratios):
        raise InputError(f"--ratios must be positive numbers (δ/ε), got {list(ratios)!r}.")
    if not (isinstance(cells_per_epsilon, int) and cells_per_epsilon >= 1):
        raise InputError(
            f"--cells-per-epsilon must be a positive whole number, got {cells_per_epsilon!r}."
        )
    for r in ratios:
        cells = r * cells_per_epsilon
        whole = round(cells if math.isfinite(cells) else sys.float_info.max)
        check_window(r, whole, 2, "--ratios", "lower --ratios or --cells-per-epsilon")
        if abs(cells - round(cells)) > 1e-9:
            raise InputError(
                f"--ratios: δ/ε = {r:g} times --cells-per-epsilon {cells_per_epsilon} is not a "
                "whole number of elements: choose them so the mesh size is ε/cells_per_epsilon."
            )


def resonance_study(
    ratios: Sequence[float] = DEFAULT_RATIOS,
    bcs: Sequence[str] = BOUNDARY_CONDITIONS,
    cells_per_epsilon: int = 8,
    degree: int = 2,
    oversampling: int = 3,
) -> ResonanceResult:
    """The apparent tensor of the layered medium's window at x0 for every δ/ε and BC.

    Args:
        ratios: δ/ε values (ε = 1).
        bcs: Micro boundary conditions (``micro.boundary.BOUNDARY_CONDITIONS``).
        cells_per_epsilon: Elements per period along each axis (δ/ε times it must be whole).
        degree: Lagrange degree of the windows (P2: the mesh error at 8 cells per period is
            ~1e-4 relative).
        oversampling: The oversampling window is this many δ per axis (odd).

    Raises:
        InputError: bad ratios, resolution or BC.
    """
    from hmm_fenics.studies.windows import boundary_windows

    check_ratios(ratios, cells_per_epsilon)
    start = time.perf_counter()
    tensors: dict[str, list[list[list[float]]]] = {}
    errors: dict[str, list[float]] = {}
    for bc in bcs:
        tensors[bc], errors[bc] = [], []
        for r in ratios:
            windows = boundary_windows(
                2,
                layered,
                float(r),
                round(r * cells_per_epsilon),
                bc,
                ratio=oversampling,
                degree=degree,
                epsilon=1.0,
            )
            C = np.asarray(windows.cell_at(np.asarray(CENTER)).effective_tensor)
            tensors[bc].append(C.tolist())
            errors[bc].append(relative_error(C, HOMOGENIZED))
    rates = {bc: regime_rate(ratios, errors[bc], REGIMES[bc]) for bc in bcs}
    return ResonanceResult(
        [float(r) for r in ratios],
        list(bcs),
        tensors,
        errors,
        rates,
        cells_per_epsilon,
        degree,
        oversampling,
        time.perf_counter() - start,
    )


def summary(result: ResonanceResult) -> str:
    """The table of errors, one row per δ/ε, and the fitted rates."""
    lines = ["δ/ε    " + "".join(f"{bc:>14}" for bc in result.bcs)]
    for i, r in enumerate(result.ratios):
        lines.append(f"{r:<7g}" + "".join(f"{result.errors[bc][i]:>14.2e}" for bc in result.bcs))
    lines.append("rate   " + "".join(f"{_rate(result.rates[bc]):>14}" for bc in result.bcs))
    lines.append("  over " + "".join(f"{REGIMES[bc] + ' δ/ε':>14}" for bc in result.bcs))
    lines.append(
        f"relative error ‖A_δ − A‖₂/‖A‖₂ of a = 2 + cos(2π x1/ε), A = diag(√3, 2); "
        f"P{result.degree}, {result.cells_per_epsilon} cells per ε, "
        f"oversampling {result.oversampling}δ; {result.seconds:.1f} s"
    )
    return "\n".join(lines)


def draw(result: ResonanceResult, path: Any) -> Any:
    """Log–log error against δ/ε per BC, whole δ/ε filled, a reference slope −1 (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = np.asarray(result.ratios)
    whole = np.array([is_whole(r) for r in ratios])
    figure, axes = plt.subplots(figsize=(7.5, 5.2))
    floor = min(min(e) for e in result.errors.values())
    for bc in result.bcs:
        errors = np.maximum(np.asarray(result.errors[bc]), 1e-16)
        colour = COLOURS.get(bc, "k")
        axes.loglog(ratios, errors, "-", color=colour, lw=1, alpha=0.6)
        axes.loglog(
            ratios[whole],
            errors[whole],
            "o",
            color=colour,
            label=f"{bc} (slope {_rate(result.rates[bc])} on {REGIMES[bc]} δ/ε)",
        )
        axes.loglog(ratios[~whole], errors[~whole], "o", mfc="white", color=colour)
    anchor = max(result.errors.get("dirichlet", [1.0])[0], floor)
    guide = ratios[[0, -1]]
    axes.loglog(guide, anchor * guide[0] / guide, "k:", label="reference slope −1: O(ε/δ)")
    axes.set_xticks(ratios, [f"{r:g}" for r in ratios], minor=False)
    axes.set_xticks([], minor=True)
    axes.set_xlabel("δ/ε (window size in periods; filled: whole, open: not)")
    axes.set_ylabel("relative error of the apparent coefficient ‖A_δ − A‖/‖A‖")
    axes.set_title("Resonance: a = 2 + cos(2π x1/ε), A = diag(√3, 2)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    return save_figure(figure, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--ratios``, ``--cells-per-epsilon``, ``--degree``, ``--bc``."""
    parser.add_argument(
        "--ratios",
        type=float,
        nargs="+",
        default=list(DEFAULT_RATIOS),
        metavar="R",
        help=f"window sizes δ/ε (default {' '.join(f'{r:g}' for r in DEFAULT_RATIOS)})",
    )
    parser.add_argument(
        "--cells-per-epsilon", type=int, default=8, help="elements per period (default 8)"
    )
    parser.add_argument("--degree", type=int, default=2, choices=(1, 2, 3), help="P degree")
    parser.add_argument(
        "--bc",
        nargs="+",
        default=list(BOUNDARY_CONDITIONS),
        choices=BOUNDARY_CONDITIONS,
        help="micro boundary conditions (default: all)",
    )


def run(args: argparse.Namespace, comm: Any) -> StudyOutput:
    """The resonance study (every rank computes it: windows are serial and small)."""
    result = resonance_study(args.ratios, args.bc, args.cells_per_epsilon, args.degree)
    return StudyOutput(
        "resonance",
        result.to_dict(),
        summary(result),
        lambda folder: [draw(result, folder / "resonance.png")],
    )

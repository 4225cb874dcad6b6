"""The RVE-size selector: the smallest window δ whose bounds agree to a tolerance.

Windows grow in steps k = 1, 2, 3, … of a cell-dependent unit:

- a periodic cell (generated or a user mesh of simplices): the k×k(×k) tiling of the cell
  (``rve.tiling.tile_rve``), δ = k·L;
- an image cell: the centred crop of k·w × k·w(× k·w) pixels (w = ``step``), δ = k·w·h;
- a random medium: the cell k times larger per axis holding count·k^d inclusions
  (``coupling.ensemble.scaled_spec``), an ensemble of N realizations per size.

At each window the apparent tensors under Dirichlet (D), Neumann (N) and periodic (P)
conditions are computed. The **gap** is ‖D − N‖₂ / ‖P‖₂ (spectral norms: the largest
eigenvalue of the positive semidefinite D − N over the largest of P), of the means for a
random medium; the **CI** of a random medium is the half-width of the 95% confidence interval
of the mean of trace(P)/n over that mean. The criterion (``gap``, ``ci`` or ``both``) must be
≤ ``tol``; the selector stops at the first window that meets it, else at ``max_size``.

A window smaller than the features can fall inside one phase, where D = N and the gap is
zero. An image crop therefore meets ``tol`` only if it also holds every phase of the image,
each within ``tol`` (absolute) of the image's volume fraction (``WindowBounds.fractions_off``;
a missing phase counts as infinitely off). Tilings of a periodic cell and scaled random
cells keep the cell's fractions.
"""

import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError, PeriodicityError
from hmm_fenics.studies.statistical import scalar_statistics

if TYPE_CHECKING:
    from hmm_fenics.config import CellConfig
    from hmm_fenics.rve.mesh import RVEMesh

CRITERIA = ("auto", "gap", "ci", "both")
"""``auto``: ``gap`` for deterministic cells, ``ci`` for random media."""
DEFAULT_MAX_SIZE = 4
DEFAULT_REALIZATIONS = 8


class WindowBounds(NamedTuple):
    """The bounds of one window.

    Attributes:
        k: The window's step number (tiles, crop steps or scale per axis).
        lengths: δ, the window's box lengths, ``(dim,)``.
        pixels: Crop size in pixels per axis (image cells), else None.
        dirichlet: Apparent tensor under Dirichlet conditions (the mean for random media).
        neumann: Under Neumann conditions.
        periodic: Under periodic conditions (the effective tensor of a tiling: computed on
            one tile, the tiling's is the same); None for an image crop whose pores differ
            on opposite faces.
        gap: ‖D − N‖₂ / ‖P‖₂.
        ci: Random media: 95% CI half-width of the mean of trace(P)/n over it; else NaN.
        measure: The criterion's value: gap, ci, or the larger of both.
        direction: The unit macro gradient along which D and N differ most, ``(n,)``.
        seconds: Wall time of this window.
        fractions_off: Image crops: the largest |f_crop − f_image| over the phases (volume
            fractions; inf if the crop misses a phase); 0 for tilings and random media.
    """

    k: int
    lengths: tuple[float, ...]
    pixels: int | None
    dirichlet: npt.NDArray[np.float64]
    neumann: npt.NDArray[np.float64]
    periodic: npt.NDArray[np.float64] | None
    gap: float
    ci: float
    measure: float
    direction: npt.NDArray[np.float64]
    seconds: float
    fractions_off: float = 0.0

    def meets(self, tol: float) -> bool:
        """The criterion is ≤ ``tol`` and (a crop) the phase fractions are within ``tol``."""
        return self.measure <= tol and self.fractions_off <= tol


class SizeSelection(NamedTuple):
    """What the selector tried and what it chose.

    Attributes:
        mode: ``tiles``, ``crops`` or ``ensemble``.
        criterion: ``gap``, ``ci`` or ``both``.
        tol: The tolerance.
        windows: Every window tried, smallest first.
        chosen: Index of the first window that met ``tol``, or None.
        realizations: N per size (``ensemble``), else None.
        seconds: Total wall time.
    """

    mode: str
    criterion: str
    tol: float
    windows: list[WindowBounds]
    chosen: int | None
    realizations: int | None
    seconds: float

    @property
    def met(self) -> bool:
        """Whether a window met the tolerance."""
        return self.chosen is not None

    def advice(self) -> str:
        """One sentence: the chosen δ, or what to change when none met the tolerance."""
        if self.chosen is not None:
            w = self.windows[self.chosen]
            return (
                f"chosen: window k = {w.k}, δ = {_lengths(w.lengths)} ({self.criterion} "
                f"{w.measure:.3g} ≤ tol {self.tol:g})."
            )
        last = self.windows[-1]
        if last.measure <= self.tol:  # the bounds agree, but the crop is not the image
            off = (
                "misses a phase of the image"
                if math.isinf(last.fractions_off)
                else f"has phase fractions {last.fractions_off:.3g} off the image's"
            )
            return (
                f"no window up to k = {last.k} met tol {self.tol:g}: at k = {last.k} the gap "
                f"{last.measure:.3g} is within it but the crop {off} (a window inside too few "
                "features agrees with itself). Raise --max-size or --step, or bring a larger "
                "image."
            )
        if len(self.windows) >= 2 and self.windows[-2].measure > last.measure > 0:
            rate = math.log(self.windows[-2].measure / last.measure) / math.log(
                last.k / self.windows[-2].k
            )
            need = last.k * (last.measure / self.tol) ** (1 / rate) if rate > 0 else math.inf
            trend = (
                f"it falls like k^-{rate:.2g}, so about k = {math.ceil(need)} would do"
                if math.isfinite(need)
                else "it does not fall"
            )
            largest = max_tiling(len(last.lengths))
            if self.mode == "tiles" and math.isfinite(need) and math.ceil(need) > largest:
                return (
                    f"no window up to k = {last.k} met tol {self.tol:g}: {self.criterion} is "
                    f"{last.measure:.3g} at k = {last.k}; {trend}, beyond the largest tiling "
                    f"(k ≤ {largest}: at most {largest ** len(last.lengths)} copies of the cell). "
                    'Raise --tol, or study the medium as a random cell (rve.kind = "random").'
                )
        else:
            trend = "it does not fall"
        hint = (
            " (more realizations shrink the CI too: --realizations)"
            if self.criterion in ("ci", "both")
            else ""
        )
        bigger = (
            "Raise --max-size (up to the image's side / --step), bring a larger image, or "
            "raise --tol"
            if self.mode == "crops"
            else "Raise --max-size or --tol"
        )
        return (
            f"no window up to k = {last.k} met tol {self.tol:g}: {self.criterion} is "
            f"{last.measure:.3g} at k = {last.k}; {trend}. {bigger}{hint}."
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every window's bounds, gap, CI and time; the choice and the advice."""
        windows = []
        for w in self.windows:
            row = w._asdict()
            for key in ("dirichlet", "neumann", "periodic", "direction"):
                row[key] = None if row[key] is None else np.asarray(row[key]).tolist()
            row["fractions_off"] = w.fractions_off if math.isfinite(w.fractions_off) else None
            row["lengths"] = list(w.lengths)
            windows.append(row)
        return {
            "mode": self.mode,
            "criterion": self.criterion,
            "tol": self.tol,
            "norm": "gap = ||D - N||_2 / ||P||_2 (spectral norms)",
            "fractions": "crops meet tol only if every phase fraction is within tol of the image's",
            "windows": windows,
            "chosen": self.chosen,
            "met": self.met,
            "chosen_lengths": None
            if self.chosen is None
            else list(self.windows[self.chosen].lengths),
            "realizations": self.realizations,
            "seconds": self.seconds,
            "advice": self.advice(),
        }


def max_tiling(dim: int) -> int:
    """The largest k of a k^dim tiling within ``rve.tiling.MAX_TILES`` copies."""
    from hmm_fenics.rve.tiling import MAX_TILES

    k = 1
    while (k + 1) ** dim <= MAX_TILES:
        k += 1
    return k


def _lengths(lengths: tuple[float, ...]) -> str:
    return " × ".join(f"{x:.4g}" for x in lengths)


def relative_gap(
    dirichlet: npt.NDArray[np.float64],
    neumann: npt.NDArray[np.float64],
    periodic: npt.NDArray[np.float64] | None,
) -> tuple[float, npt.NDArray[np.float64]]:
    """‖D − N‖₂ / ‖P‖₂ and the unit vector along which D − N is largest.

    D − N is symmetrized first (oversampling aside, every apparent tensor is symmetric).
    Without P (an image crop whose pores differ on opposite faces) the gap is over ‖N‖₂,
    never smaller than over ‖P‖₂ (N ≤ P).
    """
    difference = (dirichlet - neumann + (dirichlet - neumann).T) / 2
    values, vectors = np.linalg.eigh(difference)
    top = int(np.argmax(np.abs(values)))
    direction = vectors[:, top] * np.sign(vectors[np.argmax(np.abs(vectors[:, top])), top])
    scale = np.linalg.norm(neumann if periodic is None else periodic, 2)
    return float(abs(values[top]) / scale), direction


def check_arguments(tol: float, max_size: int, realizations: int, step: int | None) -> None:
    """Validate the selector's arguments, naming the command-line option.

    Raises:
        InputError: ``--tol`` not in (0, 1), ``--max-size`` < 1, ``--realizations`` < 2,
            ``--step`` < 2.
    """
    from hmm_fenics.coupling.ensemble import MAX_REALIZATIONS

    if not (math.isfinite(tol) and 0 < tol < 1):
        raise InputError(f"--tol must be a relative tolerance in (0, 1), got {tol}.")
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
        raise InputError(f"--max-size must be a whole number ≥ 1, got {max_size!r}.")
    if not 2 <= realizations <= MAX_REALIZATIONS:
        raise InputError(
            f"--realizations must be from 2 to {MAX_REALIZATIONS}, got {realizations}."
        )
    if step is not None and step < 2:
        raise InputError(
            f"--step must be a number of pixels ≥ 2 (a window of one pixel is one voxel, "
            f"with no micro problem to solve), got {step}."
        )


def select_rve_size(
    config: "CellConfig",
    tol: float = 0.01,
    max_size: int = DEFAULT_MAX_SIZE,
    criterion: str = "auto",
    realizations: int = DEFAULT_REALIZATIONS,
    step: int | None = None,
    comm: Any = None,
) -> SizeSelection:
    """Grow the window of the cell of ``config`` until its bounds meet ``tol``.

    Args:
        config: The cell (its ``micro.bc`` is not used: D, N and P are all computed).
        tol: Relative tolerance of the criterion, in (0, 1).
        max_size: The largest window step k tried.
        criterion: ``auto``, ``gap``, ``ci`` or ``both`` (``ci`` needs a random medium).
        realizations: N per size for a random medium.
        step: Image cells: the crop grows by this many pixels per axis per step
            (default: the image's smallest side over ``max_size``).
        comm: Random media share the realizations over its ranks; deterministic windows are
            solved on its rank 0 and broadcast (default ``MPI.COMM_SELF``).

    Returns:
        ``SizeSelection``.

    Raises:
        InputError: a bad argument (naming its option), ``ci`` for a deterministic cell, a
            tiling beyond ``MAX_TILES`` copies or a cell that cannot be tiled, a crop beyond
            the image.
    """
    from mpi4py import MPI

    comm = MPI.COMM_SELF if comm is None else comm
    check_arguments(tol, max_size, realizations, step)
    if criterion not in CRITERIA:
        raise InputError(f"--criterion must be one of {list(CRITERIA)}, got {criterion!r}.")
    random = config.rve.kind == "random"
    if criterion == "auto":
        criterion = "ci" if random else "gap"
    if criterion != "gap" and not random:
        raise InputError(
            f"--criterion {criterion}: a confidence interval needs a random medium "
            f'(rve.kind = "random"), not {config.rve.kind!r}; use --criterion gap.'
        )
    if step is not None and config.rve.kind != "image":
        raise InputError('--step applies to image cells (rve.kind = "image") only.')
    start = time.perf_counter()
    if random:
        mode, windows = (
            "ensemble",
            _random_windows(config, tol, max_size, criterion, realizations, comm),
        )
    else:
        from hmm_fenics.parallel.collective import on_one_rank

        mode = "crops" if config.rve.kind == "image" else "tiles"
        windows = on_one_rank(comm, lambda: _deterministic_windows(config, tol, max_size, step))
    chosen = next((i for i, w in enumerate(windows) if w.meets(tol)), None)
    return SizeSelection(
        mode,
        criterion,
        tol,
        windows,
        chosen,
        realizations if random else None,
        time.perf_counter() - start,
    )


def _bounds(config: "CellConfig", rve: "RVEMesh", bcs: tuple[str, ...]) -> dict[str, Any]:
    from hmm_fenics.coupling.homogenize import homogenize

    materials = {name: config.materials[name] for name in rve.phases}
    return {
        bc: homogenize(
            rve, config.physics, materials, config.degree, config.solver, False, bc
        ).tensor
        for bc in bcs
    }


def _window(
    k: int,
    lengths: tuple[float, ...],
    pixels: int | None,
    tensors: dict[str, Any],
    ci: float,
    criterion: str,
    seconds: float,
) -> WindowBounds:
    gap, direction = relative_gap(tensors["dirichlet"], tensors["neumann"], tensors["periodic"])
    measure = {"gap": gap, "ci": ci, "both": max(gap, ci)}[criterion]
    return WindowBounds(
        k,
        lengths,
        pixels,
        np.asarray(tensors["dirichlet"]),
        np.asarray(tensors["neumann"]),
        None if tensors["periodic"] is None else np.asarray(tensors["periodic"]),
        gap,
        ci,
        measure,
        direction,
        seconds,
    )


def _deterministic_windows(
    config: "CellConfig", tol: float, max_size: int, step: int | None
) -> list[WindowBounds]:
    """Tilings of a periodic cell, or centred crops of an image, until the gap meets ``tol``."""
    from hmm_fenics.rve.mesh import build_rve
    from hmm_fenics.rve.tiling import MAX_TILES, tile_rve

    spec = config.rve
    if spec.kind == "image":
        return _crop_windows(config, tol, max_size, step)
    windows: list[WindowBounds] = []
    if max_size**spec.dim > MAX_TILES:
        raise InputError(
            f"--max-size {max_size}: a {spec.dim}D tiling holds at most {MAX_TILES} copies of "
            f"the cell, so --max-size ≤ {max_tiling(spec.dim)}."
        )
    start = time.perf_counter()
    cell = build_rve(spec)
    periodic = _bounds(config, cell, ("periodic",))["periodic"]
    for k in range(1, max_size + 1):
        window = cell if k == 1 else tile_rve(cell, (k,) * spec.dim)
        tensors = {**_bounds(config, window, ("dirichlet", "neumann")), "periodic": periodic}
        lengths = tuple(float(x) for x in window.upper - window.lower)
        now = time.perf_counter()
        windows.append(_window(k, lengths, None, tensors, math.nan, "gap", now - start))
        start = now
        if windows[-1].meets(tol):
            break
    return windows


def _crop_windows(
    config: "CellConfig", tol: float, max_size: int, step: int | None
) -> list[WindowBounds]:
    """Centred crops of k·step pixels per axis of an image cell, each meshed as its own cell."""
    from hmm_fenics.rve.mesh import build_rve
    from hmm_fenics.rve.pixels import read_pixels

    spec = config.rve
    assert spec.path is not None and spec.voxel_size is not None  # an image spec
    pixels = read_pixels(Path(spec.path))
    side = min(pixels.shape)
    step = max(2, side // max_size) if step is None else step
    if step * max_size > side:
        raise InputError(
            f"--step {step} × --max-size {max_size} = {step * max_size} pixels exceeds the "
            f"image's smallest side ({side} pixels); lower one of them."
        )
    labels = spec.phase_labels
    image_fractions = _phase_fractions(pixels, labels)
    windows: list[WindowBounds] = []
    with tempfile.TemporaryDirectory(prefix="hmm_rve_size_") as folder:
        for k in range(1, max_size + 1):
            start = time.perf_counter()
            m = k * step
            corner = [(n - m) // 2 for n in pixels.shape]
            crop = pixels[tuple(slice(c, c + m) for c in corner)]
            present = {name: [v for v in values if v in crop] for name, values in labels.items()}
            if not present["matrix"]:
                raise InputError(
                    f"--step: the centred window of {m} pixels holds no matrix voxel; use a "
                    "larger --step."
                )
            path = Path(folder) / f"crop_{k}.npy"
            np.save(path, crop)
            voids = tuple(v for v in spec.voids if present.get(v))
            window_spec = replace(
                spec,
                path=str(path),
                cell=None,
                labels={name: values for name, values in present.items() if values},
                voids=voids,
                void=bool(voids),  # a crop without pores is a solid cell
            )
            try:
                rve = build_rve(window_spec)
            except InputError as err:
                raise InputError(
                    f"the window of {m} pixels could not be meshed as a cell: {err}"
                ) from err
            tensors = _bounds(config, rve, ("dirichlet", "neumann"))
            try:  # a crop whose pores differ on opposite faces has no periodic tensor
                tensors.update(_bounds(config, rve, ("periodic",)))
            except PeriodicityError:
                tensors["periodic"] = None
            lengths = tuple(float(x) for x in rve.upper - rve.lower)
            seconds = time.perf_counter() - start
            window = _window(k, lengths, m, tensors, math.nan, "gap", seconds)
            fractions = _phase_fractions(crop, labels)
            off = max(
                abs(fractions[name] - f) if fractions[name] > 0 else math.inf
                for name, f in image_fractions.items()
            )
            windows.append(window._replace(fractions_off=off))
            if windows[-1].meets(tol):
                break
    return windows


def _phase_fractions(
    pixels: npt.NDArray[Any], labels: dict[str, tuple[int, ...]]
) -> dict[str, float]:
    """Phase name → the share of ``pixels`` whose label is one of that phase's."""
    return {
        name: float(np.isin(pixels, values).sum() / pixels.size) for name, values in labels.items()
    }


def _random_windows(
    config: "CellConfig",
    tol: float,
    max_size: int,
    criterion: str,
    realizations: int,
    comm: Any,
) -> list[WindowBounds]:
    """Ensembles of the random medium at scales k = 1, 2, … until the criterion meets ``tol``."""
    from hmm_fenics.coupling.ensemble import ensembles, scaled_spec
    from hmm_fenics.studies.statistical import check_sizes

    check_sizes(config.rve, [float(max_size)], "--max-size")
    windows: list[WindowBounds] = []
    for k in range(1, max_size + 1):
        start = time.perf_counter()
        spec = scaled_spec(config.rve, float(k))
        results = ensembles(
            spec,
            config.physics,
            config.materials,
            realizations,
            ("periodic", "dirichlet", "neumann"),
            config.degree,
            config.solver,
            comm,
        )
        periodic = scalar_statistics(results["periodic"].tensors)
        means = {bc: r.mean for bc, r in results.items()}
        ci = periodic.ci95 / abs(periodic.mean)
        seconds = time.perf_counter() - start
        windows.append(_window(k, spec.lengths, None, means, ci, criterion, seconds))
        if windows[-1].meets(tol):
            break
    return windows


def format_selection(selection: SizeSelection) -> str:
    """A table of the windows tried and the advice."""
    random = selection.mode == "ensemble"
    crops = selection.mode == "crops"
    head = (
        f"RVE size ({selection.mode}; criterion {selection.criterion} ≤ {selection.tol:g}; "
        "gap = ‖D − N‖₂/‖P‖₂"
        + (
            f"; CI: 95% of the mean of trace(P)/n, {selection.realizations} realizations"
            if random
            else ""
        )
        + ")"
    )
    lines = [
        head,
        f"{'k':>3} {'δ':>16} {'tr D/n':>10} {'tr P/n':>10} {'tr N/n':>10} {'gap':>9}"
        + (f" {'CI':>9}" if random else "")
        + (f" {'Δf':>9}" if crops else "")
        + f" {'time [s]':>9}",
    ]
    for w in selection.windows:
        n = len(w.dirichlet)
        traces = (
            f"{np.trace(t) / n:10.5g} " if t is not None else f"{'—':>10} "
            for t in (w.dirichlet, w.periodic, w.neumann)
        )
        size = _lengths(w.lengths) + (f" ({w.pixels} px)" if w.pixels else "")
        lines.append(
            f"{w.k:3d} {size:>16} "
            + "".join(traces)
            + f"{w.gap:9.3g}"
            + (f" {w.ci:9.3g}" if random else "")
            + (f" {w.fractions_off:9.3g}" if crops else "")
            + f" {w.seconds:9.2f}"
        )
    last = selection.windows[-1]
    lines.append(
        f"the largest gap at k = {last.k} is along the unit gradient "
        f"{np.array2string(last.direction, precision=3, suppress_small=True)}"
    )
    lines.append(selection.advice() + f" Total time {selection.seconds:.1f} s.")
    return "\n".join(lines)

"""A run's sampled medium: its ``[micro]`` keys, its scale checks and its micro model.

The micro domain at a macro point x is the window x + δ·(−½, ½)^d of the medium.

::

    [micro]
    medium = "medium.py:a"     # a(x) or a(x, epsilon), x of shape (dim, n) -> (n,) values > 0,
                               #   scaling [materials.matrix] (k, or E with nu fixed); the file
                               #   is found from the run file's folder. Or "rve": the [rve]
                               #   cell repeated periodically, one period = epsilon.
    epsilon = 0.02             # the period ε (macro units)
    delta = 0.04               # the window edge δ (macro units): δ/ε periods, any real number
    cells_per_epsilon = 16     # coefficient media: structured elements per ε (default 16)

With a coefficient function, ``[rve]`` holds ``dim`` only and ``[materials]`` one phase,
``matrix``; with ``"rve"``, ``[rve]`` is a generated cell as usual.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hmm_fenics.config import CellConfig, typed
from hmm_fenics.coupling.sampling import (
    CoefficientWindows,
    LatticeWindows,
    SampledModel,
    window_cells,
)
from hmm_fenics.errors import InputError
from hmm_fenics.rve.medium import MAX_WINDOW_CELLS, CoefficientMedium, load_function

MEDIUM_KEYS = {"medium", "epsilon", "delta", "cells_per_epsilon"}
LATTICE = "rve"
DEFAULT_CELLS_PER_EPSILON = 16


@dataclass(frozen=True)
class MediumConfig:
    """A validated sampled medium.

    Attributes:
        target: ``module:function``, or ``"rve"`` (the [rve] cell's periodic medium).
        epsilon: The period ε (macro units).
        delta: The window edge δ (macro units).
        cells_per_epsilon: Structured elements per ε (coefficient media).
        medium: The loaded coefficient medium (None for ``"rve"``).
    """

    target: str
    epsilon: float
    delta: float
    cells_per_epsilon: int = DEFAULT_CELLS_PER_EPSILON
    medium: CoefficientMedium | None = None

    @property
    def periods(self) -> float:
        """δ/ε, the periods a window holds."""
        return self.delta / self.epsilon


def is_function_medium(data: dict[str, Any]) -> bool:
    """Whether the run file's ``[micro] medium`` names a coefficient function."""
    micro = data.get("micro")
    medium = micro.get("medium") if isinstance(micro, dict) else None
    return isinstance(medium, str) and medium != LATTICE


def cell_tables(data: dict[str, Any]) -> dict[str, Any]:
    """The ``rve``, ``physics`` and ``materials`` tables to parse as the cell.

    With a coefficient function the ``[rve]`` table holds ``dim`` only; it is parsed as a
    one-phase cell named after the function (never meshed: the windows are).

    Raises:
        InputError: ``[rve]`` holds more than ``dim``, or no valid ``dim``.
    """
    tables: dict[str, Any] = {k: data[k] for k in ("rve", "physics", "materials") if k in data}
    if not is_function_medium(data) or not isinstance(tables.get("rve"), dict):
        return tables
    rve = tables["rve"]
    extra = sorted(set(rve) - {"dim"})
    if extra or "dim" not in rve:
        raise InputError(
            f"with micro.medium = {data['micro']['medium']!r} (a coefficient function) the "
            f"[rve] table holds dim only (the window is meshed from micro.delta and "
            f"micro.cells_per_epsilon); remove {[f'rve.{k}' for k in extra] or 'nothing'}"
            f"{'' if 'dim' in rve else ' and give rve.dim'}."
        )
    target = str(data["micro"]["medium"])
    return {**tables, "rve": {"kind": "file", "dim": rve["dim"], "path": target}}


def parse_medium(
    table: dict[str, Any], cell: CellConfig, base: Path, nonlinear: bool
) -> MediumConfig | None:
    """The sampled medium of the ``[micro]`` table, or None without ``micro.medium``.

    Raises:
        InputError: naming the key: ε or δ not positive, δ/ε or cells_per_epsilon out of
            range, the function missing or not importable, the function's values wrong at
            a probe point, a nonlinear phase, or materials that do not fit the medium.
    """
    given = sorted(MEDIUM_KEYS & set(table))
    if "medium" not in table:
        if given:
            raise InputError(f"{[f'micro.{k}' for k in given]} need micro.medium (the medium).")
        return None
    target = typed(table, "micro", "medium", str)
    for key in ("epsilon", "delta"):
        if key not in table:
            raise InputError(f"micro.{key} is missing: a sampled medium needs ε and δ.")
    epsilon = typed(table, "micro", "epsilon", float)
    delta = typed(table, "micro", "delta", float)
    for key, value in (("epsilon", epsilon), ("delta", delta)):
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"micro.{key} must be a positive length, got {value}.")
    if nonlinear:
        raise InputError(
            "micro.medium with power-law, J2 or Maxwell phases is not supported yet; give the "
            "phases linear laws."
        )
    cells = DEFAULT_CELLS_PER_EPSILON
    if "cells_per_epsilon" in table:
        if target == LATTICE:
            raise InputError(
                'micro.cells_per_epsilon applies to a coefficient medium; with medium = "rve" '
                "the window's element size is rve.mesh_size."
            )
        cells = typed(table, "micro", "cells_per_epsilon", int)
        if cells < 1:
            raise InputError(f"micro.cells_per_epsilon must be a positive integer, got {cells}.")
    dim = cell.physics.dim
    if target == LATTICE:
        return MediumConfig(target, epsilon, delta, cells)
    per_edge = math.ceil(delta / epsilon * cells)
    if float(per_edge) ** dim > MAX_WINDOW_CELLS:
        raise InputError(
            f"micro.cells_per_epsilon = {cells} with δ/ε = {delta / epsilon:.4g} gives "
            f"{per_edge}^{dim} window cells, above the limit {MAX_WINDOW_CELLS:.0e}; lower "
            "micro.cells_per_epsilon or micro.delta."
        )
    if set(cell.materials) != {"matrix"}:
        raise InputError(
            f"micro.medium = {target!r} scales one phase: [materials] must hold matrix only, "
            f"got {sorted(cell.materials)}."
        )
    medium = CoefficientMedium(load_function(target, base), epsilon)
    medium.values(_probe(dim, epsilon))  # wrong shapes and bad values fail here, by the key
    return MediumConfig(target, epsilon, delta, cells, medium)


def _probe(dim: int, epsilon: float) -> Any:
    """A few points of one period (n, dim), to try the function before any mesh is built."""
    import numpy as np

    ticks = np.linspace(0.0, epsilon, 3)
    grid = np.meshgrid(*([ticks] * dim), indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def scale_warnings(config: MediumConfig, macro_h: float) -> list[str]:
    """What the lengths ε ≤ δ ≪ H of a sampled medium say about this run (warnings).

    Args:
        config: The medium.
        macro_h: The mean macro element size H.
    """
    messages = []
    if config.delta < config.epsilon:
        messages.append(
            f"micro.delta = {config.delta:.3g} is smaller than one period (micro.epsilon = "
            f"{config.epsilon:.3g}): a window then samples part of the microstructure, and its "
            "answer depends on where it sits."
        )
    if config.delta >= macro_h:
        messages.append(
            f"micro.delta = {config.delta:.3g} is not smaller than the macro element size H = "
            f"{macro_h:.3g}: HMM assumes δ ≪ H (the windows of neighbouring points overlap "
            "several macro elements); refine micro.delta or coarsen the macro mesh."
        )
    return messages


def sampled_model(config: MediumConfig, cell: CellConfig) -> SampledModel:
    """The micro model whose cell at a macro point is the window of the medium there."""
    if config.target == LATTICE:
        windows: CoefficientWindows | LatticeWindows = LatticeWindows(
            cell.physics,
            cell.rve,
            cell.materials,
            config.delta,
            config.epsilon,
            cell.degree,
            cell.solver,
            bc=cell.bc,
        )
    else:
        assert config.medium is not None
        windows = CoefficientWindows(
            cell.physics,
            config.medium,
            config.delta,
            window_cells(config.delta, config.epsilon, config.cells_per_epsilon),
            cell.materials["matrix"],
            cell.degree,
            cell.solver,
            bc=cell.bc,
        )
    return SampledModel(windows)

"""The ``[loading]`` table of a run file: the load path in time, its steps, the cut-back limit.

``path = [[t0, f0], [t1, f1], ...]`` is a piecewise-linear load factor in time (times ≥ 0,
strictly increasing; e.g. load, unload, reverse, hold); every prescribed value and the source
is the given value × the factor. Steps: ``steps = N`` (N per segment), ``steps = [N1, N2, ...]``
(one count per segment) or ``dt = x`` (each segment split evenly into steps of at most x).
Without ``path``, ``steps = N`` is the ramp [[0, 0], [1, 1]] in N steps (as before paths).
``max_cuts``: a step that fails is retried with Δt halved at most this many times.
"""

import itertools
import math
from typing import Any

from hmm_fenics.config import check_keys, typed
from hmm_fenics.errors import InputError
from hmm_fenics.stepping import MAX_CUTS, LoadPath, load_path

MAX_STEPS = 1000
"""At most this many steps per segment."""
MAX_TOTAL_STEPS = 10_000
"""At most this many steps along the whole path."""
MAX_POINTS = 1000
"""At most this many path points."""
KEYS = {"path", "steps", "dt", "max_cuts", "source"}


def parse_loading(table: dict[str, Any]) -> LoadPath:
    """The validated load path of a ``[loading]`` table (``source`` is checked elsewhere).

    Raises:
        InputError: naming the key (``loading.path[2]``, ``loading.steps``, ...).
    """
    check_keys("loading", table, required=set(), optional=KEYS)
    points = _path(table["path"]) if "path" in table else [(0.0, 0.0), (1.0, 1.0)]
    segments = len(points) - 1
    if "steps" in table and "dt" in table:
        raise InputError("loading.steps and loading.dt both given: give one of them.")
    steps: int | list[int] | None = None
    dt = None
    if "dt" in table:
        dt = typed(table, "loading", "dt", float)
        if not dt > 0:
            raise InputError(f"loading.dt must be a positive time step, got {dt}.")
        counts = [math.ceil((b[0] - a[0]) / dt - 1e-9) for a, b in itertools.pairwise(points)]
    else:
        steps = _steps(table.get("steps", 1), segments)
        counts = [steps] * segments if isinstance(steps, int) else steps
    total = sum(max(c, 1) for c in counts)
    if total > MAX_TOTAL_STEPS or max(counts) > MAX_STEPS:
        raise InputError(
            f"loading: {total} steps in all (at most {max(counts)} in one segment); the limits "
            f"are {MAX_TOTAL_STEPS} in all and {MAX_STEPS} per segment: raise loading.dt or "
            "lower loading.steps."
        )
    max_cuts = typed(table, "loading", "max_cuts", int) if "max_cuts" in table else MAX_CUTS
    if not 0 <= max_cuts <= 20:
        raise InputError(f"loading.max_cuts must be an integer from 0 to 20, got {max_cuts}.")
    return load_path(points, steps=steps, dt=dt, max_cuts=max_cuts)


def _path(raw: Any) -> list[tuple[float, float]]:
    where = "loading.path"
    if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_POINTS:
        raise InputError(
            f"{where} must be a list of 2 to {MAX_POINTS} [time, factor] points, got {raw!r}."
        )
    points = []
    for i, point in enumerate(raw):
        ok = isinstance(point, list) and len(point) == 2
        if not ok or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in point
        ):
            raise InputError(
                f"{where}[{i}] must be [time, factor], two finite numbers, got {point!r}."
            )
        points.append((float(point[0]), float(point[1])))
    if points[0][0] < 0:
        raise InputError(f"{where}[0]: the time {points[0][0]} must be ≥ 0.")
    for i in range(1, len(points)):
        if not points[i][0] > points[i - 1][0]:
            raise InputError(
                f"{where}[{i}]: the time {points[i][0]} must be after {points[i - 1][0]} "
                "(times strictly increasing)."
            )
    return points


def _steps(raw: Any, segments: int) -> int | list[int]:
    def count(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_STEPS:
            raise InputError(f"{where} must be an integer from 1 to {MAX_STEPS}, got {value!r}.")
        return value

    if isinstance(raw, list):
        if len(raw) != segments:
            raise InputError(
                f"loading.steps has {len(raw)} counts but loading.path has {segments} "
                f"segment(s): give one count per segment, or one integer for all."
            )
        return [count(v, f"loading.steps[{i}]") for i, v in enumerate(raw)]
    return count(raw, "loading.steps")

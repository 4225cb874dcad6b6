"""Exception types: bad user input is an ``InputError``, reported without a traceback."""

from typing import Any


class InputError(ValueError):
    """Input that cannot be used: the message says what was wrong and what to do."""


class PeriodicityError(InputError):
    """An RVE mesh whose opposite faces do not match node for node."""


class MicroFailure(RuntimeError):
    """A micro problem that could not be solved: a singular cell, no convergence, a non-finite result.

    Attributes:
        point: Index of the failing macro quadrature point in the batch the micro model was
            given, when the failure belongs to one point (else None).
    """

    point: int | None = None


def point_label(index: int, points: Any, ids: Any = None) -> str:
    """How a failure names a macro quadrature point: its global index and coordinates.

    Args:
        index: Position of the point in a micro batch.
        points: Coordinates of the batch, shape ``(n, gdim)``.
        ids: Global point indices of the batch (original macro cell × points per cell +
            local point: the same on any number of ranks), or None when unknown.
    """
    x = ", ".join(f"{c:.6g}" for c in points[index])
    name = f"macro point {int(ids[index])} (global index)" if ids is not None else f"point {index}"
    return f"{name} at x = ({x})"

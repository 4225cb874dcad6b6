"""Per-point micro states of one RVE template: committed and trial rows, contiguous float64.

A macro point's state is one row of floats (design.md §8):

    | committed macro gradient (n_components) | reduced fluctuation (n_unknowns) | internal |

``internal`` is the history cell's row (every history phase's quadrature points × its law's
internal variables, concatenated; ``micro.history``). Micro solves read the committed row and
write the trial one; ``commit`` makes the trial rows committed once the macro step has
converged on every rank, ``rollback`` discards them. No object per point: two
``(n_points, width)`` arrays.
"""

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


class StateStore:
    """Committed and trial state rows of ``n_points`` macro points.

    Args:
        n_points: Macro points (rows).
        width_internal: Floats of internal variables per point.
        n_unknowns: Reduced fluctuation length of the cell.
        n_components: Macro gradient length (Mandel).

    Attributes:
        committed: The converged states, ``(n_points, width)``.
        trial: The states of the current macro iteration, ``(n_points, width)``.
    """

    def __init__(
        self, n_points: int, width_internal: int, n_unknowns: int, n_components: int
    ) -> None:
        if min(n_points, width_internal, n_unknowns, n_components) < 0:
            raise ValueError("a state store needs non-negative sizes.")
        self.n_components, self.n_unknowns = n_components, n_unknowns
        self.width_internal = width_internal
        self.width = n_components + n_unknowns + width_internal
        self.committed: Array = np.zeros((n_points, self.width))
        self.trial: Array = np.zeros((n_points, self.width))

    @property
    def n_points(self) -> int:
        """Rows held."""
        return len(self.committed)

    @property
    def nbytes(self) -> int:
        """Bytes of both buffers."""
        return int(self.committed.nbytes + self.trial.nbytes)

    def gradient(self, rows: Array) -> Array:
        """The gradient columns of ``rows`` (a view), ``(n, n_components)``."""
        return rows[:, : self.n_components]

    def fluctuation(self, rows: Array) -> Array:
        """The fluctuation columns of ``rows`` (a view), ``(n, n_unknowns)``."""
        return rows[:, self.n_components : self.n_components + self.n_unknowns]

    def internal(self, rows: Array) -> Array:
        """The internal-variable columns of ``rows`` (a view), ``(n, width_internal)``."""
        return rows[:, self.n_components + self.n_unknowns :]

    def commit(self) -> None:
        """The trial rows become the committed ones (both buffers equal afterwards)."""
        np.copyto(self.committed, self.trial)

    def rollback(self) -> None:
        """Discard the trial rows (both buffers equal to the committed rows afterwards)."""
        np.copyto(self.trial, self.committed)

    def rows(self) -> Array:
        """A copy of the committed rows, ``(n_points, width)``, for migration and restart."""
        return self.committed.copy()

    def set_rows(self, rows: Array) -> None:
        """Replace every state by ``rows`` (committed and trial), resizing to ``len(rows)``.

        Raises:
            ValueError: ``rows`` is not ``(n, width)``.
        """
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"state rows must have shape (n, {self.width}), got {rows.shape}.")
        self.committed = np.ascontiguousarray(rows).copy()
        self.trial = self.committed.copy()

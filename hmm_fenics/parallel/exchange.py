"""Moving work items to their computing ranks and the results back (Alltoallv of rows)."""

from typing import Any

import numpy as np
import numpy.typing as npt


class Exchange:
    """A fixed routing of rows between ranks, from each local row's destination.

    Args:
        comm: The communicator.
        destinations: Destination rank of each local row, shape ``(n,)``.
    """

    def __init__(self, comm: Any, destinations: npt.NDArray[np.int64]) -> None:
        self.comm = comm
        self.destinations = np.asarray(destinations, dtype=np.int64)
        self.order = np.argsort(destinations, kind="stable")  # rows grouped by destination
        self.send_counts = np.bincount(destinations, minlength=comm.size).astype(np.int64)
        self.recv_counts = np.empty(comm.size, dtype=np.int64)
        comm.Alltoall(self.send_counts, self.recv_counts)

    @property
    def n_received(self) -> int:
        """Rows this rank computes."""
        return int(self.recv_counts.sum())

    def forward(
        self, rows: npt.NDArray[np.float64], index: npt.NDArray[np.int64] | None = None
    ) -> npt.NDArray[np.float64]:
        """Send each local row to its destination; return the rows this rank computes.

        With ``index``, the local rows are ``rows[index]`` (one per destination), gathered
        straight into the send buffer: the only copy of them (``rows`` may be a read-only view).
        """
        width = int(np.prod(rows.shape[1:], dtype=np.int64))
        local = rows.reshape(len(rows), width)
        chosen = self.order if index is None else np.asarray(index, dtype=np.int64)[self.order]
        return self._move(local[chosen], self.send_counts, self.recv_counts, width)

    def backward(
        self, rows: npt.NDArray[np.float64], shape: tuple[int, ...]
    ) -> npt.NDArray[np.float64]:
        """Return computed rows to their owners, in the owners' original order."""
        width = int(np.prod(shape, dtype=np.int64))
        back = self._move(rows.reshape(len(rows), width), self.recv_counts, self.send_counts, width)
        out = np.empty_like(back)
        out[self.order] = back
        return out.reshape(len(out), *shape)

    def _move(
        self,
        rows: npt.NDArray[np.float64],
        send: npt.NDArray[np.int64],
        recv: npt.NDArray[np.int64],
        width: int,
    ) -> npt.NDArray[np.float64]:
        from mpi4py import MPI

        out = np.empty((int(recv.sum()), width), dtype=np.float64)
        send_displ = np.concatenate([[0], np.cumsum(send)[:-1]]) * width
        recv_displ = np.concatenate([[0], np.cumsum(recv)[:-1]]) * width
        self.comm.Alltoallv(
            [np.ascontiguousarray(rows), (send * width, send_displ), MPI.DOUBLE],
            [out, (recv * width, recv_displ), MPI.DOUBLE],
        )
        return out

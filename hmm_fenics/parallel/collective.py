"""Collective failure: rank-local work before a collective is done, agreed on, then raised everywhere.

A rank that raised while the others went on to the next collective (an Alltoallv, a bcast, a
barrier) would hang them all. So every piece of rank-local work that precedes a collective
goes through :func:`agree`: each rank does its part, all ranks report their failure (or none)
in one allgather, and every rank raises the failure of the lowest failing rank, with the same
message and the same exception class (an ``InputError`` stays an input error on every rank,
so the command line exits with the same code everywhere).
"""

import pickle
from collections.abc import Callable
from typing import Any

from hmm_fenics.errors import InputError, MicroFailure


def agree[T](comm: Any, work: Callable[[], T]) -> T:
    """Do rank-local ``work``, agree on failure over ``comm``, then raise on every rank.

    Every rank of ``comm`` must call this (a rank with nothing to do passes work that does
    nothing). An exception that was already agreed on over ``comm`` (raised by a nested
    ``agree`` on every rank) passes through without another collective.

    Args:
        comm: An mpi4py communicator.
        work: The rank-local work; its result is returned on success.

    Raises:
        Exception: the failure of the lowest failing rank, of its class (or the nearest of
            ``InputError``, ``MicroFailure``, ``RuntimeError`` when the class cannot travel),
            with the message ``"rank r: <message>"`` (input errors without the rank),
            identical on every rank.
    """
    try:
        value = work()
    except Exception as err:
        raise_agreed(comm, err)
        raise AssertionError("unreachable") from err  # raise_agreed always raises an error
    raise_agreed(comm, None)
    return value


def raise_agreed(comm: Any, error: Exception | None) -> None:
    """Collective: raise the first failure over ``comm`` on every rank; return if none.

    Args:
        comm: An mpi4py communicator; every rank must call this.
        error: This rank's exception, or None.
    """
    if error is not None and is_agreed(error, comm):
        raise error  # every rank holds it already: no collective
    report = None if error is None else _portable(error)
    for rank, item in enumerate(comm.allgather(report)):
        if item is not None:
            cls, message, point = item
            if not issubclass(cls, InputError):  # where a bad input was found does not matter
                message = f"rank {rank}: {message}"
            agreed = _mark(cls(message), point, comm)
            raise agreed from error
    return None


def is_agreed(error: BaseException, comm: Any) -> bool:
    """Whether ``error`` is raised on every rank of ``comm`` (it came out of :func:`agree`)."""
    from mpi4py import MPI

    over = getattr(error, "_agreed_over", None)
    return over is not None and MPI.Comm.Compare(over, comm) in (MPI.IDENT, MPI.CONGRUENT)


def with_context(error: Exception, context: str) -> Exception:
    """The same failure (class, agreement, point) with ``context`` put in front of its message."""
    cls, message, point = _portable(error)
    return _mark(cls(f"{context}: {message}"), point, getattr(error, "_agreed_over", None))


def _mark(error: Exception, point: int | None, agreed_over: Any) -> Exception:
    """``error`` with its point and the communicator it was agreed on (None: not yet)."""
    error.point = point  # type: ignore[attr-defined]
    error._agreed_over = agreed_over  # type: ignore[attr-defined]
    return error


def _portable(error: Exception) -> tuple[type[Exception], str, int | None]:
    """(class, message, point) of ``error``, with a class that pickles and takes a message."""
    cls: type[Exception] = type(error)
    message = str(error)
    try:
        pickle.dumps(cls)
        cls("probe")
    except Exception:  # a local class, or one whose constructor wants more than a message
        cls = next((c for c in (InputError, MicroFailure) if isinstance(error, c)), RuntimeError)
        message = f"{type(error).__name__}: {message}"
    return cls, message, getattr(error, "point", None)

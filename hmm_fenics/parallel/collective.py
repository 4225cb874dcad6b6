"""Collective failure: rank-local work before a collective is done, agreed on, then raised everywhere.

A rank that raised while the others went on to the next collective (an Alltoallv, a bcast, a
barrier) would hang them all. So every piece of rank-local work that precedes a collective
goes through :func:`agree`: each rank does its part, all ranks report their failure (or none)
in one allgather, and every rank raises the failure of the lowest failing rank, with the same
message and the same exception class (an ``InputError`` stays an input error on every rank,
so the command line exits with the same code everywhere).
"""

from collections.abc import Callable
from typing import Any

from hmm_fenics.errors import InputError, MicroFailure


def agree[T](comm: Any, work: Callable[[], T]) -> T:
    """Do rank-local ``work``, agree on failure over ``comm``, then raise on every rank.

    Every rank of ``comm`` must call this (a rank with nothing to do passes work that does
    nothing). An exception that was already agreed on over ``comm`` (raised by a nested
    ``agree`` on every rank) passes through without another collective. A ``SystemExit`` or
    ``KeyboardInterrupt`` in the work is agreed on too (the other ranks raise a
    ``RuntimeError`` naming it), then re-raised as it is on its own rank.

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
    except BaseException as err:
        try:
            raise_agreed(comm, err)
        except Exception:
            if not isinstance(err, Exception):  # an exit or interrupt stays what it was here
                raise err from None
            raise
        raise AssertionError("unreachable") from err  # raise_agreed always raises
    raise_agreed(comm, None)
    return value


def on_one_rank[T](comm: Any, work: Callable[[], T], root: int = 0) -> T:
    """Rank ``root`` does ``work`` (rank-0 meshing, one writer); every rank gets its result.

    The others wait in :func:`agree`, so a failure on ``root`` is raised on every rank; the
    result is then broadcast from ``root``.
    """
    return comm.bcast(agree(comm, lambda: work() if comm.rank == root else None), root=root)  # type: ignore[no-any-return]


def raise_agreed(comm: Any, error: BaseException | None) -> None:
    """Collective: raise the first failure over ``comm`` on every rank; return if none.

    Args:
        comm: An mpi4py communicator; every rank must call this.
        error: This rank's exception, or None.
    """
    if isinstance(error, Exception) and is_agreed(error, comm):
        raise error  # every rank holds it already: no collective
    # only strings travel, so that receiving never fails (a class may not import there)
    report = None if error is None else _describe(error)
    for rank, item in enumerate(comm.allgather(report)):
        if item is not None:
            kind, module, name, message, point = item
            cls, message = _rebuild(kind, module, name, message)
            if not issubclass(cls, InputError):  # where a bad input was found does not matter
                message = f"rank {rank}: {message}"
            agreed = _mark(cls(message), point if rank == comm.rank else None, comm)
            raise agreed from error
    return None


def is_agreed(error: BaseException, comm: Any) -> bool:
    """Whether ``error`` is raised on every rank of ``comm`` (it came out of :func:`agree`)."""
    from mpi4py import MPI

    over = getattr(error, "_agreed_over", None)
    return over is not None and MPI.Comm.Compare(over, comm) in (MPI.IDENT, MPI.CONGRUENT)


def with_context(error: Exception, context: str) -> Exception:
    """The same failure (class, agreement, point) with ``context`` put in front of its message."""
    kind, module, name, message, point = _describe(error)
    cls, message = _rebuild(kind, module, name, message)
    return _mark(cls(f"{context}: {message}"), point, getattr(error, "_agreed_over", None))


def _mark(error: Exception, point: int | None, agreed_over: Any) -> Exception:
    """``error`` with its point and the communicator it was agreed on (None: not yet)."""
    error.point = point  # type: ignore[attr-defined]
    error._agreed_over = agreed_over  # type: ignore[attr-defined]
    return error


_KINDS: dict[str, type[Exception]] = {
    "input": InputError,
    "micro": MicroFailure,
    "other": RuntimeError,
}
"""The nearest kind of a failure, which fixes the exit code when its class cannot travel."""


def _describe(error: BaseException) -> tuple[str, str, str, str, int | None]:
    """(kind, module, class name, message, point) of ``error``: strings that always travel."""
    kind = next((k for k, c in _KINDS.items() if isinstance(error, c) and k != "other"), "other")
    cls = type(error)
    try:  # a KeyError's str() is the repr of its key; a broken __str__ must not stop us
        message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    except Exception:
        message = f"<unprintable {cls.__name__}>"
    point = getattr(error, "point", None)
    return (
        kind,
        cls.__module__,
        cls.__qualname__,
        message,
        point if isinstance(point, int) else None,
    )


def _rebuild(kind: str, module: str, name: str, message: str) -> tuple[type[Exception], str]:
    """The class to raise here and its message.

    The original class if it imports here and takes a message, else the kind's class with
    the original class name put in front of the message.
    """
    import importlib

    try:
        found: Any = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
        if isinstance(found, type) and issubclass(found, Exception):
            found("probe")  # its constructor takes one message
            return found, message
    except Exception:  # a local class, one of another rank's modules, or another constructor
        pass
    return _KINDS[kind], f"{name.rsplit('.', 1)[-1]}: {message}"

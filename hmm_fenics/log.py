"""What the package says while it works: progress and Newton residuals on rank 0.

Every module logs to a child of the ``hmm_fenics`` logger. So that a Python user sees the
progress of a long call (``homogenize``, ``ensemble``, ``size_study``, the macro Newton of
``solve``, the load steps of ``march``) without configuring logging, importing the
package attaches one handler to that logger: it prints INFO and above, as plain lines on
stderr, on rank 0 of ``MPI.COMM_WORLD`` only — and only while the application has not
configured logging itself (once the root logger has a handler, for example after
``logging.basicConfig``, the records go there instead, once).

The switches::

    import hmm_fenics
    hmm_fenics.log.quiet()    # warnings and errors only
    hmm_fenics.log.verbose()  # and debug messages
    hmm_fenics.log.normal()   # back to progress (INFO), the default

``hmm-fenics`` (the CLI) sets the level through ``configure`` from ``--quiet``/``--verbose``.
"""

import logging
import sys
from typing import IO, Any

LOGGER = "hmm_fenics"
FORMAT = "%(message)s"


class RankZeroHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Plain lines on the current ``sys.stderr``, from rank 0 only, unless logging is set up.

    The stream is looked up at each record (not kept from import time), so that a
    redirected or captured stderr receives the lines.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(FORMAT))

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        """The stderr of the moment."""
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it
        pass

    def emit(self, record: logging.LogRecord) -> None:
        """Print ``record`` on rank 0 if nobody else will."""
        if application_configured() or world_rank() != 0:
            return
        super().emit(record)


def application_configured() -> bool:
    """Whether the root logger has a handler (``basicConfig``, the CLI, pytest)."""
    return bool(logging.getLogger().handlers)


def world_rank() -> int:
    """This process's rank in ``MPI.COMM_WORLD`` (0 without MPI initialized)."""
    module = sys.modules.get("mpi4py.MPI")
    if module is None:  # nothing imported MPI: a serial session
        return 0
    return int(module.COMM_WORLD.rank)


def install() -> None:
    """Attach the rank-0 handler to the ``hmm_fenics`` logger (once) at the INFO level."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(h, RankZeroHandler) for h in logger.handlers):
        logger.addHandler(RankZeroHandler())
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def set_level(level: int) -> None:
    """The level of every ``hmm_fenics`` message (``logging.INFO``, ``logging.WARNING``, …)."""
    logging.getLogger(LOGGER).setLevel(level)


def quiet() -> None:
    """Warnings and errors only: no progress lines."""
    set_level(logging.WARNING)


def normal() -> None:
    """Progress and Newton residuals (INFO): the default."""
    set_level(logging.INFO)


def verbose() -> None:
    """Everything, debug messages included."""
    set_level(logging.DEBUG)


def configure(level: int, rank: int) -> None:
    """The CLI's logging: plain lines on stderr at ``level`` on rank 0, errors elsewhere.

    Args:
        level: ``logging.INFO``, ``WARNING`` (``--quiet``) or ``DEBUG`` (``--verbose``).
        rank: This process's rank in ``MPI.COMM_WORLD``.

    Nothing changes where the root logger already has a handler: the application that
    set it up (or pytest) keeps its levels.
    """
    if application_configured():  # an embedding application (or pytest) decides
        return
    chosen = level if rank == 0 else logging.ERROR
    logging.basicConfig(level=chosen, format=FORMAT, stream=sys.stderr)
    set_level(chosen)

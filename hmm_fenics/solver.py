"""The FE² orchestrator: one Newton loop over the macro problem with a micro model.

One macro iteration: gradients at the owned quadrature points → micro model (flux and
consistent tangent) → pack into quadrature functions → macro assemble + solve → collective
convergence check (the norms are global).
"""

import logging
import sys
import time
from functools import partial
from typing import Any, NamedTuple

from mpi4py import MPI

from hmm_fenics.coupling.micro_models import MicroModel
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.micro.cell_problem import MicroResponse
from hmm_fenics.parallel.collective import agree, with_context

log = logging.getLogger(__name__)


TIMERS = ("hmm: micro solve", "hmm: exchange", "hmm: macro assemble", "hmm: macro solve")


def timing_summary(comm: Any) -> str:
    """A table of the ``hmm:`` timer sections: calls, and max/mean wall seconds over ranks."""
    from dolfinx.common import timing

    lines = [f"{'section':22s} {'calls':>6s} {'max [s]':>9s} {'mean [s]':>9s}"]
    for name in TIMERS:
        try:
            calls, wall = timing(name)
        except RuntimeError:  # never started on this rank
            calls, seconds = 0, 0.0
        else:
            seconds = wall.total_seconds()
        everywhere = comm.allgather(seconds)
        lines.append(
            f"{name:22s} {calls:6d} {max(everywhere):9.3f} {sum(everywhere) / len(everywhere):9.3f}"
        )
    return "\n".join(lines)


class SolveResult(NamedTuple):
    """How the macro Newton loop went.

    Attributes:
        iterations: Newton steps taken.
        residuals: ‖R‖ before each step, then the final one.
        timings: Seconds in ``micro`` and ``macro`` work (this rank).
        imbalance: Per macro iteration, max/mean over ranks of the micro time.
    """

    iterations: int
    residuals: list[float]
    timings: dict[str, float]
    imbalance: list[float]


def solve(
    problem: MacroProblem,
    model: MicroModel,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_iterations: int = 25,
    progress: bool = True,
) -> SolveResult:
    """Newton on the macro residual with the micro model's consistent tangent.

    Converged when ‖R‖ ≤ max(atol, rtol max(‖R_0‖, ‖F‖)) after a step, where R_0 is the
    residual at the start (Dirichlet values applied, flux of the initial state) and F the
    assembled force vector with the Dirichlet rows (``MacroProblem.force_scale``): after an
    exact predictor R_0 is round-off, and F keeps the test relative in any units. With ``progress``, rank 0
    reports each macro iteration (micro cells done, imbalance, time): a status line that
    updates in place on a terminal, plain log lines otherwise.

    Raises:
        RuntimeError: no convergence in ``max_iterations`` steps (on every rank).
        MicroFailure: a micro solve failed on some rank (or another error of a micro
            model, of its own class): every rank raises the same message, naming the macro
            iteration, the rank, and the global index and coordinates of the point.
    """
    from dolfinx.common import Timer

    problem.apply_dirichlet()
    points = problem.quadrature.coordinates()
    ids = problem.quadrature.global_ids()
    comm = problem.mesh.mesh.comm
    timings = {"micro": 0.0, "macro": 0.0}
    residuals: list[float] = []
    imbalance: list[float] = []
    for iteration in range(max_iterations + 1):
        start = time.perf_counter()
        gradients = problem.gradients()
        with Timer("hmm: micro solve"):
            try:  # a failure on any rank is raised on every rank, in the same words
                response, own_seconds = agree(comm, partial(_timed, model, gradients, points, ids))
            except Exception as err:
                raise with_context(err, f"macro Newton iteration {iteration}") from err
        micro_seconds = time.perf_counter() - start  # with the wait for the slowest rank
        # the rank's own micro work, without agree's closing collective (which would make
        # every rank's time the slowest one's); a model that moves points measures its own
        ratio = _imbalance(comm, own_seconds, getattr(model, "imbalance", None))
        imbalance.append(ratio)
        if progress:
            cells = comm.allreduce(len(points))
            status = _status(iteration, cells, ratio, comm.allreduce(micro_seconds, op=MPI.MAX))
        problem.quadrature.store(response.flux, response.tangent)
        timings["micro"] += time.perf_counter() - start
        start = time.perf_counter()
        with Timer("hmm: macro assemble"):
            norm = problem.residual_norm()
        residuals.append(norm)
        if progress:
            _report(comm, f"{status}, |R| = {norm:.3e}")
        # relative to the first residual or to the forces (reactions included), whichever is
        # larger: after an exact predictor (an elastic step) the first residual is round-off
        scale = max(residuals[0], problem.force_scale)
        if iteration > 0 and norm <= max(atol, rtol * scale):
            timings["macro"] += time.perf_counter() - start
            if comm.rank == 0 and progress:
                if sys.stderr.isatty() and log.isEnabledFor(logging.INFO):
                    sys.stderr.write("\n")  # end the in-place status line
                log.info("macro Newton converged: |R| = %.3e after %d step(s)", norm, iteration)
            return SolveResult(iteration, residuals, timings, imbalance)
        if iteration == max_iterations:
            break
        with Timer("hmm: macro solve"):
            step = problem.newton_step()
        timings["macro"] += time.perf_counter() - start
        if comm.rank == 0 and progress and not sys.stderr.isatty():
            log.info("macro Newton %d: |R| = %.3e, |du| = %.3e", iteration, norm, step)
    final = residuals[-1]
    raise RuntimeError(
        f"macro Newton did not converge in {max_iterations} iterations: |R| = {final:.3e} "
        f"(start {residuals[0]:.3e}); residuals {[f'{r:.2e}' for r in residuals]}."
    )


def _timed(model: MicroModel, gradients: Any, points: Any, ids: Any) -> tuple[MicroResponse, float]:
    """``model.respond`` and the seconds this rank spent in it."""
    start = time.perf_counter()
    response = model.respond(gradients, points, ids)
    return response, time.perf_counter() - start


def _imbalance(comm: Any, seconds: float, measured: float | None) -> float:
    """max/mean over ranks of the micro time (or the model's own measurement)."""
    times = comm.allgather(seconds)
    mean = sum(times) / len(times)
    if measured is not None:
        return measured
    return max(times) / mean if mean > 0 else 1.0


def _status(iteration: int, cells: int, ratio: float, seconds: float) -> str:
    """The progress line of a macro iteration (its residual is appended when known)."""
    return (
        f"macro iteration {iteration}: micro cells {cells}/{cells}, "
        f"imbalance max/mean {ratio:.2f}, micro {seconds:.2f} s"
    )


def _report(comm: Any, line: str) -> None:
    """Rank 0 only: in place on a terminal (if logging is on), a log line otherwise."""
    if comm.rank != 0:
        return
    if sys.stderr.isatty() and log.isEnabledFor(logging.INFO):
        sys.stderr.write("\r" + line.ljust(100))
        sys.stderr.flush()
    else:
        log.info(line)

"""The FE² orchestrator: one Newton loop over the macro problem with a micro model.

One macro iteration: gradients at the owned quadrature points → micro model (flux and
consistent tangent) → pack into quadrature functions → macro assemble + solve → collective
convergence check (the norms are global).
"""

import logging
import time
from typing import NamedTuple

from hmm_fenics.coupling.micro_models import MicroModel
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.micro.nonlinear import MicroNewtonError
from hmm_fenics.parallel.collective import first_failure

log = logging.getLogger(__name__)


class SolveResult(NamedTuple):
    """How the macro Newton loop went.

    Attributes:
        iterations: Newton steps taken.
        residuals: ‖R‖ before each step, then the final one.
        timings: Seconds in ``micro`` and ``macro`` work.
    """

    iterations: int
    residuals: list[float]
    timings: dict[str, float]


def solve(
    problem: MacroProblem,
    model: MicroModel,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_iterations: int = 25,
) -> SolveResult:
    """Newton on the macro residual with the micro model's consistent tangent.

    Converged when ‖R‖ ≤ max(atol, rtol ‖R_0‖) after a step, where R_0 is the residual at
    the start (Dirichlet values applied, flux of the initial state).

    Raises:
        RuntimeError: no convergence in ``max_iterations`` steps (on every rank).
        MicroNewtonError: a micro solve failed on some rank: every rank raises the same
            message, naming the rank, the macro iteration, cell, point and gradient.
    """
    from dolfinx.common import Timer

    problem.apply_dirichlet()
    points = problem.quadrature.coordinates()
    timings = {"micro": 0.0, "macro": 0.0}
    residuals: list[float] = []
    for iteration in range(max_iterations + 1):
        start = time.perf_counter()
        with Timer("hmm: micro solve"):
            failure: BaseException | None = None
            try:
                response = model.respond(problem.gradients(), points)
            except Exception as err:  # any micro failure: agreed on by all ranks below
                failure = _locate(err, problem, iteration)
        failed = first_failure(problem.mesh.mesh.comm, failure)
        if failed is not None:
            raise MicroNewtonError(f"micro failure on {failed}") from failure
        problem.quadrature.store(response.flux, response.tangent)
        timings["micro"] += time.perf_counter() - start
        start = time.perf_counter()
        with Timer("hmm: macro assemble"):
            norm = problem.residual_norm()
        residuals.append(norm)
        if iteration > 0 and norm <= max(atol, rtol * residuals[0]):
            timings["macro"] += time.perf_counter() - start
            log.info("macro Newton converged: |R| = %.3e after %d step(s)", norm, iteration)
            return SolveResult(iteration, residuals, timings)
        if iteration == max_iterations:
            break
        with Timer("hmm: macro solve"):
            step = problem.newton_step()
        timings["macro"] += time.perf_counter() - start
        log.info("macro Newton %d: |R| = %.3e, |du| = %.3e", iteration, norm, step)
    final = residuals[-1]
    raise RuntimeError(
        f"macro Newton did not converge in {max_iterations} iterations: |R| = {final:.3e} "
        f"(start {residuals[0]:.3e}); residuals {[f'{r:.2e}' for r in residuals]}."
    )


def _locate(error: Exception, problem: MacroProblem, iteration: int) -> Exception:
    """The error, with the macro iteration and, when known, the macro cell and point."""
    where = ""
    point = getattr(error, "point", None)
    if point is not None:
        cell, local = divmod(point, problem.quadrature.n_qp)
        where = f", macro cell {cell} (local index), its point {local}"
    return type(error)(f"macro Newton iteration {iteration}{where}: {error}")

"""Time stepping: a load path marched in steps, states committed or rolled back, steps cut.

A :class:`LoadPath` is a piecewise-linear load factor in time, ``[(t0, f0), (t1, f1), ...]``,
and the step end times. :func:`march` takes the macro problem along it: at each step the
prescribed values (Dirichlet, Neumann, source) are set to the factor at the step's end time,
the micro model is told the step (``begin_step(time, dt)``), and the FE² Newton
(:func:`hmm_fenics.solver.solve`) runs. Converged (which every rank knows alike: the
solver agrees on failures and its norms are global) → the model commits its states and the
step's results are recorded. Failed (a micro failure or a macro Newton that did not
converge) → the model rolls back to its committed states, the macro displacement is
restored, and the step is retried with Δt halved, at most ``max_cuts`` times per step; then
the run stops with a message naming the step, the time and (from the micro failure) the
point. The body starts unloaded at u = 0 at the path's first time.

History is optional: a model without ``begin_step``/``commit``/``rollback`` (a linear cell,
a path-independent nonlinear cell) is marched alike.

Energy bookkeeping per step (cumulative, trapezoidal in each step):

* external work: ½ (r_n + r_{n+1}) · Δu over the Dirichlet dofs (the support forces r, the
  residual there, times the prescribed displacement increments) plus ½ (F_n + F_{n+1}) · Δu
  of the Neumann and source loads F;
* internal work: Σ_q w_q ½ (σ_n + σ_{n+1}) : (ε_{n+1} − ε_n) at the macro quadrature points;
* stored and dissipated energy: Σ_q w_q of the model's per-point cell averages
  (``averages()["stored_energy"]``, ``["dissipation"]``), when it reports them.

At equilibrium the external and internal work agree to the Newton tolerance (the same
residual, tested with Δu); external work = stored + dissipated holds to the error of the
trapezoidal rule, O(Δt²) per step where σ(ε) is smooth along the step (exact for a linear
response; a step that crosses the yield point contributes a first-order error).
"""

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from mpi4py import MPI

import numpy as np
import numpy.typing as npt

from hmm_fenics.coupling.micro_models import MicroModel
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.parallel.collective import agree, with_context
from hmm_fenics.solver import SolveResult, solve

log = logging.getLogger(__name__)

MAX_CUTS = 6
"""Default: Δt is halved at most this many times per step (a step of 1/64 of its length)."""


@dataclass(frozen=True)
class LoadPath:
    """A piecewise-linear load factor in time and the end times of the steps along it.

    Attributes:
        points: ``(time, factor)`` vertices, times strictly increasing.
        times: End time of each step, strictly increasing, the last one the path's end;
            the first step starts at ``points[0][0]``.
        max_cuts: How many times a failed step's Δt may be halved.
    """

    points: tuple[tuple[float, float], ...]
    times: tuple[float, ...]
    max_cuts: int = MAX_CUTS

    @property
    def start(self) -> float:
        """The time of the unloaded initial state."""
        return self.points[0][0]

    def factor(self, time: float) -> float:
        """The load factor at ``time`` (linear between vertices, constant outside)."""
        t = [p[0] for p in self.points]
        f = [p[1] for p in self.points]
        return float(np.interp(time, t, f))


def load_path(
    points: Sequence[Sequence[float]],
    steps: int | Sequence[int] | None = None,
    dt: float | None = None,
    max_cuts: int = MAX_CUTS,
) -> LoadPath:
    """A :class:`LoadPath` with ``steps`` per segment, or steps of at most ``dt``.

    ``steps``: one int for all segments, or one per segment; ``dt``: each segment is split
    evenly, so that every vertex is a step end.

    Input is assumed valid (``hmm_fenics.run.loading`` checks a run file's); a ``ValueError``
    guards misuse.
    """
    vertices = tuple((float(t), float(f)) for t, f in points)
    lengths = [b[0] - a[0] for a, b in itertools.pairwise(vertices)]
    if len(vertices) < 2 or min(lengths) <= 0:
        raise ValueError(f"a load path needs ≥ 2 points with increasing times, got {points!r}.")
    if (steps is None) == (dt is None):
        raise ValueError("give either steps or dt.")
    if dt is not None:
        counts = [max(1, math.ceil(length / dt - 1e-9)) for length in lengths]
    elif isinstance(steps, int):
        counts = [steps] * len(lengths)
    else:
        assert steps is not None
        counts = [int(n) for n in steps]
    if len(counts) != len(lengths) or min(counts) < 1:
        raise ValueError(f"steps {counts} do not fit the {len(lengths)} segments.")
    times: list[float] = []
    for (t0, _), (t1, _), n in zip(vertices, vertices[1:], counts, strict=False):
        times.extend(t0 + (t1 - t0) * k / n for k in range(1, n))
        times.append(t1)  # a vertex exactly
    return LoadPath(vertices, tuple(times), max_cuts)


def ramp(steps: int) -> LoadPath:
    """The classic load ramp: factor 0 → 1 over time 0 → 1 in ``steps`` equal steps."""
    return load_path([(0.0, 0.0), (1.0, 1.0)], steps)


class Resume(NamedTuple):
    """Where a resumed march goes on (``hmm_fenics.run.restart``).

    The macro solution, the stored flux and tangent and the committed micro states are in
    place already; the march starts with step ``step + 1``.

    Attributes:
        step: The last completed step.
        external_work, internal_work: The cumulative energies at its end.
    """

    step: int
    external_work: float
    internal_work: float


class Increment(NamedTuple):
    """One converged increment of the march (a step, or part of a cut step).

    Attributes:
        step: Index of the path step it belongs to (1-based).
        time, factor, dt: End time, load factor there, and the increment's Δt.
        cutbacks: Failed attempts (Δt halvings) in this step before this increment converged.
        solve: How the macro Newton went.
        record: The results of the increment (see :func:`march`), JSON-ready.
    """

    step: int
    time: float
    factor: float
    dt: float
    cutbacks: int
    solve: SolveResult
    record: dict[str, Any]


def march(
    problem: MacroProblem,
    model: MicroModel,
    path: LoadPath,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_iterations: int = 25,
    progress: bool = True,
    on_increment: Callable[[Increment], None] | None = None,
    resume: Resume | None = None,
) -> list[Increment]:
    """March ``problem`` along ``path`` with commit, roll-back and cut-back (collective).

    Each converged increment's ``record`` holds: ``step``, ``time``, ``factor``, ``dt``,
    ``cutbacks``, ``iterations`` (macro Newton), ``residuals``, ``imbalance``,
    ``reactions`` (per Dirichlet boundary and component, as ``MacroProblem.reactions``),
    ``external_work``, ``internal_work`` (cumulative), ``stored_energy`` and
    ``dissipated_energy`` (None when the model has no ``averages()``), and
    ``micro_iterations`` ``{"max", "mean"}`` of the final macro iteration (None when the
    model does not count), ``micro_solves`` (the model's ``solve_counts`` of the step summed
    over the ranks: points by Newton, by shortcut, by prediction, factorizations; None
    without them; also on the progress line). ``on_increment`` is called (on every rank)
    after each commit. ``resume``: go on after a checkpointed step (the state restored
    already); the returned list then holds the new increments only.

    Raises:
        MicroFailure, RuntimeError: a step still failed after ``path.max_cuts`` halvings of
            Δt: the message names the step, the time and the failure (for a micro failure,
            the point); the same class and message on every rank.
    """
    comm = problem.mesh.mesh.comm
    ledger = Ledger(problem, model)
    inner = getattr(model, "inner", model)
    predictor = Predictor(problem, model) if hasattr(inner, "begin_step") else None
    done: list[Increment] = []
    time, first = path.start, 1
    if resume is not None:
        time, first = path.times[resume.step - 1], resume.step + 1
        ledger.restart(path.factor(time), resume.external_work, resume.internal_work)
        if predictor is not None:
            predictor.ready = True  # the converged flux and tangent are restored
    for step, end in enumerate(path.times, start=1):
        if step < first:
            continue
        dt, cuts = end - time, 0
        while time < end:
            target = min(time + dt, end)
            if end - target < 1e-12 * max(abs(end), 1.0):
                target = end  # no sliver step from round-off
            factor = path.factor(target)
            if comm.rank == 0 and len(path.times) > 1:
                log.info(
                    "step %d/%d: t = %.6g, factor %.6g, dt %.3g%s",
                    step,
                    len(path.times),
                    target,
                    factor,
                    target - time,
                    f" (cut {cuts})" if cuts else "",
                )
            saved = problem.u.x.array.copy()
            if predictor is not None:
                predictor.save()
            try:
                result = _attempt(
                    problem, model, target, target - time, factor,
                    rtol, atol, max_iterations, progress, predictor,
                )  # fmt: skip
            except RuntimeError as err:  # MicroFailure is one; InputError is not
                _call(model, "rollback")
                problem.u.x.array[:] = saved
                problem.u.x.scatter_forward()
                if predictor is not None:
                    predictor.restore()
                cuts += 1
                if cuts > path.max_cuts:
                    raise with_context(
                        err,
                        f"step {step} (t = {time:.6g} → {end:.6g}) failed at t = {target:.6g} "
                        f"after {path.max_cuts} cut-backs of the time step (Δt = "
                        f"{target - time:.3g}); lower the step or raise loading.max_cuts",
                    ) from err
                if comm.rank == 0:
                    log.warning(
                        "step %d failed at t = %.6g (%s); retrying with dt = %.3g",
                        step,
                        target,
                        str(err).splitlines()[0][:200],
                        (target - time) / 2,
                    )
                dt = (target - time) / 2
                continue
            # commit does rank-local work (a return mapping per point) before the next
            # collectives: a failure on one rank is raised on all (design.md §6)
            agree(comm, lambda: _call(model, "commit"))
            record = {
                "step": step,
                "time": target,
                "factor": factor,
                "dt": target - time,
                "cutbacks": cuts,
                "iterations": result.iterations,
                "residuals": result.residuals,
                "imbalance": result.imbalance,
                **ledger.update(factor),
                "micro_iterations": micro_iterations(comm, getattr(model, "iterations", None)),
                "micro_solves": micro_solves(comm, getattr(model, "solve_counts", None)),
            }
            if comm.rank == 0 and progress and record["micro_solves"] is not None:
                log.info("step %d: micro points %s", step, solves_line(record["micro_solves"]))
            increment = Increment(step, target, factor, target - time, cuts, result, record)
            done.append(increment)
            time = target
            if on_increment is not None:
                on_increment(increment)
    return done


def _attempt(
    problem: MacroProblem,
    model: MicroModel,
    time: float,
    dt: float,
    factor: float,
    rtol: float,
    atol: float,
    max_iterations: int,
    progress: bool,
    predict: Callable[[], None] | None,
) -> SolveResult:
    problem.set_load(factor)
    begin = getattr(model, "begin_step", None)
    if begin is not None:
        begin(time, dt)
    if predict is not None:
        predict()
    return solve(
        problem, model, rtol=rtol, atol=atol, max_iterations=max_iterations, progress=progress
    )


class Predictor:
    """The tangent predictor of a history model's step (a callable; collective).

    Before the step's Newton, one linear solve with the last converged tangent and flux
    takes the prescribed increments into the interior (J δ = −R(u_n), δ = ū_{n+1} − u_n on
    the Dirichlet dofs). Without it the first micro solves would see the increment as a
    strain spike in the boundary elements, which yields them in the trial state, and the
    macro Newton of a plastic material can cycle. The first step gets the tangent of the
    unloaded state from one micro response at u = 0.
    """

    def __init__(self, problem: MacroProblem, model: MicroModel) -> None:
        self.problem, self.model = problem, model
        self.ready = False
        self.saved: tuple[Any, Any, bool] | None = None

    def __call__(self) -> None:
        """Move u by the tangent predictor (the load factor and BCs are already set)."""
        from hmm_fenics.parallel.collective import agree

        problem = self.problem
        q = problem.quadrature
        if not self.ready:
            points, ids = q.coordinates(), q.global_ids()
            gradients = problem.gradients()
            response = agree(
                problem.mesh.mesh.comm, lambda: self.model.respond(gradients, points, ids)
            )
            q.store(response.flux, response.tangent)
            self.ready = True
        problem.residual_norm()
        problem.newton_step()

    def save(self) -> None:
        """Keep the converged flux and tangent (a failed attempt overwrites them)."""
        q = self.problem.quadrature
        self.saved = (q.flux.x.array.copy(), q.tangent.x.array.copy(), self.ready)

    def restore(self) -> None:
        """Back to the converged flux and tangent."""
        if self.saved is None:
            return
        q = self.problem.quadrature
        # a failed first step restores "no tangent yet": the retry asks the model again
        q.flux.x.array[:], q.tangent.x.array[:], self.ready = self.saved


def _call(model: Any, name: str) -> None:
    """``model.name()`` when the model has that history method."""
    method = getattr(model, name, None)
    if method is not None:
        method()


def micro_iterations(comm: Any, iterations: Any) -> dict[str, float] | None:
    """Max and mean over all ranks' points of per-point micro Newton counts (collective)."""
    has = comm.allreduce(iterations is not None, op=MPI.LOR)
    if not has:
        return None
    counts = np.asarray([] if iterations is None else iterations, dtype=np.float64)
    top = comm.allreduce(float(counts.max()) if len(counts) else 0.0, op=MPI.MAX)
    total = comm.allreduce(float(counts.sum()), op=MPI.SUM)
    n = comm.allreduce(len(counts), op=MPI.SUM)
    return {"max": top, "mean": total / n if n else 0.0}


def micro_solves(comm: Any, counts: Any) -> dict[str, int] | None:
    """A model's ``solve_counts`` of the step summed over all ranks (collective)."""
    if not comm.allreduce(counts is not None, op=MPI.LOR):
        return None
    names = sorted(set().union(*comm.allgather(set(counts or {}))))
    mine = np.array([float((counts or {}).get(name, 0)) for name in names])
    total = np.zeros_like(mine)
    comm.Allreduce(mine, total, op=MPI.SUM)
    return {name: int(value) for name, value in zip(names, total, strict=True)}


def solves_line(counts: dict[str, int]) -> str:
    """``micro_solves`` for the progress line."""
    parts = [f"{counts.get('newton', 0)} by Newton", f"{counts.get('shortcut', 0)} by shortcut"]
    if counts.get("predicted", 0):
        parts.append(f"{counts['predicted']} by prediction")
    line = ", ".join(parts) + f"; {counts.get('factorizations', 0)} factorizations"
    if counts.get("krylov_iterations", 0):
        line += f", {counts['krylov_iterations']} CG iterations"
    return line


class Ledger:
    """The energy bookkeeping of the march (see the module docstring); collective updates.

    Args:
        problem: The macro problem (its stored flux, displacement, forms and Dirichlet dofs).
        model: The micro model (``averages()`` if it has one).
    """

    def __init__(self, problem: MacroProblem, model: MicroModel) -> None:
        self.problem, self.model = problem, model
        q = problem.quadrature
        self.weights = q.weights()
        n = problem.physics.n_components
        self.flux, self.gradient = np.zeros((q.n_points, n)), np.zeros((q.n_points, n))
        dofmap = problem.V.dofmap
        self.owned = dofmap.index_map.size_local * dofmap.index_map_bs
        dofs = [bc.dof_indices() for bc in problem.bcs]
        self.supports = np.unique(
            np.concatenate([d[:first] for d, first in dofs] or [np.zeros(0, np.int32)])
        )
        self.u = np.zeros(self.owned)
        self.forces = np.zeros(len(self.supports))  # support forces r at the Dirichlet dofs
        self.loads = np.zeros(self.owned)  # Neumann and source loads F
        self.external = self.internal = 0.0

    def restart(self, factor: float, external: float, internal: float) -> None:
        """Go on from a restored converged state at ``factor`` with these cumulative works."""
        self.problem.set_load(factor)
        self._close()
        self.external, self.internal = external, internal

    def update(self, factor: float) -> dict[str, Any]:
        """Close the step that just converged at ``factor``; the cumulative energies."""
        problem, comm = self.problem, self.problem.mesh.mesh.comm
        external, internal = self._close()
        self.external += comm.allreduce(float(external), op=MPI.SUM)
        self.internal += comm.allreduce(float(internal), op=MPI.SUM)
        stored = dissipated = viscous = None
        averages = getattr(self.model, "averages", None)
        if comm.allreduce(averages is not None, op=MPI.LAND):
            assert averages is not None
            values = averages()
            stored = self._integral(values.get("stored_energy"))
            dissipated = self._integral(values.get("dissipation"))
            viscous = self._integral(values.get("viscous_dissipation"))
        plastic = dissipated - viscous if dissipated is not None and viscous is not None else None
        return {
            "reactions": problem.reactions(),
            "external_work": self.external,
            "internal_work": self.internal,
            "stored_energy": stored,
            "dissipated_energy": dissipated,
            # of which by plasticity and by viscosity (the law's `dissipates`)
            "plastic_dissipation": plastic,
            "viscous_dissipation": viscous if plastic is not None else None,
        }

    def _close(self) -> tuple[float, float]:
        """This rank's work increments since the last close; the state becomes the last one."""
        problem = self.problem
        flux, gradient = problem.quadrature.values(), problem.gradients()
        u = problem.u.x.array[: self.owned].copy()
        du = u - self.u
        residual = _assembled(problem.residual_form)[: self.owned]
        forces = residual[self.supports]
        loads = (
            _assembled(problem.load_form)[: self.owned]
            if problem.load_form is not None
            else np.zeros(self.owned)
        )
        external = (
            0.5 * (self.forces + forces) @ du[self.supports] + 0.5 * (self.loads + loads) @ du
        )
        internal = 0.5 * np.einsum(
            "p,pi,pi->", self.weights, self.flux + flux, gradient - self.gradient
        )
        self.flux, self.gradient, self.u, self.forces, self.loads = flux, gradient, u, forces, loads
        return float(external), float(internal)

    def _integral(self, density: npt.NDArray[np.float64] | None) -> float | None:
        """Σ_q w_q density_q over all ranks (None when some rank has no such average)."""
        comm = self.problem.mesh.mesh.comm
        if not comm.allreduce(density is not None, op=MPI.LAND):
            return None
        assert density is not None
        return float(comm.allreduce(float(self.weights @ np.asarray(density)), op=MPI.SUM))


def _assembled(form: Any) -> npt.NDArray[np.float64]:
    """The assembled vector of a linear form, owned and ghost contributions summed (a copy)."""
    from petsc4py import PETSc

    from dolfinx.fem import petsc as fem_petsc

    vector = fem_petsc.assemble_vector(form)
    vector.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    values = np.array(vector.array, dtype=np.float64)
    vector.destroy()
    return values

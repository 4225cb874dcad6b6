"""Micro models: what answers a macro quadrature point (flux and tangent for a gradient).

One protocol, three linear implementations that share the cell-problem machinery:
``EffectiveModel`` (the fast path: one effective tensor for the whole part),
``CellModel`` (the cell problem answers every point: C_hom G from its unit solutions), and
``GradedModel`` (the RVE depends on the macro position; one cached cell per distinct RVE).
"""

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

from mpi4py import MPI

import numpy as np
import numpy.typing as npt

from hmm_fenics.materials import Material
from hmm_fenics.micro.cell_problem import CellProblem, MicroResponse, cell_problem, check_finite
from hmm_fenics.parallel.collective import agree
from hmm_fenics.parallel.exchange import Exchange
from hmm_fenics.parallel.schedule import plan
from hmm_fenics.physics import Physics
from hmm_fenics.rve.mesh import build_rve
from hmm_fenics.rve.spec import RVESpec

MIGRATION_BLOCK_BYTES = 2**20
"""The rows that stay on their computing rank at a replan are copied into the new array in
blocks of at most this many bytes (at least one row): a bounded temporary."""


class MicroModel(Protocol):
    """Answers macro quadrature points.

    ``ids`` are the global indices of the points (``QuadratureFields.global_ids``), the same
    on any number of ranks: a model names a failing point by them (``MicroFailure.point``
    holds its position in the batch).
    """

    def respond(
        self,
        gradients: npt.NDArray[np.float64],
        points: npt.NDArray[np.float64],
        ids: npt.NDArray[np.int64] | None = None,
    ) -> MicroResponse:
        """Flux ``(n, c)`` and tangent ``(n, c, c)`` for gradients ``(n, c)`` at points ``(n, gdim)``."""
        ...


class HistoryModel(MicroModel, Protocol):
    """A micro model whose points remember their loading history (design.md §8).

    Each point has a committed state (what its next solve starts from: for a history cell the
    gradient and the internal variables, the fluctuation derived from them) and a trial state.
    ``respond`` solves every point from its **committed** state and writes the trial one, so
    that its answer depends on (committed state, gradient) only, never on an earlier trial.
    The time stepper (``hmm_fenics.stepping.march``) calls ``begin_step`` before each attempt
    of a step, ``commit`` once the step converged on every rank, ``rollback`` when it failed.
    All these methods are optional for a micro model: a model without them has no history.

    State rows: one row of ``state_width()`` float64 per point (committed state, opaque to
    the caller), in the order of the points of the last ``respond``; they travel with their
    points when the balanced schedule replans, and go into checkpoints.
    """

    iterations: Any
    """Micro Newton iterations per point in the last ``respond``, ``(n,)``."""

    last_costs: npt.NDArray[np.float64] | None
    """Seconds per point in the last ``respond`` (for the balanced schedule)."""

    def begin_step(self, time: float, dt: float) -> None:
        """The next responds belong to the step ending at ``time``, of length ``dt`` (> 0)."""
        ...

    def commit(self) -> None:
        """Trial states (of the last ``respond``) become the committed ones."""
        ...

    def rollback(self) -> None:
        """Discard the trial states; the committed ones stay as they were."""
        ...

    def state_width(self) -> int:
        """Floats per point of a committed state row (the same on every rank)."""
        ...

    def state_rows(self) -> npt.NDArray[np.float64]:
        """The committed states, ``(n_points, state_width())``, a copy."""
        ...

    def set_state_rows(self, rows: npt.NDArray[np.float64]) -> None:
        """Replace the points and their committed (and trial) states by ``rows``."""
        ...

    def averages(self) -> dict[str, npt.NDArray[np.float64]]:
        """Per-point cell averages of the last ``respond``, each ``(n,)``.

        ``"stored_energy"`` and ``"dissipation"`` (energy densities), ``"plastic_strain"``
        (equivalent), ``"sigma33"`` (plane strain), those the model has.
        """
        ...


def has_history(model: Any) -> bool:
    """Whether ``model`` keeps per-point states that travel with their points."""
    return all(hasattr(model, name) for name in ("state_rows", "set_state_rows", "commit"))


class EffectiveModel:
    """The fast path for a linear template: flux = C_hom G with one tensor everywhere."""

    def __init__(self, tensor: npt.NDArray[np.float64]) -> None:
        self.tensor = np.asarray(tensor, dtype=np.float64)

    def respond(
        self,
        gradients: npt.NDArray[np.float64],
        points: npt.NDArray[np.float64],
        ids: npt.NDArray[np.int64] | None = None,
    ) -> MicroResponse:
        """C_hom G at every point; the tangent is C_hom."""
        n = len(gradients)
        return MicroResponse(
            gradients @ self.tensor.T, np.broadcast_to(self.tensor, (n, *self.tensor.shape))
        )


class CellModel:
    """The cell problem of one template answers every point.

    A linear cell answers from its unit solutions (``CellProblem.query``: C_hom G, no solve
    per point); the response is checked to be finite point by point.
    """

    def __init__(self, cell: CellProblem) -> None:
        self.cell = cell

    def respond(
        self,
        gradients: npt.NDArray[np.float64],
        points: npt.NDArray[np.float64],
        ids: npt.NDArray[np.int64] | None = None,
    ) -> MicroResponse:
        """The averaged flux and tangent of every point's gradient."""
        if len(gradients) == 0:
            n = self.cell.physics.n_components
            return MicroResponse(np.zeros((0, n)), np.zeros((0, n, n)))
        return check_finite(self.cell.query(gradients), gradients, points, ids)


class GradedModel:
    """Spatially varying microstructure: ``rve_at(x)`` gives the RVE spec at a macro point.

    Cell problems are built once per distinct spec (specs are hashable) and reused; points
    sharing a spec are answered in one batch. Round the parameters in ``rve_at`` (e.g. a
    fibre fraction to 0.01) to bound the number of templates.
    """

    def __init__(
        self,
        rve_at: Callable[[npt.NDArray[np.float64]], RVESpec],
        physics: Physics,
        materials: Mapping[str, Material],
        degree: int = 1,
        petsc_options: Mapping[str, Any] | None = None,
        bc: str = "periodic",
        oversampling: float | None = None,
    ) -> None:
        self.rve_at, self.physics, self.materials = rve_at, physics, materials
        self.degree, self.petsc_options = degree, petsc_options
        self.bc, self.oversampling = bc, oversampling
        self.cells: dict[RVESpec, CellProblem] = {}

    def cell(self, spec: RVESpec) -> CellProblem:
        """The cached cell problem of ``spec``."""
        if spec not in self.cells:
            self.cells[spec] = cell_problem(
                self.physics,
                build_rve(spec),
                self.materials,
                self.degree,
                self.petsc_options,
                self.bc,
                self.oversampling,
            )
        return self.cells[spec]

    def respond(
        self,
        gradients: npt.NDArray[np.float64],
        points: npt.NDArray[np.float64],
        ids: npt.NDArray[np.int64] | None = None,
    ) -> MicroResponse:
        """Group the points by their RVE and query each template once."""
        n = self.physics.n_components
        flux = np.zeros((len(gradients), n))
        tangent = np.zeros((len(gradients), n, n))
        specs = [self.rve_at(x) for x in points]
        groups: dict[RVESpec, list[int]] = {}
        for i, spec in enumerate(specs):
            groups.setdefault(spec, []).append(i)
        for spec, members in groups.items():
            response = self.cell(spec).query(gradients[members])
            flux[members], tangent[members] = response.flux, response.tangent
        return check_finite(MicroResponse(flux, tangent), gradients, points, ids)


class BalancedModel:
    """Computes each rank's points where the measured micro cost is balanced.

    The first call plans with unit costs (balancing point counts); later calls reuse the
    routing, with the costs measured on the computing ranks sent back to the owners, and
    replan when the measured imbalance (max/mean of the per-rank micro time) exceeds
    ``replan_above``. Only per-rank totals are reduced: no rank sees all points.
    ``rows_sent`` counts the state (or warm start) rows this rank sent to another rank.

    The plan deals each rank's points over all ranks before cutting by cost
    (``parallel.schedule``, ``mix``): the costs it knows are those of the last answer, and
    in a history-dependent run the costs of the first iteration of a load step change in
    clusters (points near a hole start or stop yielding), which dealt points share evenly.

    Args:
        inner: The micro model that computes the points (its per-point costs are taken from
            ``inner.last_costs`` when it has them, else spread evenly).
        comm: The macro communicator.
        replan_above: Imbalance that triggers a new plan (a replan moves the states of the
            re-routed points straight to their new computing ranks: ~2 ms measured for 37
            rows of the plastic demo's cell, against 30–700 ms of micro work per answer;
            with dealt points the first plan usually suffices).
        mix: Deal the points over all ranks (True) or shift the rank-by-rank order
            (False: points move only to neighbouring ranks).
    """

    def __init__(
        self, inner: MicroModel, comm: Any, replan_above: float = 1.15, mix: bool = True
    ) -> None:
        self.inner, self.comm, self.replan_above, self.mix = inner, comm, replan_above, mix
        self.exchange: Exchange | None = None
        self.costs: npt.NDArray[np.float64] | None = None
        self.imbalance = 1.0
        self.rows_sent = 0  # state (or warm start) rows this rank sent to another rank

    def respond(
        self,
        gradients: npt.NDArray[np.float64],
        points: npt.NDArray[np.float64],
        ids: npt.NDArray[np.int64] | None = None,
    ) -> MicroResponse:
        """Route, compute, return; same results as ``inner`` on the owning ranks.

        The points travel with their global indices, so a failure on the computing rank
        names the point as its owner knows it. The computation goes through ``agree``: a
        failure on one rank is raised on every rank before the results travel back.
        """
        import time

        from dolfinx.common import Timer

        n = gradients.shape[1]
        if self.exchange is None or self.costs is None or self.imbalance > self.replan_above:
            costs = np.ones(len(gradients)) if self.costs is None else self.costs
            self._replan(Exchange(self.comm, plan(self.comm, costs, self.mix)))
        exchange = self.exchange
        assert exchange is not None
        with Timer("hmm: exchange"):
            G = exchange.forward(gradients)
            X = exchange.forward(points)
            moved_ids = (  # global indices are below 2^53: exact as float64 rows
                None
                if ids is None
                else exchange.forward(np.asarray(ids, dtype=np.float64)[:, None])[:, 0].astype(
                    np.int64
                )
            )

        def timed() -> tuple[MicroResponse, float]:
            # this rank's own work: agree's closing collective would add the wait for the
            # slowest rank and make every rank's time alike (no imbalance would ever show)
            start = time.perf_counter()
            response = self.inner.respond(G, X, moved_ids)
            return response, time.perf_counter() - start

        response, elapsed = agree(self.comm, timed)
        item_costs = getattr(self.inner, "last_costs", None)
        if item_costs is None or len(item_costs) != len(G):
            item_costs = np.full(len(G), elapsed / max(len(G), 1))
        with Timer("hmm: exchange"):
            flux = exchange.backward(response.flux, (n,))
            tangent = exchange.backward(np.ascontiguousarray(response.tangent), (n, n))
            self.costs = exchange.backward(np.asarray(item_costs, dtype=np.float64)[:, None], (1,))[
                :, 0
            ]
        loads = self.comm.allgather(elapsed)
        mean = sum(loads) / len(loads)
        self.imbalance = max(loads) / mean if mean > 0 else 1.0
        return MicroResponse(flux, tangent)

    def _replan(self, exchange: Exchange) -> None:
        """Route by ``exchange`` from now on; committed states travel with their points.

        A history model's committed rows go straight from their old computing ranks to their
        new ones (:meth:`_migrate`; collective; no reset); so do the committed warm starts of
        a model that keeps them (``warm_rows``). Another model with per-point states
        (``reset``) forgets them.
        """
        if self.exchange is not None and has_history(self.inner):
            # the view is released when _migrate returns: the store's old rows can go first
            rows = self._migrate(self._held_rows(self._state_reader()), exchange)
            setter = getattr(self.inner, "take_state_rows", None)  # no copy of the new rows
            self._take(rows, setter or self.inner.set_state_rows)  # type: ignore[attr-defined]
            return
        if self.exchange is not None and hasattr(self.inner, "set_warm_rows"):
            warm = self._held_warm_rows()  # the committed warm starts travel like states
            if warm is not None:
                self._take(self._migrate(warm, exchange), self.inner.set_warm_rows)  # type: ignore[attr-defined]
                return
        self.exchange = exchange
        if hasattr(self.inner, "reset"):
            self.inner.reset()  # its per-point states belonged to the old routing

    def _migrate(
        self, held: npt.NDArray[np.float64], exchange: Exchange
    ) -> npt.NDArray[np.float64]:
        """Send the rows held here (old routing) to their computing ranks under ``exchange``.

        Each owner tells the rank that computes a point under the old routing where the point
        goes next and its place in the owner's order (two numbers per point); only the rows
        whose computing rank changes then travel, straight from the old computing rank to the
        new one in one Alltoallv, and the new one puts the rows that stay and those received
        in the order of ``exchange.forward`` (by owner, then the owner's order) in one new
        array (the rows that stay copied in blocks of ``MIGRATION_BLOCK_BYTES``). ``held`` is
        only read (a view will do): besides it, the peak is the rows that arrive plus the
        send buffer of those that leave (during the exchange) or that array (after it), i.e.
        one copy of the rows plus the share that arrives. Collective; counts the rows sent to
        another rank in ``rows_sent``. Returns the rows this rank computes from now on;
        ``self.exchange`` becomes ``exchange``.
        """
        old = self.exchange
        assert old is not None
        size, rank, owned = self.comm.size, self.comm.rank, len(old.destinations)
        keys = np.column_stack([exchange.destinations, np.arange(owned)]).astype(np.float64)
        there = old.forward(keys)  # indices below 2^53: exact as float64
        owners = np.repeat(np.arange(size, dtype=np.float64), old.recv_counts)
        place = np.column_stack([owners, there[:, 1]])  # owner, owner's index of each held row
        goes = there[:, 0].astype(np.int64)
        leaving, staying = np.flatnonzero(goes != rank), np.flatnonzero(goes == rank)
        route = Exchange(self.comm, goes[leaving])
        self.rows_sent += len(leaving)
        places = np.concatenate([place[staying], route.forward(place, leaving)])
        received = route.forward(held, leaving)
        self.exchange = exchange
        # rank-local from here (the new array may not fit): a failure is raised on every rank
        return agree(self.comm, partial(self._place, held, staying, received, places))

    @staticmethod
    def _place(
        held: npt.NDArray[np.float64],
        staying: npt.NDArray[np.int64],
        received: npt.NDArray[np.float64],
        places: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        """The new rows: those that stay (``held[staying]``) and ``received``, in ``places`` order.

        ``places`` holds (owner, owner's index) of the staying rows, then of the received ones.
        """
        position = np.empty(len(places), dtype=np.int64)
        position[np.lexsort((places[:, 1], places[:, 0]))] = np.arange(len(places))
        rows = np.empty((len(places), held.shape[1]))
        rows[position[len(staying) :]] = received
        step = max(1, MIGRATION_BLOCK_BYTES // max(rows.itemsize * rows.shape[1], 1))
        kept = position[: len(staying)]
        for start in range(0, len(staying), step):  # a bounded temporary
            block = slice(start, start + step)
            rows[kept[block]] = held[staying[block]]
        return rows

    def _state_reader(self) -> Callable[[], Any]:
        """The inner model's read-only view of its committed rows, else its copy."""
        view = getattr(self.inner, "state_view", None)
        return view if view is not None else self.inner.state_rows  # type: ignore[attr-defined,no-any-return]

    def _held_rows(self, method: Callable[[], Any]) -> npt.NDArray[np.float64]:
        """``method()`` on every rank (a failure raised everywhere) as float64 rows.

        All of the common width: a rank without points may answer ``(0, 0)``.
        """
        rows = agree(self.comm, method)
        width = self.comm.allreduce(rows.shape[1] if rows.size else 0, op=MPI.MAX)
        return np.ascontiguousarray(rows, dtype=np.float64).reshape(len(rows), width)

    def _held_warm_rows(self) -> npt.NDArray[np.float64] | None:
        """The inner model's committed warm starts of the points computed here (collective).

        None on every rank when some rank has none for its points yet.
        """
        exchange = self.exchange
        method = getattr(self.inner, "warm_rows", None)
        rows = None if method is None or exchange is None else agree(self.comm, method)
        ready = rows is not None and exchange is not None and len(rows) == exchange.n_received
        width = rows.shape[1] if ready and rows is not None else 0
        ready = self.comm.allreduce(ready, op=MPI.LAND)
        width = self.comm.allreduce(width, op=MPI.MAX)
        if rows is None or not ready or not width:
            return None
        return np.ascontiguousarray(rows, dtype=np.float64).reshape(len(rows), width)

    def _take(
        self, rows: npt.NDArray[np.float64], setter: Callable[[npt.NDArray[np.float64]], None]
    ) -> None:
        agree(self.comm, partial(setter, rows))

    def warm_rows(self) -> npt.NDArray[np.float64]:
        """The inner model's committed warm starts of this rank's points, in their order.

        Collective; ``(n_owned, 0)`` when the inner model has none yet or keeps none.
        """
        held = self._held_warm_rows()
        exchange = self.exchange
        if exchange is None or held is None:
            return np.zeros((0 if exchange is None else len(exchange.order), 0))
        return exchange.backward(held, (held.shape[1],))

    def set_warm_rows(
        self, rows: npt.NDArray[np.float64], costs: npt.NDArray[np.float64] | None = None
    ) -> None:
        """Take committed warm starts of this rank's points, in their order (restart).

        Collective: the routing is planned from ``costs`` (None: unit costs) and the rows go
        to the computing ranks, as :meth:`set_owned_state_rows` does for states.
        """
        self._restore(rows, costs, self.inner.set_warm_rows)  # type: ignore[attr-defined]

    def owned_state_rows(self) -> npt.NDArray[np.float64]:
        """The committed state rows of the points this rank owns, in their order (collective).

        They are held by the computing ranks; this brings them back (micro snapshots,
        checkpoints).
        """
        assert self.exchange is not None, "state rows before the first respond"
        held = self._held_rows(self._state_reader())  # read only: the view will do
        return self.exchange.backward(held, (held.shape[1],))

    def set_owned_state_rows(
        self, rows: npt.NDArray[np.float64], costs: npt.NDArray[np.float64] | None = None
    ) -> None:
        """Take the committed states of this rank's points, in their order (restart; collective).

        Plans the routing from ``costs`` (per owned point; None: unit costs) and sends the
        rows to the computing ranks, as a replan would.
        """
        self._restore(rows, costs, self.inner.set_state_rows)  # type: ignore[attr-defined]

    def _restore(
        self,
        rows: npt.NDArray[np.float64],
        costs: npt.NDArray[np.float64] | None,
        setter: Callable[[npt.NDArray[np.float64]], None],
    ) -> None:
        """Plan from ``costs`` and send the owners' ``rows`` to the computing ranks.

        Unknown costs (None) become unit weights, kept as the planned costs: the first
        answer then uses this routing instead of planning again from the same unit costs
        (and moving every row a second time).
        """
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        self.costs = np.ones(len(rows)) if costs is None else np.asarray(costs, dtype=np.float64)
        self.exchange = exchange = Exchange(self.comm, plan(self.comm, self.costs, self.mix))
        self.imbalance = 1.0
        self.rows_sent += int(exchange.send_counts.sum() - exchange.send_counts[self.comm.rank])
        self._take(exchange.forward(rows).reshape(exchange.n_received, rows.shape[1]), setter)

    def _inner_call(self, name: str) -> None:
        method = getattr(self.inner, name, None)
        if method is not None:
            method()

    def begin_step(self, time: float, dt: float) -> None:
        """Forwarded to the inner model (when it has a history)."""
        begin = getattr(self.inner, "begin_step", None)
        if begin is not None:
            begin(time, dt)

    def commit(self) -> None:
        """Forwarded: the computing ranks commit the states of the points they hold."""
        self._inner_call("commit")

    def rollback(self) -> None:
        """Forwarded: the computing ranks discard their trial states."""
        self._inner_call("rollback")

    def state_width(self) -> int:
        """The inner model's (0 without a history)."""
        width = getattr(self.inner, "state_width", None)
        return int(width()) if width is not None else 0

    @property
    def iterations(self) -> Any:
        """Micro Newton counts of the points computed here (None when the inner has none)."""
        return getattr(self.inner, "iterations", None)

    @property
    def solve_counts(self) -> Any:
        """The inner model's counts of the points computed here (None when it has none)."""
        return getattr(self.inner, "solve_counts", None)

    def averages(self) -> dict[str, npt.NDArray[np.float64]]:
        """The inner model's per-point averages, returned to the owners' points (collective).

        Every rank must call this; names missing on some rank are left out everywhere.
        """
        assert self.exchange is not None, "averages() before the first respond"
        method = getattr(self.inner, "averages", None)
        mine = {} if method is None else dict(agree(self.comm, method))
        names = set.intersection(*self.comm.allgather(set(mine)))
        return {
            name: self.exchange.backward(np.asarray(mine[name], dtype=np.float64)[:, None], (1,))[
                :, 0
            ]
            for name in sorted(names)
        }

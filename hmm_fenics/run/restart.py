"""What a checkpoint of an FE² run holds, when it is written, and how a run resumes from it.

Every array is written in slices keyed by numbers that do not depend on the partition, so
that a run may resume on another number of ranks (design.md §8):

* ``dofs``/``u``: the macro solution's owned dofs, keyed by :func:`dof_keys` (the input
  numbering of the mesh nodes: a vertex dof by its node, an edge dof of P2 by the pair of
  its end nodes; × block size + component);
* ``points``/``macro``/``states``: per macro quadrature point, keyed by its global id
  (original cell × points per cell + local point): the converged flux and tangent (the
  next step's predictor starts from them), the balancing cost, and the committed micro
  state row (``owned_state_rows``: internal variables and the last converged fluctuation;
  for a path-independent nonlinear cell its warm starts, ``warm_rows``).

The manifest holds the step, time, load factor, the per-step results so far (energies
included: the ledger goes on from them), the run file's parsed keys and the versions.
Resuming with a run file whose physics keys differ is refused with the keys named; the
``[output]`` keys may change.
"""

import json
import logging
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
import numpy.typing as npt

from hmm_fenics.coupling.micro_models import has_history
from hmm_fenics.errors import InputError
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.parallel.collective import agree
from hmm_fenics.run import checkpoint as files
from hmm_fenics.run.checkpoint import Checkpoint, CheckpointError
from hmm_fenics.run.signals import Stopped, StopRequests, signal_name
from hmm_fenics.stepping import Increment, LoadPath, Resume

log = logging.getLogger(__name__)

OUTPUT_ONLY = ("output",)
"""Top-level tables of a run file whose keys may change when a run resumes."""

DEFAULT_MINUTES = 30.0
"""Wall-clock interval of the checkpoints of a history run when none is asked for."""


@dataclass(frozen=True)
class Policy:
    """When to write checkpoints (besides on SIGTERM/SIGINT, which always write one).

    Attributes:
        every: Every this many load steps (None: not by count).
        minutes: When this much wall time passed since the last one (None: not by time).
    """

    every: int | None = None
    minutes: float | None = None


def dof_keys(V: Any) -> npt.NDArray[np.int64]:
    """Partition-independent keys of the owned dofs of a Lagrange space (P1, P2), ``(n_owned × bs,)``.

    A dof on a vertex is keyed by the input index of its mesh node (N nodes in the input
    mesh), one on an edge by N + a N + b of its end nodes a < b; then × block size +
    component. Higher degrees (face or cell dofs) raise ``InputError``.
    """
    import basix

    mesh = V.mesh
    comm = mesh.comm
    layout = V.dofmap.dof_layout
    tdim = mesh.topology.dim
    nodes = np.asarray(mesh.geometry.input_global_indices, dtype=np.int64)
    n_input = comm.allreduce(int(nodes.max()) + 1 if len(nodes) else 0, op=MPI.MAX)
    geometry = mesh.geometry.dofmaps[0]  # its first columns are the cell's vertices, in order
    cell_dofs = V.dofmap.list
    topology = basix.topology(getattr(basix.CellType, mesh.topology.cell_name()))
    keys = np.full(cell_dofs.max() + 1 if cell_dofs.size else 0, -1, dtype=np.int64)
    for dim in range(tdim + 1):
        for entity, vertices in enumerate(topology[dim]):
            local = layout.entity_dofs(dim, entity)
            if not local:
                continue
            if dim > 1 or len(local) > 1:
                raise InputError(
                    "checkpoints key the macro dofs by mesh nodes and edges: macro.degree "
                    "must be 1 or 2."
                )
            ends = np.sort(nodes[geometry[:, vertices]], axis=1)
            key = ends[:, 0] if dim == 0 else n_input + ends[:, 0] * n_input + ends[:, 1]
            keys[cell_dofs[:, local[0]]] = key
    bs = V.dofmap.index_map_bs
    owned = keys[: V.dofmap.index_map.size_local]
    result: npt.NDArray[np.int64] = (owned[:, None] * bs + np.arange(bs)).ravel()
    return result


def gather_state(problem: MacroProblem, model: Any) -> dict[str, npt.NDArray[Any]]:
    """This rank's slices of the run's state (collective: states come back to their owners)."""
    q = problem.quadrature
    n = problem.physics.n_components
    owned = problem.V.dofmap.index_map.size_local * problem.V.dofmap.index_map_bs
    costs = getattr(model, "costs", None)
    costs = np.zeros(q.n_points) if costs is None or len(costs) != q.n_points else costs
    macro = np.hstack(
        [q.values(), q.tangent_values().reshape(q.n_points, n * n), np.asarray(costs)[:, None]]
    )
    if has_history(getattr(model, "inner", model)):
        owned_rows = getattr(model, "owned_state_rows", None)
        states = owned_rows() if owned_rows is not None else model.state_rows()
    elif hasattr(model, "warm_rows"):  # a path-independent nonlinear cell's warm starts
        states = model.warm_rows()
        states = states if len(states) == q.n_points else np.zeros((q.n_points, 0))
    else:
        states = np.zeros((q.n_points, 0))
    return {
        "dofs": dof_keys(problem.V),
        "u": problem.u.x.array[:owned].copy(),
        "points": q.global_ids(),
        "macro": macro,
        "states": np.ascontiguousarray(states, dtype=np.float64),
    }


def restore_state(checkpoint: Checkpoint, problem: MacroProblem, model: Any) -> None:
    """Put the checkpoint's macro solution, flux, tangent, states and costs in place (collective).

    Raises:
        CheckpointError: a file is corrupt (named), or the checkpoint lacks values of some
            dofs or points (another mesh, degree or quadrature), or its state rows have
            another width (another micro cell), on every rank alike.
    """
    comm = problem.mesh.mesh.comm
    q = problem.quadrature
    n = problem.physics.n_components

    def read() -> tuple[Any, Any, Any]:
        u = _pick(checkpoint, "dofs", ["u"], dof_keys(problem.V), "macro dofs", comm.rank)[0]
        macro, states = _pick(
            checkpoint, "points", ["macro", "states"], q.global_ids(), "macro points", comm.rank
        )
        if macro.shape[1] != n + n * n + 1:
            raise CheckpointError(
                f"checkpoint {checkpoint.folder}: {macro.shape[1]} values per macro point, "
                f"this run has {n + n * n + 1} (another physics)."
            )
        return u, macro, states

    u, macro, states = agree(comm, read)
    owned = len(u)
    problem.u.x.array[:owned] = u
    problem.u.x.scatter_forward()
    q.store(macro[:, :n], macro[:, n : n + n * n].reshape(-1, n, n))
    inner = getattr(model, "inner", model)
    width = comm.allreduce(states.shape[1], op=MPI.MAX)
    if hasattr(model, "set_warm_rows"):  # warm starts: none written (before any solve) is fine
        if width:
            model.set_warm_rows(states)
        return
    if not has_history(inner):
        return
    expected = int(model.state_width())
    if width != expected:
        raise CheckpointError(
            f"checkpoint {checkpoint.folder}: micro states of {width} floats per point, this "
            f"run's cell has {expected} (another micro cell, mesh or law)."
        )
    setter = getattr(model, "set_owned_state_rows", None)
    if setter is not None:  # balanced: the rows go to the computing ranks by the saved costs
        costs = macro[:, -1]
        setter(states, costs if comm.allreduce(bool(costs.all()), op=MPI.LAND) else None)
    else:
        agree(comm, partial(model.set_state_rows, states))


def _pick(
    checkpoint: Checkpoint,
    key_name: str,
    value_names: list[str],
    wanted: npt.NDArray[np.int64],
    what: str,
    first: int,
) -> list[npt.NDArray[np.float64]]:
    """Rows of the arrays ``value_names`` for the keys ``wanted``, from the writers' slices.

    Slice ``first`` is read first, the others only while rows are missing.
    """
    order = np.argsort(wanted, kind="stable")
    ordered = wanted[order]
    found = np.zeros(len(wanted), dtype=bool)
    results: list[Any] = [None] * len(value_names)
    key_files = checkpoint.slices(key_name)
    writers = len(key_files)
    rank = first % writers  # this rank's own slice first: on the same partition it has
    for k in [rank, *range(rank), *range(rank + 1, writers)]:  # every row asked for
        keys = files.read_array(checkpoint, key_files[k])
        position = np.searchsorted(ordered, keys)
        inside = position < len(ordered)
        inside[inside] = ordered[position[inside]] == keys[inside]
        targets = order[position[inside]]
        found[targets] = True
        everything = bool(inside.all())
        in_order = len(keys) == len(wanted) and bool((targets == np.arange(len(wanted))).all())
        for j, name in enumerate(value_names):
            values = files.read_array(checkpoint, checkpoint.slices(name)[k])
            if in_order:  # this rank's own slice of the same partition: no copy here
                results[j] = values
                continue
            if results[j] is None:
                results[j] = np.zeros((len(wanted), *values.shape[1:]))
            results[j][targets] = values if everything else values[inside]
        if found.all():
            break
    if not found.all():
        raise CheckpointError(
            f"checkpoint {checkpoint.folder} has no values for {int((~found).sum())} of this "
            f"rank's {what}: it was written for another macro mesh, degree or quadrature."
        )
    return [np.zeros((len(wanted), 0)) if r is None else r for r in results]


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys of a run file whose values differ (or exist in one only), output keys aside."""
    a, b = _flat(old), _flat(new)
    return sorted(
        key
        for key in set(a) | set(b)
        if key.split(".")[0] not in OUTPUT_ONLY and a.get(key) != b.get(key)
    )


def _flat(data: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(data, dict) and data:
        out: dict[str, str] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: json.dumps(data, sort_keys=True, default=str)}


def open_resume(
    comm: Any, output: Path, data: dict[str, Any], force: bool, versions: dict[str, str]
) -> Checkpoint:
    """The checkpoint to resume from, its run file compared with ``data`` (rank 0 reads).

    Other ``versions`` than the checkpoint's are a warning (round-off may differ).

    Raises:
        CheckpointError: no usable checkpoint (named), on every rank.
        InputError: the physics keys changed (named) and not ``force``.
    """

    def find() -> Checkpoint:
        found, notes = files.latest(output)
        for note in notes:
            log.warning("warning: %s", note)
        files.read_verified(found, files.RUN_FILE)
        return found

    from hmm_fenics.parallel.collective import on_one_rank

    found = on_one_rank(comm, find)
    changed = changed_keys(found.manifest["config"], data)
    if changed and not force:
        raise InputError(
            f"the run file differs from the one checkpointed in {found.folder} in the keys "
            f"{changed}: resuming would mix two problems. Undo the changes (only [output] "
            "keys may change), or pass --force to resume anyway."
        )
    before = found.manifest.get("versions", {})
    differ = sorted(
        k for k in ("hmm_fenics", "dolfinx", "petsc4py") if before.get(k) != versions.get(k)
    )
    if differ and comm.rank == 0:
        log.warning(
            "warning: the checkpoint was written with %s, this run has %s: the resumed steps "
            "may differ from an uninterrupted run in round-off.",
            {k: before.get(k) for k in differ},
            {k: versions.get(k) for k in differ},
        )
    if changed and comm.rank == 0:
        log.warning(
            "warning: --force: resuming with changed keys %s; the steps before %d were "
            "computed with the old values.",
            changed,
            found.step + 1,
        )
    return found


def resume_point(found: Checkpoint) -> Resume:
    """Where the march goes on: after the checkpoint's step, with its energies."""
    last = found.manifest["steps"][-1]
    return Resume(found.step, float(last["external_work"]), float(last["internal_work"]))


class Checkpointer:
    """The ``on_increment`` hook that writes checkpoints and stops on signals (collective).

    At the end of each load step (not after the increments of a cut step), the ranks agree
    in one allreduce on a pending SIGTERM/SIGINT and on the wall-clock schedule; then a
    checkpoint is written when the policy or a signal asks for one, and a signal ends the
    run with :class:`Stopped`. The last step writes none: the run is complete then.

    Args:
        comm: The run's communicator.
        output: The output folder.
        policy: When to write.
        path: The load path (which increment ends a step).
        problem, model: The run's macro problem and micro model.
        run_text: The run file as given.
        meta: Manifest entries (config, versions, ...).
        records: The per-increment results so far (from a resumed checkpoint, or []).
        stops: The installed signal handler (None: signals are not watched).
    """

    def __init__(
        self,
        comm: Any,
        output: Path,
        policy: Policy,
        path: LoadPath,
        problem: MacroProblem,
        model: Any,
        run_text: str,
        meta: dict[str, Any],
        records: list[dict[str, Any]],
        stops: StopRequests | None,
    ) -> None:
        self.comm, self.output, self.policy, self.path = comm, output, policy, path
        self.problem, self.model, self.run_text, self.meta = problem, model, run_text, meta
        self.records, self.stops = records, stops
        self.last = time.monotonic()
        self.written: list[Path] = []

    def __call__(self, increment: Increment) -> None:
        """After each converged increment (every rank)."""
        self.records.append(increment.record)
        step = increment.step
        if increment.time != self.path.times[step - 1] or step == len(self.path.times):
            return
        signum = self.stops.received if self.stops is not None else None
        minutes = self.policy.minutes
        due_time = minutes is not None and time.monotonic() - self.last >= 60.0 * minutes
        flags = np.array([signum or 0, int(due_time)], dtype=np.int64)
        self.comm.Allreduce(MPI.IN_PLACE, flags, op=MPI.MAX)
        every = self.policy.every
        if flags[0] or flags[1] or (every and step % every == 0):
            self.write(increment)
        if flags[0]:
            signum = int(flags[0])
            raise Stopped(
                f"stopped by {signal_name(signum)} after step {step} (t = {increment.time:.6g}); "
                f"checkpoint {self.written[-1]} written: continue with --resume "
                "(same -o folder).",
                signum,
            )

    def write(self, increment: Increment) -> Path:
        """Write the checkpoint of the step that just ended (collective)."""
        started = time.perf_counter()
        arrays = gather_state(self.problem, self.model)
        meta = {
            **self.meta,
            "time": increment.time,
            "factor": increment.factor,
            "steps": self.records,
            "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        folder = files.write(self.comm, self.output, increment.step, arrays, self.run_text, meta)
        self.last = time.monotonic()
        self.written.append(folder)
        if self.comm.rank == 0:
            log.info("checkpoint %s (%.2f s)", folder, time.perf_counter() - started)
        return folder

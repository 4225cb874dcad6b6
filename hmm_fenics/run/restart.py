"""What a checkpoint of an FE² run holds, when it is written, and how a run resumes from it.

Every array is written in slices keyed by numbers that do not depend on the partition, so
that a run may resume on another number of ranks (design.md §8):

* ``dofs``/``u``: the macro solution's owned dofs, keyed by :func:`dof_keys` (the input
  numbering of the mesh nodes: a vertex dof by its node, an edge dof of P2 by the pair of
  its end nodes; × block size + component);
* ``points``/``coordinates``/``macro``/``states``: per macro quadrature point, keyed by its
  global id (original cell × points per cell + local point): its coordinates (compared
  with the run's on restart), the converged flux and tangent (the
  next step's predictor starts from them), the balancing cost, and the committed micro
  state row (``owned_state_rows``: the committed gradient and internal variables, from
  which the cell derives the converged fluctuation; for a path-independent nonlinear cell
  its warm starts, ``warm_rows``).

The manifest holds the step, time, load factor, the per-step results so far (energies
included: the ledger goes on from them), the run file's parsed keys, the versions and the
identity of the meshes (:func:`identity`: global counts of macro nodes, cells and points, an
order-independent hash of the node coordinates by input index, and the micro cell's
unknowns and dof coordinates hash). Resuming with a run file whose physics keys differ is
refused with the keys named (numbers compare as numbers; the ``[output]`` keys,
``micro.period``, ``solver.schedule`` and the micro solve switches may change); ``--force``
overrides that, but not another mesh: the states would belong to other points
(:func:`check_identity`).
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
from hmm_fenics.parallel.collective import agree, on_one_rank
from hmm_fenics.run import checkpoint as files
from hmm_fenics.run.checkpoint import Checkpoint, CheckpointError
from hmm_fenics.run.identity import (
    POINT_TOLERANCE,
    check_identity,
    dof_keys,
    identity,
    mesh_error,
)
from hmm_fenics.run.schema import SOLVE_KEYS
from hmm_fenics.run.signals import Stopped, StopRequests, signal_name
from hmm_fenics.stepping import Increment, LoadPath, Resume

log = logging.getLogger(__name__)

OUTPUT_ONLY = ("output",)
"""Top-level tables of a run file whose keys may change when a run resumes."""

FREE_KEYS = ("micro.period", "solver.schedule", *(f"micro.{key}" for key in SOLVE_KEYS))
"""Keys that may change too: a check's length scale, where the points are computed, and how
the micro problems are solved (the same answers, to the micro tolerance)."""

COMPARED_VERSIONS = ("hmm_fenics", "dolfinx", "petsc4py", "gmsh")
"""Versions whose change is reported when a run resumes (round-off; gmsh: the meshes)."""

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
    inner = getattr(model, "inner", model)
    if has_history(inner):
        states = committed_rows(model)
    elif hasattr(inner, "warm_rows"):  # a path-independent nonlinear cell's warm starts
        states = model.warm_rows()
        states = states if len(states) == q.n_points else np.zeros((q.n_points, 0))
    else:
        states = np.zeros((q.n_points, 0))
    return {
        "dofs": dof_keys(problem.V),
        "u": problem.u.x.array[:owned].copy(),
        "points": q.global_ids(),
        "coordinates": q.coordinates(),
        "macro": macro,
        "states": np.ascontiguousarray(states, dtype=np.float64),  # a view stays a view
    }


def committed_rows(model: Any) -> npt.NDArray[np.float64]:
    """The committed state rows of this rank's points, for writing (collective when balanced).

    A model that computes its own points gives a read-only view (``state_view``: no copy of
    the states; valid until its next commit); a balanced one brings the rows back from the
    computing ranks (``owned_state_rows``: a new array, counted by ``run.memory``).
    """
    for name in ("owned_state_rows", "state_view", "state_rows"):
        method = getattr(model, name, None)
        if method is not None:
            rows: npt.NDArray[np.float64] = method()
            return rows
    raise TypeError(f"{type(model).__name__} has no state rows.")


def restore_state(
    checkpoint: Checkpoint, problem: MacroProblem, model: Any, template: Any = None
) -> None:
    """Put the checkpoint's macro solution, flux, tangent, states and costs in place (collective).

    Raises:
        CheckpointError: an older format's history state rows (``files.CHANGES``), or a
            file is corrupt (named), or the checkpoint was written for another
            macro mesh or micro cell (``template``; what differs named), or it lacks values
            of some dofs or points (another degree or quadrature), or its points lie
            elsewhere, or its state rows have another width, on every rank alike.
    """
    msh = problem.mesh.mesh
    comm = msh.comm
    q = problem.quadrature
    n = problem.physics.n_components
    inner = getattr(model, "inner", model)
    if has_history(inner) and checkpoint.manifest["version"] != files.VERSION:
        raise files.outdated(checkpoint.folder, checkpoint.manifest)  # same on every rank
    current = identity(problem, template)
    agree(comm, partial(check_identity, checkpoint, current))
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim, tdim)
    cells = np.arange(msh.topology.index_map(tdim).size_local, dtype=np.int32)
    smallest = float(msh.h(tdim, cells).min()) if len(cells) else np.inf
    tolerance = POINT_TOLERANCE * comm.allreduce(smallest, op=MPI.MIN)

    def read() -> tuple[Any, Any, Any]:
        u = _pick(checkpoint, "dofs", ["u"], dof_keys(problem.V), "macro dofs", comm.rank)[0]
        macro, states, where = _pick(
            checkpoint,
            "points",
            ["macro", "states", "coordinates"],
            q.global_ids(),
            "macro points",
            comm.rank,
        )
        here = q.coordinates()
        off = float(np.abs(where - here).max()) if len(here) else 0.0
        if not off <= tolerance:
            raise mesh_error(
                checkpoint,
                f"macro quadrature points {off:.3g} apart (tolerance {tolerance:.3g}, "
                f"{POINT_TOLERANCE:g} × the smallest cell size)",
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
    width = comm.allreduce(states.shape[1], op=MPI.MAX)
    costs = macro[:, -1]
    known = comm.allreduce(bool(costs.all()), op=MPI.LAND)
    if not has_history(inner):
        if hasattr(inner, "set_warm_rows") and width:  # warm starts (none written: fine)
            if hasattr(model, "inner"):  # balanced: to the computing ranks by the saved costs
                model.set_warm_rows(states, costs if known else None)
            else:
                model.set_warm_rows(states)
        return
    expected = int(model.state_width())
    if width != expected:
        raise CheckpointError(
            f"checkpoint {checkpoint.folder}: micro states of {width} floats per point, this "
            f"run's cell has {expected} (another micro cell, mesh or law)."
        )
    setter = getattr(model, "set_owned_state_rows", None)
    if setter is not None:  # balanced: the rows go to the computing ranks by the saved costs
        setter(states, costs if known else None)
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
    """Dotted keys of a run file whose values differ (or exist in one only).

    Numbers compare as numbers (``E = 3`` and ``E = 3.0`` are the same value, in lists
    too); the ``[output]`` keys and :data:`FREE_KEYS` are left out.
    """
    a, b = _flat(old), _flat(new)
    return sorted(
        key
        for key in set(a) | set(b)
        if key.split(".")[0] not in OUTPUT_ONLY
        and key not in FREE_KEYS
        and a.get(key) != b.get(key)
    )


def _flat(data: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(data, dict) and data:
        out: dict[str, str] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: json.dumps(_numbers(data), sort_keys=True, default=str)}


def _numbers(data: Any) -> Any:
    """Ints as floats (not booleans), through lists and tables: a value compares as a number."""
    if isinstance(data, bool):
        return data
    if isinstance(data, int):
        return float(data)
    if isinstance(data, list | tuple):
        return [_numbers(item) for item in data]
    if isinstance(data, dict):
        return {key: _numbers(value) for key, value in data.items()}
    return data


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

    found = on_one_rank(comm, find)
    changed = changed_keys(found.manifest["config"], data)
    if changed and not force:
        raise InputError(
            f"the run file differs from the one checkpointed in {found.folder} in the keys "
            f"{changed}: resuming would mix two problems. Undo the changes (only [output] "
            "keys may change), or pass --force to resume anyway."
        )
    before = found.manifest.get("versions", {})
    differ = sorted(k for k in COMPARED_VERSIONS if before.get(k) != versions.get(k))
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


def finished(comm: Any, output: Path, data: dict[str, Any], force: bool) -> bool:
    """Whether ``--resume`` has nothing to do: the run in ``output`` is complete (collective).

    A finished run leaves a completion mark (``checkpoint/complete.json``, after its
    ``results.json``). Resuming it again reports that and reruns nothing, unless ``force``:
    then the mark is removed and the run goes on from its last checkpoint as any resume
    (computing its tail again).

    Raises:
        InputError: the run is complete but the run file's physics keys differ (named)
            and not ``force``.
    """
    mark = on_one_rank(comm, partial(files.completion, output))
    if mark is None:
        return False
    if force:
        on_one_rank(comm, partial(_unmark, output))
        if comm.rank == 0:
            log.warning(
                "warning: --force: the run in %s is complete; computing its steps after the "
                "last checkpoint again.",
                output,
            )
        return False
    changed = changed_keys(mark.get("config", {}), data)
    if changed:
        raise InputError(
            f"the run in {output} is complete, and the run file differs from its own in the "
            f"keys {changed}. Pass --force to go on from its last checkpoint with the new "
            "values, or --overwrite (without --resume) to start again."
        )
    return True


def _unmark(output: Path) -> None:
    (files.root(output) / files.COMPLETE).unlink(missing_ok=True)


def resume_point(found: Checkpoint) -> Resume:
    """Where the march goes on: after the checkpoint's step, with its energies."""
    last = found.manifest["steps"][-1]
    return Resume(found.step, float(last["external_work"]), float(last["internal_work"]))


class Checkpointer:
    """The ``on_increment`` hook that writes checkpoints and stops on signals (collective).

    At the end of each load step (not after the increments of a cut step), the ranks agree
    in one allreduce on a pending SIGTERM/SIGINT and on the wall-clock schedule; then a
    checkpoint is written when the policy or a signal asks for one, the signals are agreed
    on again (one that arrived during the write stops the run now, not a step later), and
    a signal ends the run with :class:`Stopped`. The last step writes none: the run is
    complete then. A write that fails (disk full, the folder gone) is a warning: the run
    goes on, the previous checkpoint stays the one to resume from; when a signal asked for
    the checkpoint, the run still stops (exit 143 / 130: the stop was asked for) with a
    message saying that the checkpoint failed and where ``--resume`` would go on from.

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
        minutes = self.policy.minutes
        due_time = minutes is not None and time.monotonic() - self.last >= 60.0 * minutes
        signum, due_time = self._agree(due_time)
        every = self.policy.every
        failure: files.WriteFailed | None = None
        if signum or due_time or (every and step % every == 0):
            try:
                self.write(increment)
            except files.WriteFailed as err:
                failure = err
                self.last = time.monotonic()  # the time policy tries again after its interval
            signum = max(signum, self._agree(False)[0])  # a signal during the write
        if failure is not None and not signum and self.comm.rank == 0:
            log.warning("warning: %s; the run goes on: %s.", failure, self._previous())
        if signum:
            where = f"after step {step} (t = {increment.time:.6g})"
            if failure is None:
                message = (
                    f"{where}; checkpoint {self.written[-1]} written: continue with --resume "
                    "(same -o folder)."
                )
            else:
                message = (
                    f"{where}, but its checkpoint could not be written ({failure}): "
                    f"{self._previous()}."
                )
            raise Stopped(f"stopped by {signal_name(signum)} {message}", signum)

    def _agree(self, due_time: bool) -> tuple[int, bool]:
        """The first signal on any rank (0: none) and whether any rank's clock is due."""
        signum = self.stops.received if self.stops is not None else None
        flags = np.array([signum or 0, int(due_time)], dtype=np.int64)
        self.comm.Allreduce(MPI.IN_PLACE, flags, op=MPI.MAX)
        return int(flags[0]), bool(flags[1])

    def _previous(self) -> str:
        """Where a ``--resume`` would go on from instead (the last complete checkpoint)."""
        try:
            last = sorted(files.root(self.output).glob("step_*"))[-1:]
        except OSError:
            last = []
        if not last:
            return "there is no checkpoint to resume from yet"
        return (
            f"--resume would go on from the previous checkpoint {last[0]}, computing the "
            "steps after it again"
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

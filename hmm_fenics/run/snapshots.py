"""Micro snapshots of an FE² run: the micro fields at requested macro points (or the peak).

The owner of a point writes its cell's fields (``run.fields``): a linear or nonlinear cell
solves the point's gradient again, a history cell writes its committed state's fields.
Points outside the macro domain are refused before the solve.
"""

from functools import partial
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
import numpy.typing as npt

from hmm_fenics.coupling.micro_models import has_history
from hmm_fenics.errors import InputError
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.parallel.collective import on_one_rank
from hmm_fenics.run.fields import write_history_snapshot, write_micro_snapshot
from hmm_fenics.run.pictures import micro_picture
from hmm_fenics.run.restart import committed_rows
from hmm_fenics.run.schema import RunConfig


def check_snapshot_points(
    config: RunConfig, points: npt.NDArray[np.float64], macro_h: float, comm: Any
) -> None:
    """Refuse (before the solve) a snapshot point farther than 2 H from every macro point.

    The nearest macro quadrature point stands for a requested point; one outside the domain
    (or in a hole) would be moved there silently. The distance is agreed by an allreduce,
    so every rank raises alike.
    """
    if config.snapshots == "peak":
        return
    for i, requested in enumerate(config.snapshots):
        target = np.asarray(requested, dtype=np.float64)
        mine = (
            float(np.linalg.norm(points[:, : len(target)] - target, axis=1).min())
            if len(points)
            else np.inf
        )
        nearest = comm.allreduce(mine, op=MPI.MIN)
        if nearest > 2 * macro_h:
            raise InputError(
                f"output.snapshots[{i}] = {target.tolist()} is {nearest:.3g} from the nearest "
                f"macro quadrature point (the macro element size is {macro_h:.3g}): it is "
                "outside the macro domain; give a point inside it."
            )


def micro_snapshots(
    config: RunConfig,
    folder: Path,
    comm: Any,
    problem: MacroProblem,
    model: Any,
    template: Any,
    flux: npt.NDArray[np.float64],
    gradient: npt.NDArray[np.float64],
) -> list[dict[str, Any]]:
    """Micro fields at the requested macro points (or the peak), written by their owners."""
    points = problem.quadrature.coordinates()
    if config.snapshots == "peak":
        strength = np.linalg.norm(flux, axis=1) if len(flux) else np.zeros(0)
        best = (float(strength.max()), comm.rank) if len(strength) else (-np.inf, comm.rank)
        _, owner = comm.allreduce(best, op=MPI.MAXLOC)
        local = [int(np.argmax(strength))] if comm.rank == owner else []
        owners = [owner]
    else:
        owners, local = [], []
        for target in config.snapshots:
            distance = np.linalg.norm(points - np.asarray(target), axis=1) if len(points) else None
            mine = (
                (float(distance.min()), comm.rank) if distance is not None else (np.inf, comm.rank)
            )
            _, owner = comm.allreduce(mine, op=MPI.MINLOC)
            owners.append(owner)
            if comm.rank == owner:
                assert distance is not None
                local.append(int(np.argmin(distance)))
    written: list[dict[str, Any]] = []
    mine_iter = iter(local)
    physics = config.cell.physics
    # a history point's micro fields are those of its committed state (held where it was computed)
    states = committed_rows(model) if has_history(getattr(model, "inner", model)) else None

    def write(k: int) -> dict[str, Any]:
        """The owner of snapshot ``k`` solves (or reads its state) and writes it."""
        i = next(mine_iter)
        x, G = points[i], gradient[i]
        cell = _cell_at(config, model, template, x)
        path = folder / f"rve_{k}"
        if states is None:
            snapshot = write_micro_snapshot(path, physics, cell, G, cell.fluctuation(G))
        else:
            n, row = physics.n_components, states[i]  # committed gradient | internal
            fluctuation = cell.committed_fluctuation(row[:n], row[n:])
            snapshot = write_history_snapshot(path, physics, cell, row[:n], fluctuation, row[n:])
        if k == 0 and config.png and physics.dim == 2:
            where = ", ".join(f"{c:.3g}" for c in x[: physics.dim])
            micro_picture(
                folder / "rve.png", physics, snapshot.flux, f"RVE at x = ({where})", gradient=G
            )
        return {
            "x": x.tolist(),
            "gradient": G.tolist(),
            "macro_flux": flux[i].tolist(),
            "mean_flux": snapshot.mean_flux,
            "files": snapshot.files,
            "rank": comm.rank,
        }

    for k, owner in enumerate(owners):
        # the owner's failure is raised on every rank instead of leaving them in the bcast
        written.append(on_one_rank(comm, partial(write, k), root=owner))
    return written


def _cell_at(config: RunConfig, model: Any, template: Any, x: npt.NDArray[np.float64]) -> Any:
    """The cell problem that answers macro point ``x`` (built here if this rank has none)."""
    inner = getattr(model, "inner", model)
    if config.medium is not None:  # a window of the medium at x (coupling.sampling)
        return inner.cell_at(x)
    if config.graded is not None:
        return inner.cell(config.graded.spec_at(config.cell.rve, x))
    return template

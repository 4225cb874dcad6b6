"""``hmm-fenics run``: a validated run file → meshes, micro model, loading, output.

Order of work: the output folder is checked (rank 0 decides for all), the macro mesh is
built, suspicious set-ups are reported, the micro model is set up, the load is applied in
steps (fields written at every step), and the results are summarized in ``results.json``:
the inputs, the energy, the reactions on the Dirichlet boundaries, iteration counts,
timings and versions. Only rank 0 logs (warnings and progress).
"""

import logging
import platform
import time
from functools import partial
from pathlib import Path
from typing import Any

from mpi4py import MPI

import numpy as np
import numpy.typing as npt

from hmm_fenics.coupling.homogenize import summarize
from hmm_fenics.coupling.micro_models import (
    BalancedModel,
    CellModel,
    EffectiveModel,
    GradedModel,
    MicroModel,
)
from hmm_fenics.coupling.out_of_plane import OutOfPlaneStress, has_out_of_plane_stress
from hmm_fenics.errors import InputError
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.micro.cell_problem import cell_problem
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.micro.history_model import HistoryCellModel
from hmm_fenics.micro.nonlinear import NonlinearCellModel, nonlinear_cell_problem
from hmm_fenics.parallel.collective import agree, on_one_rank
from hmm_fenics.physics import Elasticity
from hmm_fenics.run import checkpoint as checkpoint_files
from hmm_fenics.run.checks import cell_resonance, coarse_micro_mesh, dirichlet_conflict
from hmm_fenics.run.fields import (
    as_tensor,
    cell_average,
    check_output_folder,
    flux_shape,
    set_out_of_plane,
    write_micro_snapshot,
)
from hmm_fenics.run.identity import identity
from hmm_fenics.run.medium import sampled_model, scale_warnings
from hmm_fenics.run.memory import report_state_memory, state_widths, transient_copies
from hmm_fenics.run.pictures import macro_picture, micro_picture, scalar_picture
from hmm_fenics.run.restart import (
    DEFAULT_MINUTES,
    Checkpointer,
    Policy,
    finished,
    open_resume,
    restore_state,
    resume_point,
)
from hmm_fenics.run.schema import RunConfig
from hmm_fenics.run.series import FieldWriter
from hmm_fenics.run.signals import StopRequests
from hmm_fenics.run.snapshots import check_snapshot_points, micro_snapshots
from hmm_fenics.run.steps import load_curve, model_averages, point_field
from hmm_fenics.rve.mesh import build_rve
from hmm_fenics.solver import timing_summary
from hmm_fenics.stepping import Increment, march
from hmm_fenics.strict_json import dumps

log = logging.getLogger(__name__)


def run(
    config: RunConfig,
    output: str | Path,
    overwrite: bool = False,
    comm: Any = MPI.COMM_WORLD,
    progress: bool = True,
    checkpoints: Policy | None = None,
    resume: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Run a validated config; returns the results (as written to ``results.json``).

    An FE² job writes checkpoints to ``output/checkpoint`` by ``checkpoints`` (None: a
    history run every ``DEFAULT_MINUTES`` of wall time, others none) and on SIGTERM/SIGINT,
    which stop it at the end of a step (``Stopped``). ``resume`` goes on from the last
    complete checkpoint in ``output`` (its run file's physics keys must equal this one's
    unless ``force``).

    Raises:
        InputError: the output folder is not empty (without ``overwrite`` or ``resume``),
            a boundary name is not in a user mesh, a PETSc option names an unknown solver
            type, or the checkpoint to resume from is unusable or of another problem.
        Stopped: a signal stopped the run after a checkpoint.
        RuntimeError: the macro Newton did not converge (same message on every rank).
        MicroFailure: a micro solve failed (same message on every rank).
    """
    folder = Path(output)
    if resume and config.macro is None:
        raise InputError("--resume: a homogenization job (no [macro]) has no steps to resume.")
    if resume and finished(comm, folder, config.data, force):
        if comm.rank == 0:
            log.warning("the run in %s is already complete: nothing to resume (--force to "
                        "compute its last steps again)", folder)  # fmt: skip
        return on_one_rank(comm, partial(_results, folder))
    found = open_resume(comm, folder, config.data, force, versions()) if resume else None
    if found is None:
        check_output_folder(comm, folder, overwrite)
    if config.macro is not None:  # checkpoints: every rank can write; a replaced run's go
        checkpoint_files.prepare(comm, folder, clear=found is None)
    conflict = dirichlet_conflict(config.macro.geometry, config.dirichlet) if config.macro else None
    for message in filter(None, [coarse_micro_mesh(config.cell.rve), conflict]):
        _warn(comm, message)
    if config.macro is None:
        results = _homogenization(config, folder, comm)
    else:
        if checkpoints is None:
            checkpoints = Policy(minutes=DEFAULT_MINUTES if config.history else None)
        results = _fe2(config, folder, comm, progress, checkpoints, found)

    # every rank returns once the results are on disk (or raises rank 0's failure)
    on_one_rank(comm, partial((folder / "results.json").write_text, dumps(results)))
    if config.macro is not None:  # a --resume of this folder has nothing left to do
        mark = {"steps": len(results["steps"]), "time": results["steps"][-1]["time"],
                "config": config.data}  # fmt: skip
        on_one_rank(comm, partial(checkpoint_files.mark_complete, folder, mark))
    return results


def _results(folder: Path) -> dict[str, Any]:
    """The results.json of a finished run."""
    import json

    results: dict[str, Any] = json.loads((folder / "results.json").read_text())
    return results


def _warn(comm: Any, message: str) -> None:
    if comm.rank == 0:
        log.warning("warning: %s", message)


class Stages:
    """Wall time of the job's stages on this rank."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        """Close ``stage`` now."""
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self.last
        self.last = now


def _homogenization(config: RunConfig, folder: Path, comm: Any) -> dict[str, Any]:
    """No [macro]: the effective tensor and the corrector field of each unit gradient."""
    if config.nonlinear or config.history:
        raise InputError(
            "a power-law, J2 or Maxwell cell has no single effective tensor: add a [macro] "
            "problem (with a [loading] path), or give the phases linear laws."
        )
    cell_config = config.cell
    stages = Stages()
    # every rank meshes and solves the cell (they agree on failure: one may run out of memory)
    rve = agree(comm, partial(build_rve, cell_config.rve))
    stages.lap("micro mesh")
    cell = agree(
        comm,
        partial(
            cell_problem,
            cell_config.physics,
            rve,
            cell_config.materials,
            cell_config.degree,
            cell_config.solver,
            cell_config.bc,
            cell_config.oversampling,
        ),
    )
    result = agree(comm, partial(summarize, cell, check=True))
    stages.lap("micro solve")

    def write_snapshots() -> list[dict[str, Any]]:
        """One cell: rank 0 writes, the others wait for the summary."""
        snapshots: list[dict[str, Any]] = []
        n = cell_config.physics.n_components
        for j in range(n):
            G = np.eye(n)[j]
            snapshot = write_micro_snapshot(
                folder / f"rve_unit_{j}", cell_config.physics, cell, G, cell.fluctuation(G)
            )
            snapshots.append(
                {"gradient": G.tolist(), "files": snapshot.files, "mean_flux": snapshot.mean_flux}
            )
            if j == 0 and config.png and cell_config.physics.dim == 2:
                micro_picture(
                    folder / "rve.png",
                    cell_config.physics,
                    snapshot.flux,
                    "RVE under the unit gradient e1",
                    gradient=G,
                )
        return snapshots

    snapshots = on_one_rank(comm, write_snapshots)
    stages.lap("output")
    summary = result.to_dict()
    return {
        "job": "homogenization",
        "input": _echo(config),
        **summary,
        "snapshots": snapshots,
        "timings": {**summary["timings"], **_reduce(comm, stages.seconds)},
        "versions": versions(),
        "ranks": comm.size,
    }


def _micro_model(config: RunConfig, comm: Any) -> tuple[MicroModel, Any]:
    """The micro model of the config and its template cell (for checks and snapshots)."""
    cell_config = config.cell
    physics, materials = cell_config.physics, cell_config.materials
    degree, options = cell_config.degree, cell_config.solver
    bc, ratio = cell_config.bc, cell_config.oversampling
    solves = config.micro_solves
    inner: MicroModel
    template: Any
    if config.medium is not None:
        inner, template = sampled_model(config.medium, config.cell), None
    elif config.graded is not None:
        graded = config.graded
        base = cell_config.rve
        inner = GradedModel(
            lambda x: graded.spec_at(base, x),
            physics,
            materials,
            degree,
            options,
            bc=bc,
            oversampling=ratio,
        )
        template = None
    else:
        factory: Any = (
            history_cell_problem
            if config.history
            else nonlinear_cell_problem
            if config.nonlinear
            else cell_problem
        )
        switches: dict[str, Any] = (
            {"shortcut": solves.shortcut, "linear_solver": solves.linear_solver}
            if config.history
            else {}
        )
        template = factory(
            physics,
            build_rve(cell_config.rve),
            materials,
            degree,
            options,
            bc=bc,
            oversampling=ratio,
            **switches,
        )
        if config.history:
            inner = HistoryCellModel(template)
        elif config.nonlinear:
            inner = NonlinearCellModel(
                template, predict=solves.predict, tangent_reuse=solves.tangent_reuse
            )
        elif config.model == "effective":
            inner = EffectiveModel(template.effective_tensor)
        else:
            inner = CellModel(template)
    if config.schedule == "balanced":
        return BalancedModel(inner, comm), template
    return inner, template


def _fe2(
    config: RunConfig,
    folder: Path,
    comm: Any,
    progress: bool,
    policy: Policy,
    found: Any,
) -> dict[str, Any]:
    import ufl

    assert config.macro is not None
    macro = config.macro
    physics = config.cell.physics
    stages = Stages()
    mesh = macro_mesh(
        macro.geometry,
        macro.mesh_size,
        comm,
        params=macro.lengths,
        path=macro.path,
        dim=physics.dim,
    )
    stages.lap("macro mesh")
    problem = MacroProblem(
        mesh,
        physics,
        config.dirichlet,
        config.neumann,
        config.source,
        macro.quadrature_degree,
        macro.degree,
        config.macro_petsc,
    )
    msh = mesh.mesh
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim, tdim)
    n_owned = msh.topology.index_map(tdim).size_local
    sizes = msh.h(tdim, np.arange(n_owned, dtype=np.int32))
    macro_h = comm.allreduce(float(sizes.mean()) * n_owned, op=MPI.SUM) / comm.allreduce(
        n_owned, op=MPI.SUM
    )
    for message in filter(None, [cell_resonance(config.period, macro_h)]):
        _warn(comm, message)
    for message in scale_warnings(config.medium, macro_h) if config.medium else []:
        _warn(comm, message)
    check_snapshot_points(config, problem.quadrature.coordinates(), macro_h, comm)
    model, template = agree(comm, partial(_micro_model, config, comm))  # per rank: agree
    stages.lap("micro set-up")

    q = problem.quadrature
    weights = q.weights()
    copies = transient_copies(model, resuming=found is not None)
    report_state_memory(comm, q.n_points, *state_widths(model), copies)
    records: list[dict[str, Any]] = []
    if found is not None:  # the checkpoint's state, before the first step's predictor
        restore_state(found, problem, model, template)
        records = list(found.manifest["steps"])
        if comm.rank == 0:
            log.info("resuming after step %d (t = %.6g) from %s", found.step,
                     found.manifest["time"], found.folder)  # fmt: skip
    writer = FieldWriter(
        comm, folder, config.fields, None if found is None else float(found.manifest["time"])
    )
    flux_name = "stress" if isinstance(physics, Elasticity) else "flux"
    primary_name = "displacement" if isinstance(physics, Elasticity) else "temperature"
    problem.u.name = primary_name
    out_of_plane = OutOfPlaneStress(model, config.cell.materials, template)
    plastic: Any = None
    dissipation: Any = None
    average: Any = None

    def output(increment: Increment) -> None:
        """Fields of a converged increment (every rank)."""
        nonlocal average, plastic, dissipation
        stages.lap("solve")
        gradient = problem.gradients()
        average = cell_average(
            msh, as_tensor(physics, q.flux), flux_shape(physics), q.dx, flux_name
        )
        values = model_averages(model)
        if has_out_of_plane_stress(physics):  # plane strain: σ33 ≠ 0, for a right von Mises
            sigma33 = values.get("sigma33")
            if sigma33 is None:
                sigma33 = agree(comm, partial(out_of_plane, gradient, q.coordinates()))
            set_out_of_plane(average, sigma33, weights)
        writer.write(primary_name, problem.u, increment.time)
        writer.write(flux_name, average, increment.time)
        if "plastic_strain" in values:
            plastic = point_field(msh, values["plastic_strain"], weights, "plastic_strain")
            writer.write("plastic_strain", plastic, increment.time)
        if "dissipation" in values:
            dissipation = point_field(msh, values["dissipation"], weights, "dissipation")
            writer.write("dissipation", dissipation, increment.time)
        stages.lap("output")

    run_text = on_one_rank(comm, partial(_run_text, config))
    meta = {
        "config": config.data,
        "run_file": config.path,
        "versions": versions(),
        "identity": identity(problem, template),
    }
    with StopRequests(announce=comm.rank == 0) as stops:
        checkpointer = Checkpointer(
            comm, folder, policy, config.loading, problem, model, run_text, meta, records, stops
        )

        def on_increment(increment: Increment) -> None:
            output(increment)
            checkpointer(increment)

        try:
            march(
                problem,
                model,
                config.loading,
                rtol=config.rtol,
                atol=config.atol,
                max_iterations=config.max_iterations,
                progress=progress,
                on_increment=on_increment,
                resume=None if found is None else resume_point(found),
            )
        finally:
            writer.close()
    steps = checkpointer.records
    iterations = sum(int(step["iterations"]) for step in steps)
    energy = steps[-1]["internal_work"]
    flux, gradient = q.values(), problem.gradients()
    reactions = problem.reactions()
    snapshots = micro_snapshots(config, folder, comm, problem, model, template, flux, gradient)
    if config.png and physics.dim == 2:
        u = problem.u
        magnitude = ufl.sqrt(ufl.inner(u, u)) if isinstance(physics, Elasticity) else u
        title = "|displacement|" if isinstance(physics, Elasticity) else "temperature"
        primary = cell_average(msh, magnitude, (), q.dx, title)
        macro_picture(
            folder / "macro.png", physics, primary, f"{title}, cell averages", average, comm
        )
        if len(steps) > 1:
            on_one_rank(comm, partial(load_curve, folder / "curve.png", config, steps))
        when = f"t = {steps[-1]['time']:.4g} (factor {steps[-1]['factor']:.4g})"
        last = steps[-1]  # a viscous cell has no plastic zone: show its dissipation
        viscous_only = (last.get("viscous_dissipation") or 0.0) > 0 and not last.get(
            "plastic_dissipation"
        )
        if plastic is not None and not viscous_only:
            scalar_picture(
                folder / "plastic_zone.png",
                plastic,
                f"plastic zone at {when}:"
                "\nequivalent plastic strain, RVE averages (cell means); grey: never yielded",
                comm,
                label="p̄ (RVE average)",
                zero_as_background=True,
            )
        elif dissipation is not None:
            scalar_picture(
                folder / "dissipation.png",
                dissipation,
                f"dissipated energy density at {when}:\nRVE averages (cell means)",
                comm,
                label="dissipated energy / volume (RVE average)",
            )
    stages.lap("output")
    points = comm.allreduce(q.n_points, op=MPI.SUM)
    volume = comm.allreduce(float(weights.sum()), op=MPI.SUM)
    mean_flux = comm.allreduce(weights @ flux, op=MPI.SUM) / volume
    return {
        "job": "fe2",
        "input": _echo(config),
        "physics": physics.name,
        "notation": physics.notation,
        "dim": physics.dim,
        "macro_cells": comm.allreduce(n_owned, op=MPI.SUM),
        "macro_points": points,
        "macro_element_size": macro_h,
        "micro_unknowns": getattr(template, "n_unknowns", None),
        "micro_bc": config.cell.bc,
        "micro_oversampling": config.cell.oversampling,
        "effective_tensor": (
            template.effective_tensor.tolist() if hasattr(template, "effective_tensor") else None
        ),
        "energy": energy,
        "reactions": reactions,
        "volume": volume,
        "mean_flux": mean_flux.tolist(),
        "flux_max": _extreme(comm, flux, MPI.MAX),
        "flux_min": _extreme(comm, flux, MPI.MIN),
        "newton_iterations": iterations,
        "steps": steps,
        "snapshots": snapshots,
        "files": [str(p.name) for p in writer.paths],
        "timings": _reduce(comm, stages.seconds),
        "timings_table": timing_summary(comm).splitlines(),
        "versions": versions(),
        "ranks": comm.size,
    }


def _run_text(config: RunConfig) -> str:
    """The run file as given (its parsed keys when it is not a file)."""
    path = Path(config.path)
    return path.read_text() if path.is_file() else dumps(config.data)


def _extreme(comm: Any, flux: npt.NDArray[np.float64], op: Any) -> list[float]:
    """Per component, the max or min over all quadrature points."""
    if len(flux):
        local = flux.max(axis=0) if op == MPI.MAX else flux.min(axis=0)
    else:
        local = np.full(flux.shape[1], -np.inf if op == MPI.MAX else np.inf)
    total = np.empty_like(local)
    comm.Allreduce(np.ascontiguousarray(local), total, op=op)
    return [float(v) for v in total]


def _reduce(comm: Any, seconds: dict[str, float]) -> dict[str, float]:
    """Per stage, the max over ranks (the wall time of the stage)."""
    return {stage: comm.allreduce(value, op=MPI.MAX) for stage, value in seconds.items()}


def _echo(config: RunConfig) -> dict[str, Any]:
    return {"file": config.path, "config": config.data}


def versions() -> dict[str, str]:
    """Versions of the toolkit and of what it runs on."""
    from importlib import metadata

    import petsc4py

    import dolfinx
    import gmsh

    try:
        version = metadata.version("hmm_fenics")
    except metadata.PackageNotFoundError:  # a source tree that is not installed
        version = "0+unknown"
    return {
        "hmm_fenics": version,
        "dolfinx": dolfinx.__version__,
        "petsc4py": petsc4py.__version__,
        "gmsh": gmsh.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "mpi": MPI.Get_library_version().splitlines()[0].strip(),
    }

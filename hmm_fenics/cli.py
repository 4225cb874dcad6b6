"""Command line: ``hmm-fenics run``, ``homogenize``, ``rve``, ``study NAME`` and ``rve-size``.

The only module that sets the logging levels (through ``hmm_fenics.log.configure``, from
``--quiet``/``--verbose``) and turns exceptions into exit codes: bad input
exits with 2 and one line on stderr, no traceback. Under MPI only rank 0 logs; a failure
that every rank meets (bad input is validated alike everywhere; solver failures are agreed
on) is reported once, by rank 0, while a failure on some ranks only is reported by them and
aborts the job, so that no rank waits forever.
"""

import argparse
import atexit
import ctypes
import functools
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from hmm_fenics.errors import InputError
from hmm_fenics.log import configure as configure_logging
from hmm_fenics.petsc_options import PETSC_HELP, command_line_options, split_command_line
from hmm_fenics.run.signals import Stopped
from hmm_fenics.summaries import format_ensemble, format_result, format_run

log = logging.getLogger("hmm_fenics")

EXIT_INPUT = 2
EXIT_FAILURE = 1
AGREE_SECONDS = 20.0
"""How long failing ranks wait for the others to fail too, before aborting the job."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    return _main(argv)


def console() -> NoReturn:
    """The ``hmm-fenics`` console script: ``main``, then the process ends without teardown.

    Every command has closed what it wrote when it returns. What a normal exit still does is
    finalize the interpreter: free every Python object of DOLFINx, UFL, PETSc and gmsh, 0.06
    to 0.08 s of a one-second ``homogenize`` (BENCHMARKS.md). So the script runs the
    ``atexit`` handlers (logging), finalizes PETSc (its viewers, ``-options_left``) and MPI
    (``mpirun`` expects it), flushes the standard streams and ends with C's ``exit``: that
    still flushes what C, C++ and Fortran buffered (PETSc, MUMPS and gmsh print there).
    """
    code = EXIT_FAILURE
    try:
        code = main()
    except SystemExit as stop:  # argparse: --help (0) or a bad command line (2)
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
    except KeyboardInterrupt:  # before a command started (a command returns 130 itself)
        code = 130
    except BaseException:
        traceback.print_exc()
    _leave(code)


def _leave(code: int) -> NoReturn:
    """End the process with ``code`` after the cleanup a normal exit would do but Python's.

    While gmsh still meshes on its thread (``rve.mesh.mesh_ahead``: interrupted, or failed
    before the cell was needed), C's ``exit`` would unload gmsh under that thread and crash:
    then the process leaves with ``os._exit``, its C streams flushed.
    """
    atexit._run_exitfuncs()  # the handlers Python runs at exit: logging.shutdown, ...
    petsc = sys.modules.get("petsc4py.PETSc")
    if petsc is not None:
        petsc._finalize()
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        mpi.Finalize()
    sys.stdout.flush()
    sys.stderr.flush()
    libc = ctypes.CDLL(None)
    mesh = sys.modules.get("hmm_fenics.rve.mesh")
    if mesh is not None and mesh.meshing_ahead():
        libc.fflush(None)
        os._exit(code)
    libc.exit(code)
    os._exit(code)  # not reached: exit does not return


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    try:  # PETSc options (-hmm_micro_pc_type lu) first: argparse would read -hmm… as -h
        rest, petsc_options = split_command_line(sys.argv[1:] if argv is None else argv)
    except InputError as err:
        parser.error(str(err))
    args = parser.parse_args(rest)
    if args.run is _homogenize:
        _mesh_cell_ahead(args)
    args.run = functools.partial(_with_petsc_options, args.run, petsc_options)
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    configure_logging(level, comm.rank)
    # a separate communicator on which failing ranks find out whether all of them failed
    agreement = comm.Dup() if comm.size > 1 else None
    try:
        code = int(args.run(args))
    except InputError as err:
        code = _fail(comm, agreement, f"error: {err}", EXIT_INPUT)
    except Stopped as err:  # raised on every rank alike, after the checkpoint
        if comm.rank == 0:
            print(f"hmm-fenics: {err}", file=sys.stderr)
        code = err.code
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a failed solve or mesher: one line, exit 1, no traceback
        hint = "" if args.verbose else " (rerun with --verbose for details)"
        if args.verbose:
            traceback.print_exc()
        code = _fail(comm, agreement, f"failed: {type(err).__name__}: {err}{hint}", EXIT_FAILURE)
    if agreement is not None:
        agreement.Free()
    return code


def _fail(comm: Any, agreement: Any, message: str, code: int) -> int:
    """Report a failure once: by rank 0 if every rank failed, else by the failing ranks.

    A failure on some ranks only aborts the job, so that the others do not wait forever.
    """
    everywhere = _all_failed(agreement)
    if everywhere and comm.rank == 0:
        print(f"hmm-fenics: {message}", file=sys.stderr)
    if not everywhere:
        print(f"hmm-fenics: rank {comm.rank}: {message}", file=sys.stderr, flush=True)
        comm.Abort(code)
    return code


def _all_failed(agreement: Any) -> bool:
    """Whether every rank reaches the failure barrier within ``AGREE_SECONDS``."""
    if agreement is None:
        return True
    request = agreement.Ibarrier()
    deadline = time.monotonic() + AGREE_SECONDS
    while time.monotonic() < deadline:
        if request.Test():
            return True
        time.sleep(0.01)
    return False


def _with_petsc_options(
    run: Callable[[argparse.Namespace], int],
    options: dict[str, str | None],
    args: argparse.Namespace,
) -> int:
    """Run a command with the command line's PETSc options in PETSc's database."""
    from mpi4py import MPI

    with command_line_options(options, MPI.COMM_WORLD):
        return int(run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hmm-fenics",
        description="FE² / HMM homogenization on FEniCSx.",
        epilog=PETSC_HELP,
    )
    parser.add_argument(
        "--version", action=_VersionAction, nargs=0, help="show the version and exit"
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    hom = sub.add_parser("homogenize", help="effective tensor of a periodic RVE", epilog=PETSC_HELP)
    hom.add_argument(
        "cell",
        nargs="?",
        help="cell TOML file, or a run file (its cell); default: the glass/epoxy fibre cell",
    )
    hom.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    hom.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    hom.add_argument(
        "--realizations",
        type=int,
        metavar="N",
        help="random cells: N seeds, with mean, std and 95%% CI",
    )
    hom.set_defaults(run=_homogenize)
    rve = sub.add_parser("rve", help="write the RVE mesh (.msh + .xdmf) and, in 2D, a PNG picture")
    rve.add_argument(
        "cell",
        nargs="?",
        help="cell TOML file, or a run file (its cell); default: the glass/epoxy fibre cell",
    )
    rve.add_argument("-o", "--output", required=True, metavar="CELL.msh", help="mesh file to write")
    rve.add_argument("--png", metavar="CELL.png", help="picture of the phases and the mesh (2D)")
    rve.add_argument("--overwrite", action="store_true", help="replace existing files")
    rve.set_defaults(run=_rve)
    job = sub.add_parser(
        "run",
        help="an FE² (or homogenization) job from a run file",
        description="Run an FE² job, or a homogenization job (no [macro] table), from a TOML "
        "run file; writes XDMF fields, micro snapshots, PNGs (2D) and results.json.",
        epilog=PETSC_HELP,
    )
    job.add_argument("config", nargs="?", help="run file (TOML); see --example")
    job.add_argument(
        "-o", "--output", metavar="DIR", help="output folder (default: out/<config name>)"
    )
    job.add_argument(
        "--overwrite", action="store_true", help="write into a non-empty output folder"
    )
    job.add_argument(
        "--example", action="store_true", help="print a run file with every key, then exit"
    )
    job.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="write a checkpoint (OUTPUT/checkpoint) every N load steps (0: none by count)",
    )
    job.add_argument(
        "--checkpoint-minutes",
        type=float,
        metavar="M",
        help="write a checkpoint when M minutes of wall time passed since the last one "
        "(default for a J2/Maxwell run: 30; 0: none by time); SIGTERM and SIGINT always "
        "stop at the end of the step with a checkpoint (exit 143 / 130)",
    )
    job.add_argument(
        "--resume",
        action="store_true",
        help="go on from the last complete checkpoint in the output folder",
    )
    job.add_argument(
        "--force",
        action="store_true",
        help="with --resume: go on although physics keys of the run file changed",
    )
    job.set_defaults(run=_run)
    studies = _study_parsers(sub)
    size = sub.add_parser(
        "rve-size",
        help="the smallest window δ whose Dirichlet–Neumann gap (or 95%% CI) is below --tol",
        description="Grow the window (tilings of a periodic cell, centred crops of an image, "
        "larger random cells) until the apparent tensors under Dirichlet and Neumann "
        "conditions agree to --tol (gap ‖D − N‖₂/‖P‖₂), or for random media the 95%% CI of "
        "the mean is below --tol; reports every window, its bounds and the time spent.",
        epilog=PETSC_HELP,
    )
    size.add_argument("cell", help="cell TOML file (or a run file: its cell)")
    size.add_argument("--tol", type=float, default=0.01, help="relative tolerance (default 0.01)")
    size.add_argument(
        "--max-size", type=int, default=4, metavar="K", help="largest window step k (default 4)"
    )
    size.add_argument(
        "--criterion",
        choices=["auto", "gap", "ci", "both"],
        default="auto",
        help="gap (D–N), ci (random media), both; auto: ci for random media, else gap",
    )
    size.add_argument(
        "--realizations", type=int, default=8, metavar="N", help="random media: N per size (8)"
    )
    size.add_argument(
        "--step",
        type=int,
        metavar="PIXELS",
        help="image cells: the crop grows by PIXELS per axis (default: smallest side / K)",
    )
    size.add_argument("-o", "--output", metavar="DIR", help="write DIR/rve_size.json")
    size.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    size.add_argument("--overwrite", action="store_true", help="replace DIR/rve_size.json")
    size.set_defaults(run=_rve_size)
    for p in (hom, rve, job, size, *studies):
        p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
        p.add_argument(
            "-v", "--verbose", action="store_true", help="debug log, and tracebacks of failures"
        )
    return parser


def _study_parsers(sub: Any) -> list[argparse.ArgumentParser]:
    """``study NAME``: one parser per study of the registry, with its own options."""
    from hmm_fenics.studies import STUDIES

    study = sub.add_parser(
        "study", help="a study of the HMM errors: JSON and PNG in an output folder"
    )
    names = study.add_subparsers(required=True, metavar="STUDY", dest="study")
    parsers = []
    for name, module in STUDIES.items():
        doc = (module.__doc__ or name).strip()
        p = names.add_parser(
            name,
            help=doc.splitlines()[0],
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog=PETSC_HELP,
        )
        module.add_arguments(p)
        p.add_argument(
            "-o", "--output", required=True, metavar="DIR", help=f"writes DIR/{name}.json and PNG"
        )
        p.add_argument("--overwrite", action="store_true", help="replace existing results")
        p.set_defaults(run=_study, study_module=module)
        parsers.append(p)
    return parsers


class _VersionAction(argparse.Action):
    """``--version``: the version is looked up only when asked for (it costs start-up time)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from hmm_fenics import __version__

        print(f"hmm-fenics {__version__}")
        parser.exit()


def _refuse_overwrite(paths: list[Path], overwrite: bool) -> None:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD  # rank 0 looks, so that every rank decides alike
    existing = comm.bcast([str(p) for p in paths if p.exists()] if comm.rank == 0 else None)
    if existing and not overwrite:
        raise InputError(
            f"{existing} exist(s); pass --overwrite to replace, or choose other paths."
        )


def _run(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from hmm_fenics.run.job import run
    from hmm_fenics.run.restart import Policy
    from hmm_fenics.run.schema import EXAMPLE, load_run_config

    comm = MPI.COMM_WORLD
    if args.example:
        if comm.rank == 0:
            print(EXAMPLE, end="")
        return 0
    if args.config is None:
        raise InputError("give a run file: hmm-fenics run CONFIG.toml (see --example).")
    if args.force and not args.resume:
        raise InputError("--force only applies with --resume.")
    for flag, value in (("--checkpoint-every", args.checkpoint_every),
                        ("--checkpoint-minutes", args.checkpoint_minutes)):  # fmt: skip
        if value is not None and not value >= 0:
            raise InputError(f"{flag} must be ≥ 0 (0: off), got {value}.")
    config = load_run_config(args.config)
    output = Path(args.output) if args.output else Path("out") / Path(args.config).stem
    policy = None
    if args.checkpoint_every is not None or args.checkpoint_minutes is not None:
        policy = Policy(args.checkpoint_every or None, args.checkpoint_minutes or None)
    results = run(
        config,
        output,
        args.overwrite,
        comm,
        progress=not args.quiet,
        checkpoints=policy,
        resume=args.resume,
        force=args.force,
    )
    if comm.rank == 0 and not args.quiet:
        print(format_run(results, output))
    return 0


def _rve(args: argparse.Namespace) -> int:
    from hmm_fenics.io import preview_rve

    out = Path(args.output)
    png = Path(args.png) if args.png else None
    written = [out, out.with_suffix(".xdmf"), out.with_suffix(".h5"), *([png] if png else [])]
    _refuse_overwrite(written, args.overwrite)
    config = _cell_of(args.cell)
    if config.rve.kind == "file":
        raise InputError(
            'rve.kind = "file" is a mesh already; `hmm-fenics rve` writes generated cells.'
        )
    from mpi4py import MPI

    from hmm_fenics.parallel.collective import on_one_rank

    def write() -> str:
        """One writer; its failure (a cell check, the disk) is raised on every rank."""
        preview = preview_rve(config.rve, out, png)
        for path in preview.files:
            log.info("wrote %s", path)
        return preview.summary(config.rve)

    summary = on_one_rank(MPI.COMM_WORLD, write)
    if not args.quiet and _rank() == 0:
        print(summary)
    return 0


def _mesh_cell_ahead(args: argparse.Namespace) -> None:
    """Start gmsh on the cell of ``homogenize`` (``rve.mesh.mesh_ahead``), before MPI loads.

    Best effort, and nothing is reported yet (the rank and the log are not set up): a cell
    file that cannot be read, or any other failure here, is met again by the command, which
    says why once. Nothing starts for an output the command will refuse to overwrite.
    """
    from hmm_fenics.rve.mesh import mesh_ahead
    from hmm_fenics.rve.spec import RVESpec

    if args.realizations is not None or (
        args.json and not args.overwrite and Path(args.json).exists()
    ):
        return
    try:
        config = _cell_of(args.cell)
        if isinstance(config.rve, RVESpec):
            mesh_ahead(config.rve)
    except Exception:  # met again and reported by the command
        return


def _homogenize(args: argparse.Namespace) -> int:
    out = Path(args.json) if args.json else None
    if out is not None:
        _refuse_overwrite([out], args.overwrite)
    config = _cell_of(args.cell)
    if args.cell is None:
        log.info("No cell file given: homogenizing the default glass/epoxy fibre cell.")
    if args.realizations is not None:
        return _ensemble(args, config, out)
    # what the cell needs next loads while gmsh meshes it (_mesh_cell_ahead)
    from mpi4py import MPI

    import dolfinx.fem.petsc
    import dolfinx.io.gmsh  # noqa: F401

    from hmm_fenics.coupling.homogenize import homogenize
    from hmm_fenics.parallel.collective import agree

    result = agree(  # every rank solves the cell: one that fails alone must not hang the rest
        MPI.COMM_WORLD,
        lambda: homogenize(
            config.rve,
            config.physics,
            config.materials,
            config.degree,
            config.solver,
            bc=config.bc,
            oversampling=config.oversampling,
        ),
    )
    if not args.quiet and _rank() == 0:
        print(format_result(result._asdict()))
    if out is not None:
        _write_json(out, {"input": args.cell or "<default cell>", **result.to_dict()})
    return 0


def _study(args: argparse.Namespace) -> int:
    """Run a study of the registry; rank 0 writes its JSON and pictures."""
    from mpi4py import MPI

    from hmm_fenics.parallel.collective import on_one_rank

    comm = MPI.COMM_WORLD
    out = Path(args.output)
    _refuse_overwrite([out / f"{args.study}.json"], args.overwrite)
    result = args.study_module.run(args, comm)
    _write_json(out / f"{result.name}.json", result.data)
    pictures = on_one_rank(comm, lambda: [str(p) for p in result.draw(out)])
    if not args.quiet and comm.rank == 0:
        print(result.summary)
        print(f"wrote {out / f'{result.name}.json'}" + "".join(f", {p}" for p in pictures))
    return 0


def _rve_size(args: argparse.Namespace) -> int:
    from mpi4py import MPI

    from hmm_fenics.strict_json import dumps
    from hmm_fenics.studies.rve_size import check_arguments, format_selection, select_rve_size

    comm = MPI.COMM_WORLD
    check_arguments(args.tol, args.max_size, args.realizations, args.step)
    out = Path(args.output) / "rve_size.json" if args.output else None
    if out is not None:
        _refuse_overwrite([out], args.overwrite)
    config = _cell_of(args.cell)
    selection = select_rve_size(
        config, args.tol, args.max_size, args.criterion, args.realizations, args.step, comm
    )
    data = {"input": args.cell, **selection.to_dict()}
    if out is not None:
        _write_json(out, data)
    if comm.rank == 0 and args.json:
        print(dumps(data), end="")
    elif comm.rank == 0 and not args.quiet:
        print(format_selection(selection))
    return 0


RUN_ONLY = ("macro", "dirichlet", "neumann", "loading", "output")
"""Tables that only run files have (``[micro]``, ``[solver]`` and ``[petsc]`` are in both)."""


def _cell_of(path: str | None) -> Any:
    """The ``CellConfig`` of a cell file, or of a run file's cell (None: the default cell).

    A run file is one with a table of ``RUN_ONLY``, a ``[solver]`` with the macro Newton's
    keys, or ``[micro]`` keys beyond the boundary condition; its ``[petsc]`` options with
    ``hmm_micro_`` and its ``[micro]`` BC are the cell's.
    """
    from hmm_fenics.config import BC_KEYS, RUN_SOLVER_KEYS, load_cell_config, read_toml

    if path is None:
        return load_cell_config(None)
    data = read_toml(path)
    solver, micro = data.get("solver"), data.get("micro")
    if (
        any(key in data for key in RUN_ONLY)
        or (isinstance(solver, dict) and any(key in solver for key in RUN_SOLVER_KEYS))
        or (isinstance(micro, dict) and set(micro) - BC_KEYS)
    ):
        from hmm_fenics.run.medium import is_function_medium
        from hmm_fenics.run.schema import load_run_config

        if is_function_medium(data):
            raise InputError(
                f"{path}: micro.medium = {data['micro']['medium']!r} is a coefficient function: "
                "the run file has no single cell (each macro point samples its own window); "
                "use `hmm-fenics run` on it, or give a cell file."
            )
        log.debug("%s is a run file: using its cell", path)
        return load_run_config(path).cell
    return load_cell_config(path)


def _rank() -> int:
    from mpi4py import MPI

    return int(MPI.COMM_WORLD.rank)


def _write_json(out: Path, data: dict[str, Any]) -> None:
    """Rank 0 writes; every rank returns once the file is there (or raises its failure)."""
    from mpi4py import MPI

    from hmm_fenics.parallel.collective import on_one_rank
    from hmm_fenics.strict_json import dumps

    def write() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(dumps(data))
        log.info("Results written to %s", out)

    on_one_rank(MPI.COMM_WORLD, write)


def _ensemble(args: argparse.Namespace, config: Any, out: Path | None) -> int:
    from hmm_fenics.coupling.ensemble import ensemble

    result = ensemble(
        config.rve,
        config.physics,
        config.materials,
        args.realizations,
        config.degree,
        config.solver,
        bc=config.bc,
        oversampling=config.oversampling,
    )
    if not args.quiet and _rank() == 0:
        print(format_ensemble(result, config.physics.name, config.physics.dim))
    if out is not None:
        data = {
            "input": args.cell,
            "physics": config.physics.name,
            "notation": config.physics.notation,
            "dim": config.physics.dim,
            **result.to_dict(),
        }
        _write_json(out, data)
    return 0


if __name__ == "__main__":
    console()

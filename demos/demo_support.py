"""What every demo does around its physics: arguments, the run file, checks, results.

A demo loads its run file (``demos/<name>.toml``, runnable on its own with ``hmm-fenics run``),
sets the sizes of ``--size``, runs it, compares its numbers with references computed
independently, and adds those checks to ``results.json``. It exits with 1 if a check fails.
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from mpi4py import MPI

from hmm_fenics.config import read_toml
from hmm_fenics.errors import InputError
from hmm_fenics.petsc_options import PETSC_HELP, command_line_options, split_command_line
from hmm_fenics.run.job import run
from hmm_fenics.run.schema import RunConfig, parse_run_config
from hmm_fenics.strict_json import dumps

HERE = Path(__file__).parent


def arguments(name: str, description: str, extra=None) -> argparse.Namespace:
    """``--size small|medium``, ``--output``, ``--overwrite``, ``--quiet``, PETSc options.

    PETSc options (``-hmm_micro_pc_type lu``) are split off before argparse, which would
    read ``-hmm…`` as ``-h``; ``execute`` gives them to PETSc. ``extra(parser)`` adds a
    demo's own options.
    """
    parser = argparse.ArgumentParser(description=description, epilog=PETSC_HELP)
    parser.add_argument("--size", choices=["small", "medium"], default="small")
    if extra is not None:
        extra(parser)
    parser.add_argument("--output", default=f"out/demo_{name}", help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="reuse a non-empty output")
    parser.add_argument("--quiet", action="store_true", help="no progress, no summary")
    try:
        rest, petsc_options = split_command_line(sys.argv[1:])
    except InputError as err:
        parser.error(str(err))
    args = parser.parse_args(rest)
    args.petsc_options = petsc_options
    verbose = MPI.COMM_WORLD.rank == 0 and not args.quiet
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(message)s")
    return args


def load(name: str, changes: dict[str, dict[str, Any]]) -> RunConfig:
    """The demo's run file with ``changes`` (table → key → value) applied."""
    path = HERE / f"{name}.toml"
    data = read_toml(path)
    for table, values in changes.items():
        data[table] = {**data.get(table, {}), **values}
    return parse_run_config(data, HERE, str(path))


def execute(config: RunConfig, args: argparse.Namespace) -> dict[str, Any]:
    """Run the job; an input error (also an unused PETSc option) ends the demo with exit code 2."""
    try:
        with command_line_options(args.petsc_options, MPI.COMM_WORLD):
            return run(config, args.output, args.overwrite, progress=not args.quiet)
    except InputError as err:
        if MPI.COMM_WORLD.rank == 0:
            print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def check(
    name: str, value: float, reference: float, tolerance: float, relative: bool = True
) -> dict[str, Any]:
    """A compared number: |value − reference| ≤ tolerance (× |reference| if relative)."""
    error = abs(value - reference) / (abs(reference) if relative and reference else 1.0)
    return {
        "name": name,
        "value": value,
        "reference": reference,
        "error": error,
        "tolerance": tolerance,
        "passed": bool(error <= tolerance),
    }


def within(name: str, value: float, low: float, high: float) -> dict[str, Any]:
    """A number that must lie in [low, high] (bounds)."""
    return {
        "name": name,
        "value": value,
        "low": low,
        "high": high,
        "passed": bool(low <= value <= high),
    }


def finish(
    results: dict[str, Any], checks: list[dict[str, Any]], args: argparse.Namespace, summary: str
) -> None:
    """Add the checks to results.json, print them (rank 0), exit 1 if one failed."""
    comm = MPI.COMM_WORLD
    results = {**results, "size": args.size, "checks": checks}
    failed = [c["name"] for c in checks if not c["passed"]]
    if comm.rank == 0:
        (Path(args.output) / "results.json").write_text(dumps(results))
        if not args.quiet:
            print(summary)
            for c in checks:
                mark = "ok  " if c["passed"] else "FAIL"
                if "reference" in c:
                    print(
                        f"  {mark} {c['name']}: {c['value']:.6g} vs {c['reference']:.6g} (error {c['error']:.1e} ≤ {c['tolerance']:.0e})"
                    )
                else:
                    print(
                        f"  {mark} {c['name']}: {c['value']:.6g} in [{c['low']:.6g}, {c['high']:.6g}]"
                    )
            print(f"  wrote {args.output}/")
            if "timings_table" in results:
                print("\n".join(["", *results["timings_table"]]))
        if failed:
            print(f"demo checks failed: {failed}", file=sys.stderr)
    if failed:
        sys.exit(1)

"""PETSc options on the command line (``-hmm_micro_pc_type lu``) reach PETSc, bad ones are named.

argparse reads ``-hmm…`` as ``-h`` (help, exit 0, nothing run); the options are split off
before it and put into PETSc's database for the duration of the command.
"""

import importlib
import json
import sys
from pathlib import Path

import pytest
from conftest import cli_error
from test_cli import LAMINATE

from hmm_fenics.cli import main
from hmm_fenics.errors import InputError
from hmm_fenics.petsc_options import split_command_line

# a laminate's conductivity across the layers is the harmonic mean, along them the arithmetic
K_ACROSS, K_ALONG = 1 / (0.5 / 1.0 + 0.5 / 10.0), 0.5 * 1.0 + 0.5 * 10.0


def shared_folder(tmp_path: Path) -> Path:
    from mpi4py import MPI

    return MPI.COMM_WORLD.bcast(tmp_path, root=0)


def leftover_options() -> dict:
    from petsc4py import PETSc

    return {k: v for k, v in PETSc.Options().getAll().items() if k.startswith("hmm_")}


def test_split_command_line():
    argv = "run job.toml -hmm_micro_pc_type lu -o out -hmm_micro_ksp_monitor"
    rest, options = split_command_line([*argv.split(), "-hmm_macro_ksp_rtol", "-1e-3", "-vq"])
    assert rest == ["run", "job.toml", "-o", "out", "-vq"]
    assert options == {
        "hmm_micro_pc_type": "lu",
        "hmm_micro_ksp_monitor": None,
        "hmm_macro_ksp_rtol": "-1e-3",
    }


@pytest.mark.parametrize("token", ["-ksp_type", "-hmm_pc_type", "-hmm_micro_"])
def test_an_option_without_a_solver_prefix_is_named(token):
    with pytest.raises(InputError, match=f"'{token}' has no solver prefix"):
        split_command_line(["run", "job.toml", token, "cg"])


def test_run_with_a_petsc_option_runs(tmp_path, capsys):
    folder = shared_folder(tmp_path)
    (folder / "job.toml").write_text(LAMINATE)  # every rank writes the same text
    out = folder / "out"
    args = ["run", str(folder / "job.toml"), "-o", str(out), "-hmm_micro_pc_type", "lu", "-q"]
    assert main(args) == 0
    tensor = json.loads((out / "results.json").read_text())["tensor"]
    assert tensor[0][0] == pytest.approx(K_ACROSS, rel=1e-10)
    assert tensor[1][1] == pytest.approx(K_ALONG, rel=1e-10)
    assert leftover_options() == {}


def test_the_option_reaches_petsc(tmp_path, capsys):
    cell = shared_folder(tmp_path) / "cell.toml"
    cell.write_text(LAMINATE)
    assert main(["homogenize", str(cell), "-hmm_micro_pc_type", "nosuchpc", "-q"]) == 2
    err = cli_error(capsys)
    assert "unknown PETSc type" in err and "'pc_type': 'nosuchpc'" in err, err
    assert leftover_options() == {}


@pytest.mark.parametrize(
    "option", ["-hmm_micro_pc_typo", "-hmm_macro_pc_type"]
)  # misspelled; no macro solver in a homogenization
def test_an_option_no_solver_read_is_named(tmp_path, capsys, option):
    cell = shared_folder(tmp_path) / "cell.toml"
    cell.write_text(LAMINATE)
    assert main(["homogenize", str(cell), option, "lu", "-q"]) == 2
    err = cli_error(capsys)
    assert f"['{option}'] were never read by a solver" in err, err
    assert leftover_options() == {}


def test_an_option_without_prefix_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["homogenize", "-ksp_type", "cg"])
    assert exit_.value.code == 2
    assert "write -hmm_micro_ksp_type" in capsys.readouterr().err


def test_demo_arguments_take_petsc_options(monkeypatch):
    demos = Path(__file__).parents[1] / "demos"
    monkeypatch.syspath_prepend(str(demos))
    support = importlib.import_module("demo_support")
    monkeypatch.setattr(
        sys, "argv", ["fe2_plate.py", "--size", "small", "-hmm_micro_pc_type", "lu"]
    )
    args = support.arguments("fe2_plate", "a demo")
    assert args.size == "small"
    assert args.petsc_options == {"hmm_micro_pc_type": "lu"}

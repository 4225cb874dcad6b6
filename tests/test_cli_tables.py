"""Tensors print as tables without ``-0.00000``, ensembles as a table (issue 15 point 6)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_error

from hmm_fenics.cli import main
from hmm_fenics.summaries import fixed, format_result

CELL = (
    '[rve]\nkind = "{kind}"\ndim = 2\nfraction = 0.3\nmesh_size = 0.08\n{extra}'
    '[physics]\nkind = "diffusion"\n[materials.matrix]\nk = 1.0\n[materials.inclusion]\nk = 10.0\n'
)


def test_fixed_never_prints_negative_zero():
    assert fixed(-1e-12) == "0.00000" and fixed(-4e-6, 9) == "  0.00000"
    assert fixed(-6e-6) == "-0.00001" and fixed(2.5, 8, 2) == "    2.50"


def test_a_tensor_with_round_off_below_zero_prints_zeros():
    result = {
        "tensor": [[1.5, -1e-17], [-3e-13, 1.5]],
        "physics": "diffusion",
        "dim": 2,
        "bc": "periodic",
        "timings": {"solve": 0.1},
        **dict.fromkeys(["dofs", "unknowns", "degree"], 1),
        **dict.fromkeys(
            ["fraction", "gradient_error", "periodicity_error", "hill_mandel_residual"], 0.0
        ),
        "symmetry_error": 0.0,
    }
    text = format_result(result)
    assert "-0.0" not in text
    assert re.search(r"^\s+1\s+1\.50000\s+0\.00000$", text, flags=re.M)


def shared_cell(tmp_path, text):
    from mpi4py import MPI

    # rank 0's folder on every rank (each rank has a tmp_path of its own)
    folder = MPI.COMM_WORLD.bcast(str(tmp_path) if MPI.COMM_WORLD.rank == 0 else None)
    cell = Path(folder) / "cell.toml"
    if MPI.COMM_WORLD.rank == 0:
        cell.write_text(text)
    MPI.COMM_WORLD.barrier()
    return cell


def test_homogenize_prints_no_negative_zero(tmp_path, capsys):
    # a laminate: its off-diagonal conductivities are round-off, here negative (-7e-15)
    cell = shared_cell(tmp_path, CELL.format(kind="laminate", extra=""))
    assert main(["homogenize", str(cell)]) == 0
    out = capsys.readouterr().out
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank == 0:
        assert "Effective conductivity" in out and "-0.00000" not in out
        assert re.search(r"^\s+1\s+\d\.\d{5}\s+0\.00000$", out, flags=re.M)


def test_realizations_print_a_table_of_the_entries(tmp_path, capsys):
    text = CELL.format(kind="random", extra="count = 3\nseed = 2\n")
    cell = shared_cell(tmp_path, text)
    out_json = cell.parent / "e.json"
    assert main(["homogenize", str(cell), "--realizations", "3", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank != 0:
        assert out == ""
        return
    data = json.loads(out_json.read_text())
    assert "[[" not in out and "-0.00000" not in out  # no raw arrays
    lines = out.splitlines()
    assert lines[0].startswith("3 realizations (seeds 2–4), micro BC periodic")
    assert lines[1].split() == ["entry", "mean", "std", "95%", "CI", "±", "±", "/", "|mean|"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:5]}
    assert list(rows) == ["1,1", "1,2", "2,2"]
    for (i, j), name in zip([(0, 0), (0, 1), (1, 1)], rows, strict=True):
        mean, std, ci = (float(v) for v in rows[name][:3])
        np.testing.assert_allclose(mean, data["mean"][i][j], atol=5e-6)  # 5 decimals shown
        np.testing.assert_allclose(std, data["std"][i][j], atol=5e-6)
        np.testing.assert_allclose(ci, data["ci95"][i][j], atol=5e-6)
    assert float(rows["1,1"][3]) == pytest.approx(data["ci95"][0][0] / data["mean"][0][0], rel=1e-2)
    assert lines[5].startswith("inclusion fractions ")


def test_realizations_refuse_a_periodic_kind(tmp_path, capsys):
    cell = shared_cell(tmp_path, CELL.format(kind="inclusion", extra=""))
    assert main(["homogenize", str(cell), "--realizations", "3"]) == 2
    assert "random" in cli_error(capsys)

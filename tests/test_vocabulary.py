"""One vocabulary for run and cell files (issue 15 point 3).

``[petsc]`` means the same in both; ``homogenize`` takes a run file; ``run --example`` shows
every key the parsers accept, with the default the code states; the README lists every kind.
"""

import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_error

from hmm_fenics.cli import _cell_of, main
from hmm_fenics.config import parse_cell_config
from hmm_fenics.errors import InputError
from hmm_fenics.run.schema import EXAMPLE, parse_run_config
from hmm_fenics.rve.spec import KINDS_2D, KINDS_3D

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "docs"))
import generate_reference  # noqa: E402

CELL = (
    '[rve]\nkind = "laminate"\ndim = 2\nfraction = 0.3\nmesh_size = 0.1\n'
    '[physics]\nkind = "diffusion"\n[materials.matrix]\nk = 1.0\n[materials.inclusion]\nk = 10.0\n'
)
MACRO = '[macro]\ngeometry = "rectangle"\nmesh_size = 0.5\n[dirichlet]\nleft = 0.0\nright = 1.0\n'


def cell(text):
    return parse_cell_config(tomllib.loads(text), Path("."))


def test_petsc_means_the_same_in_cell_and_run_files():
    options = '[petsc]\nhmm_micro_pc_type = "lu"\nhmm_micro_ksp_type = "preonly"\n'
    expected = {"pc_type": "lu", "ksp_type": "preonly"}
    assert cell(CELL + options).solver == expected
    run = parse_run_config(tomllib.loads(CELL + MACRO + options), Path("."))
    assert run.cell.solver == expected
    # the older spelling of cell files still works
    assert cell(CELL + '[solver]\npc_type = "lu"\nksp_type = "preonly"\n').solver == expected


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ('[petsc]\nhmm_micro_pc_type = "lu"\n[solver]\npc_type = "lu"\n', "remove [solver]"),
        ('[petsc]\nhmm_macro_ksp_type = "cg"\n', "petsc.hmm_macro_ksp_type"),
        ('[petsc]\npc_type = "lu"\n', "petsc.pc_type"),
        ("[solver]\nrtol = 1e-8\n", "solver.rtol"),
        ('[solver]\nhmm_micro_pc_type = "lu"\n', "solver.hmm_micro_pc_type"),
        ("[petsc]\nhmm_micro_pc_type = [1]\n", "petsc.hmm_micro_pc_type"),
    ],
)
def test_ambiguous_or_misplaced_solver_options_are_refused(extra, named):
    with pytest.raises(InputError) as err:
        cell(CELL + extra)
    assert named in str(err.value)


def shared_folder(tmp_path):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    return Path(comm.bcast(str(tmp_path) if comm.rank == 0 else None))


@pytest.mark.parametrize(
    "run_part",
    [
        MACRO + '[petsc]\nhmm_micro_pc_type = "lu"\nhmm_macro_pc_type = "lu"\n',
        '[solver]\nrtol = 1e-8\n[output]\npng = false\n[micro]\nmodel = "cell"\n',  # no [macro]
    ],
    ids=["fe2-run-file", "homogenization-run-file"],
)
def test_homogenize_takes_a_run_file(tmp_path, capsys, run_part):
    from mpi4py import MPI

    folder = shared_folder(tmp_path)
    if MPI.COMM_WORLD.rank == 0:
        (folder / "cell.toml").write_text(CELL)
        (folder / "run.toml").write_text(CELL + run_part)
    MPI.COMM_WORLD.barrier()
    assert _cell_of(str(folder / "run.toml")).physics.name == "diffusion"
    for name in ("cell", "run"):
        json_out = folder / f"{name}.json"
        assert (
            main(["homogenize", str(folder / f"{name}.toml"), "--json", str(json_out), "-q"]) == 0
        )
    import json

    tensors = [
        np.array(json.loads((folder / f"{n}.json").read_text())["tensor"]) for n in ("cell", "run")
    ]
    # the same cell; the FE² run file's [petsc] asks for LU instead of the default Cholesky,
    # so round-off may differ
    np.testing.assert_allclose(tensors[0], tensors[1], rtol=1e-12, atol=1e-14)
    # the laminate closed form (references.md): harmonic across, arithmetic along the layers
    f = 0.3
    np.testing.assert_allclose(
        np.diag(tensors[1]), [1 / (f / 10 + (1 - f)), f * 10 + 1 - f], rtol=1e-12
    )


def test_a_run_file_with_an_error_in_its_run_part_names_the_key(tmp_path, capsys):
    from mpi4py import MPI

    folder = shared_folder(tmp_path)
    if MPI.COMM_WORLD.rank == 0:
        (folder / "run.toml").write_text(CELL + MACRO.replace("0.5", "-1.0"))
    MPI.COMM_WORLD.barrier()
    assert main(["homogenize", str(folder / "run.toml")]) == 2
    assert "macro.mesh_size" in cli_error(capsys)


def example_output(capsys):
    assert main(["run", "--example"]) == 0
    from mpi4py import MPI

    return MPI.COMM_WORLD.bcast(capsys.readouterr().out, root=0)


def test_example_shows_every_accepted_key_with_the_codes_default(capsys):
    text = example_output(capsys)
    assert text == EXAMPLE
    keys = generate_reference.accepted_keys()["run"]
    _, tables = generate_reference.parse_example(text)
    headers = {t.name for t in tables}
    entries = {(t.name, e.key): e for t in tables for e in t.entries}
    materials = "\n".join(
        line for t in tables if t.name.startswith("materials.") for line in t.lines
    )
    missing, wrong = [], []
    for where, (required, optional) in keys.items():
        for key in sorted(required | optional):
            path = f"{where}.{key}" if where else key
            if where == "":  # a table: its header, set or commented out
                if key not in headers and not any(h.startswith(f"{key}.") for h in headers):
                    missing.append(path)
            elif where == "materials.<phase>":  # phase keys: named in the phase tables
                if not re.search(rf"(?<![\w.]){key}(?![\w.])", materials):
                    missing.append(path)
            elif path not in headers:  # sub-tables ([micro.graded]) are headers
                entry = entries.get((where, key))
                default = generate_reference._defaults(where).get(key, "unset")
                if entry is None:
                    missing.append(path)
                elif default != "unset":
                    shown = repr(tomllib.loads(f"v = {entry.value}")["v"]).replace("'", '"')
                    if shown != default:
                        wrong.append(f"{path} = {entry.value} (the code's default: {default})")
    assert not missing, f"keys the parsers accept that --example does not show: {missing}"
    assert not wrong, f"--example values that are not the default: {wrong}"


def test_readme_toml_comments_list_every_kind():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, flags=re.S)
    with_rve = [b for b in blocks if re.search(r"^\[rve\]", b, flags=re.M)]
    assert len(with_rve) >= 2  # the run-file example and the cell file
    for block in with_rve:
        comments = " ".join(line.split("#", 1)[1] for line in block.splitlines() if "#" in line)
        absent = [
            k for k in {*KINDS_2D, *KINDS_3D} if not re.search(rf"(?<![\w-]){k}(?![\w-])", comments)
        ]
        assert not absent, f"a README [rve] example does not name the kinds {absent}"

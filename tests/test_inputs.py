"""Bad input stops before any work with exit code 2 and a message naming the key.

Each case ran on the old code: it passed silently, crashed with another exception (exit 1),
or named the wrong key. Runs in-process on every rank under mpirun.
"""

import json
import logging
import math
import re

from mpi4py import MPI

import numpy as np
import pytest
from conftest import cli_error

import hmm_fenics as hf
from hmm_fenics.cli import main
from hmm_fenics.config import load_cell_config
from hmm_fenics.coupling.ensemble import MAX_REALIZATIONS
from hmm_fenics.errors import InputError
from hmm_fenics.macro.mesh import MAX_MACRO_CELLS, check_geometry, estimated_cells, macro_mesh
from hmm_fenics.run.checks import dirichlet_conflict
from hmm_fenics.rve.spec import MAX_COUNT, RVESpec
from hmm_fenics.strict_json import dumps, finite_or_null

CELL = """\
[rve]
kind = "inclusion"
dim = 2
fraction = 0.2
mesh_size = 0.1
[physics]
kind = "diffusion"
[materials.matrix]
k = 1.0
[materials.inclusion]
k = 10.0
"""

RUN = """\
[macro]
geometry = "rectangle"
mesh_size = 0.5

[dirichlet]
left = 1.0
right = 0.0

[micro]
model = "effective"
"""

GRADED = """
[micro.graded]
parameter = "fraction"
axis = "x"
start = [0.0, 0.1]
end = [1.0, 0.3]
step = 0.05
"""


@pytest.fixture
def folder(tmp_path):
    """One folder for all ranks (rank 0's tmp_path)."""
    return MPI.COMM_WORLD.bcast(tmp_path, root=0)


def write(folder, text, name):
    path = folder / name
    if MPI.COMM_WORLD.rank == 0:
        path.write_text(text)
    MPI.COMM_WORLD.barrier()
    return path


def cell(**rve):
    """The cell file with keys of [rve] replaced, added or (value None) removed."""
    head, rest = CELL.split("[physics]")
    lines = [line for line in head.splitlines() if line.split(" = ")[0] not in rve]
    lines += [f"{key} = {value}" for key, value in rve.items() if value is not None]
    return "\n".join(lines) + "\n[physics]" + rest


BAD_CELLS = {
    "center too short": (cell(center="[0.5]"), r"rve\.center must be a point of the cell"),
    "center outside": (cell(center="[1.5, 0.5]"), r"rve\.center must be a point of the cell"),
    "center nan": (cell(center="[0.5, nan]"), r"rve\.center\[1\] = nan"),
    "angle nan": (cell(angle="nan"), r"rve\.angle = nan: give a finite number"),
    "empty cell": (cell(cell="[]", mesh_size=None), r"rve\.cell must hold 2 positive lengths"),
    "refine huge": (cell(refine="1e9"), r"rve\.refine must be in \[1, 16\]"),
    "mesh_size inf": (cell(mesh_size="inf"), r"rve\.mesh_size = inf"),
    "conductivity inf": (CELL.replace("k = 10.0", "k = inf"), r"materials\.inclusion\.k = inf"),
    "negative seed": (
        cell(kind='"random"', seed="-1", count="4"),
        r"rve\.seed must be an integer from 0",
    ),
    "count too large": (
        cell(kind='"random"', count=str(10 * MAX_COUNT)),
        rf"rve\.count must be an integer from 1 to {MAX_COUNT}",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CELLS))
def test_bad_cell_file_exits_2_naming_the_key(folder, capsys, case):
    text, message = BAD_CELLS[case]
    path = write(folder, text, "cell.toml")
    assert main(["homogenize", str(path)]) == 2
    err = cli_error(capsys)
    assert err.startswith("hmm-fenics: error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err


def test_too_many_realizations_exit_2(folder, capsys):
    path = write(folder, cell(kind='"random"', count="4"), "cell.toml")
    assert main(["homogenize", str(path), "--realizations", str(MAX_REALIZATIONS + 1)]) == 2
    assert f"--realizations must be from 2 (for statistics) to {MAX_REALIZATIONS}" in cli_error(
        capsys
    )


def test_center_of_the_wrong_length_is_an_input_error_in_the_api():
    """It was a ZeroDivisionError/IndexError from the geometry builder."""
    with pytest.raises(InputError, match=r"rve\.center"):
        RVESpec("inclusion", 2, fraction=0.2, center=(0.5,))
    with pytest.raises(InputError, match=r"rve\.angle must be finite"):
        RVESpec("inclusion", 2, fraction=0.2, angle=math.nan)
    RVESpec("inclusion", 2, fraction=0.2, center=(0.0, 1.0))  # on the boundary: wraps


def test_checkerboard_without_fraction_is_accepted(folder):
    """A new user's checkerboard file gives no fraction and must not be told to remove it."""
    text = cell(kind='"checkerboard"', fraction=None)
    assert "fraction" not in text
    config = load_cell_config(write(folder, text, "cb.toml"))
    assert config.rve.fraction == 0.5
    with pytest.raises(InputError, match=r"set it to 0\.5"):
        load_cell_config(write(folder, cell(kind='"checkerboard"', fraction="0.3"), "cb3.toml"))


BAD_RUNS = {
    "mesh_size too fine": (
        RUN.replace("mesh_size = 0.5", "mesh_size = 1e-4"),
        r"macro\.mesh_size = 0\.0001 would give about 2\.3e\+08 macro cells \(limit 2e\+06\)",
    ),
    "mesh_size inf": (RUN.replace("mesh_size = 0.5", "mesh_size = inf"), r"macro\.mesh_size"),
    "length inf": (
        RUN.replace("mesh_size = 0.5", "mesh_size = 0.5\nL = inf"),
        r"macro\.L = inf",
    ),
    "dirichlet nan": (RUN.replace("right = 0.0", "right = nan"), r"dirichlet\.right = nan"),
    "petsc nan": (RUN + "[petsc]\nhmm_macro_ksp_rtol = nan\n", r"petsc\.hmm_macro_ksp_rtol"),
    "graded step tiny": (
        RUN.replace('model = "effective"', "") + GRADED.replace("0.05", "1e-9"),
        r"micro\.graded\.step = 1e-09 must be positive and give at most 100 cells",
    ),
    "graded start nan": (
        RUN.replace('model = "effective"', "") + GRADED.replace("[0.0, 0.1]", "[0.0, nan]"),
        r"micro\.graded\.start\[1\] = nan",
    ),
    "under-integrated P2": (
        RUN.replace("mesh_size = 0.5", "mesh_size = 0.5\ndegree = 2\nquadrature_degree = 1"),
        r"macro\.quadrature_degree = 1 under-integrates the stiffness of degree-2",
    ),
}


@pytest.mark.parametrize("case", list(BAD_RUNS))
def test_bad_run_file_exits_2_naming_the_key(folder, capsys, case):
    text, message = BAD_RUNS[case]
    path = write(folder, text + CELL, "run.toml")
    assert main(["run", str(path), "-o", str(folder / "out")]) == 2
    err = cli_error(capsys)
    assert err.startswith("hmm-fenics: error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert not (folder / "out").exists()  # refused before any work


@pytest.mark.parametrize(
    ("geometry", "size", "dim"),
    [("rectangle", 0.05, 2), ("plate-with-hole", 0.05, 2), ("l-shape", 0.05, 2), ("box", 0.1, 3)],
)
def test_element_budget_estimates_the_mesh(geometry, size, dim):
    """The estimate behind the budget is within 25% of gmsh's cell count (measured 0.95–1.03)."""
    lengths = {"L": 1.0, "H": 1.0, "W": 1.0, "R": 0.25}
    built = macro_mesh(geometry, size, MPI.COMM_WORLD, lengths, dim=dim).mesh
    count = built.topology.index_map(built.topology.dim).size_global
    assert 0.75 < count / estimated_cells(geometry, size, lengths) < 1.25


def test_coarse_macro_mesh_sizes_are_honoured():
    """Halving mesh_size about quadruples the cells also for coarse sizes: the geometry
    points' default size used to cap it (162 triangles for every size >= 1/8)."""
    counts = []
    for size in (0.5, 0.25, 0.125):
        built = macro_mesh("rectangle", size, MPI.COMM_WORLD).mesh
        counts.append(built.topology.index_map(2).size_global)
    ratios = np.divide(counts[1:], counts[:-1])
    assert (ratios > 2.5).all() and (ratios < 6).all(), counts


@pytest.mark.parametrize("geometry", ["rectangle", "box", "plate-with-hole", "l-shape"])
def test_element_budget_suggests_a_size_that_passes(geometry):
    lengths = {"L": 2.0, "H": 1.0, "W": 1.0, "R": 0.25}
    error = check_geometry(geometry, 1e-4, lengths, None)
    assert error is not None
    suggested = float(re.search(r"use mesh_size ≥ ([0-9.e+-]+)\.", error).group(1))
    assert check_geometry(geometry, suggested, lengths, None) is None
    assert 0.9 * MAX_MACRO_CELLS < estimated_cells(geometry, suggested, lengths) <= MAX_MACRO_CELLS


def test_element_budget_with_extreme_lengths():
    """Found by the fuzzer: L ≈ 1.3e154 overflowed L² (OverflowError, exit 1)."""
    lengths = {"L": 1.3407807929942597e154, "H": 1.0, "W": 1.0, "R": 0.25}
    assert "use mesh_size ≥ 1.45e+151" in check_geometry("plate-with-hole", 0.05, lengths, None)
    lengths = {"L": 1e300, "H": 1.0, "W": 1.0, "R": 0.25}
    assert "no mesh size fits this elongated domain" in check_geometry("box", 0.1, lengths, None)


def test_dirichlet_conflict_names_both_boundaries():
    message = dirichlet_conflict("rectangle", {"left": 1.0, "bottom": 0.0, "right": 0.0})
    assert message is not None
    assert "dirichlet.left = 1 and dirichlet.bottom = 0" in message
    assert "right" not in message.split(".")[1]  # left/right never meet; bottom/right agree
    values = {"left": (0.0, None), "right": (0.01, None), "bottom": (None, 0.0)}
    assert dirichlet_conflict("rectangle", values) is None  # free components never clash
    clash = dirichlet_conflict("box", {"left": (0.0, 0.0, 0.0), "front": (0.0, 0.0, 0.1)})
    assert clash is not None and "dirichlet.left[2] = 0 and dirichlet.front[2] = 0.1" in clash
    assert dirichlet_conflict("box", {"left": (0.0,) * 3, "right": (1.0,) * 3}) is None
    assert dirichlet_conflict("file", {"a": 0.0, "b": 1.0}) is None  # unknown adjacency


def test_run_warns_of_conflicting_dirichlet_values(folder, caplog):
    text = RUN.replace("right = 0.0", "bottom = 0.0") + CELL
    with caplog.at_level(logging.WARNING):
        code = main(["run", str(write(folder, text, "run.toml")), "-o", str(folder / "o"), "-q"])
    assert code == 0
    warnings = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    if MPI.COMM_WORLD.rank == 0:
        assert "dirichlet.left = 1 and dirichlet.bottom = 0" in warnings
    else:
        assert warnings == ""


def test_json_is_strict():
    data = {"a": math.nan, "b": [1.0, math.inf, -math.inf], "c": (2, "x"), "d": {"e": 0.5}}
    assert finite_or_null(data) == {
        "a": None,
        "b": [1.0, None, None],
        "c": [2, "x"],
        "d": {"e": 0.5},
    }

    def refuse(constant):
        raise AssertionError(f"non-JSON constant {constant}")

    assert json.loads(dumps(data), parse_constant=refuse)["b"] == [1.0, None, None]


@pytest.mark.serial
def test_porous_cell_writes_strict_json(folder):
    """A porous cell's JSON is strict (it once held NaN for ⟨ε⟩ − G, now measured with the pores)."""
    text = CELL.replace('kind = "diffusion"', 'kind = "elasticity"')
    text = text.replace("k = 1.0", "E = 1.0\nnu = 0.3").replace("k = 10.0", "void = true")
    out = folder / "porous.json"
    assert (
        main(["homogenize", str(write(folder, text, "porous.toml")), "--json", str(out), "-q"]) == 0
    )

    def refuse(constant):
        raise AssertionError(f"non-JSON constant {constant} in {out}")

    data = json.loads(out.read_text(), parse_constant=refuse)
    assert data["gradient_error"] < 1e-10
    assert all(math.isfinite(v) for row in data["tensor"] for v in row)


def test_snapshot_point_outside_the_macro_domain_is_refused_before_the_solve(folder, capsys):
    from test_run import ELASTIC, run

    text = ELASTIC.format(steps=1).replace("snapshots = [[0.5, 0.5]]", "snapshots = [[100.0, 0.5]]")
    code, _ = run(folder, text, "--quiet")
    assert code == 2
    err = capsys.readouterr().err
    if MPI.COMM_WORLD.rank == 0:
        assert (
            "output.snapshots[0] = [100.0, 0.5] is 99" in err and "outside the macro domain" in err
        )
    assert not (folder / "out" / "results.json").exists()


# --- history laws: [materials.<phase>] law = "elastic" | "j2" | "maxwell" -----------------

ELASTIC_CELL = """\
[rve]
kind = "inclusion"
dim = 2
fraction = 0.2
mesh_size = 0.1
[physics]
kind = "elasticity"
plane = "{plane}"
[materials.matrix]
{matrix}
[materials.inclusion]
E = 70.0
nu = 0.2
"""
J2 = 'law = "j2"\nE = 70.0\nnu = 0.33\nsigma_y = 0.3\nH_iso = 1.0\nH_kin = 0.5'
MAXWELL = 'law = "maxwell"\nE = 1.0\nnu = 0.35\nprony = [[2.0, 0.1], [1.0, 10.0]]'


def test_history_laws_load_from_a_cell_file(folder):
    """The keys become the dataclass, its point law, and its instantaneous tensor: 2D plane
    strain is the in-plane block of the 3D tensor (Elasticity's own Lamé formulas as the
    independent reference), the Maxwell phase's is the glassy modulus E + Σ E_i."""
    from hmm_fenics.materials import HISTORY, J2Plastic, Maxwell
    from hmm_fenics.physics import Elasticity
    from hmm_fenics.point_laws import J2Plasticity, isotropic_stiffness

    config = load_cell_config(
        write(folder, ELASTIC_CELL.format(plane="strain", matrix=J2), "j.toml")
    )
    j2 = config.materials["matrix"]
    assert j2 == J2Plastic(E=70.0, nu=0.33, sigma_y=0.3, H_iso=1.0, H_kin=0.5)
    assert isinstance(j2, HISTORY) and not isinstance(config.materials["inclusion"], HISTORY)
    law = j2.point_law()
    assert isinstance(law, J2Plasticity) and law.n_vars == 14
    assert (law.sigma_y, law.H_iso, law.H_kin) == (0.3, 1.0, 0.5)
    assert np.allclose(j2.tensor(Elasticity(2)), Elasticity(2).isotropic_tensor(70.0, 0.33))
    assert np.allclose(j2.tensor(Elasticity(3)), Elasticity(3).isotropic_tensor(70.0, 0.33))

    text = ELASTIC_CELL.format(plane="strain", matrix=MAXWELL)
    maxwell = load_cell_config(write(folder, text, "m.toml")).materials["matrix"]
    assert maxwell == Maxwell(E=1.0, nu=0.35, prony=((2.0, 0.1), (1.0, 10.0)))
    assert maxwell.point_law().n_vars == 6 + 2 * 6 + 1
    assert np.allclose(maxwell.tensor(Elasticity(3)), Elasticity(3).isotropic_tensor(4.0, 0.35))

    # law = "elastic" is the default made explicit; its point law is Hooke's law in 3D Mandel
    text = ELASTIC_CELL.format(plane="strain", matrix='law = "elastic"\nE = 3.0\nnu = 0.35')
    elastic = load_cell_config(write(folder, text, "e.toml")).materials["matrix"]
    assert elastic == hf.IsotropicElastic(3.0, 0.35)
    strain = np.array([[0.01, -0.002, 0.003, 0.001, 0.0, 0.004]])
    stress = elastic.point_law().update(strain, np.zeros((1, 0)), 1.0)[0]
    assert np.allclose(stress, strain @ Elasticity(3).isotropic_tensor(3.0, 0.35).T, rtol=1e-14)
    assert np.allclose(isotropic_stiffness(3.0, 0.35), Elasticity(3).isotropic_tensor(3.0, 0.35))


def with_matrix(text, **changes):
    """The J2 or Maxwell key lines with keys replaced, added or (value None) removed."""
    lines = [line for line in text.splitlines() if line.split(" = ")[0] not in changes]
    return "\n".join(lines + [f"{k} = {v}" for k, v in changes.items() if v is not None])


BAD_HISTORY = {  # (plane, matrix keys, message)
    "plane stress": ("stress", J2, r'materials\.matrix\.law = \'j2\': J2 plasticity is a 3D law'),
    "maxwell plane stress": ("stress", MAXWELL, r"materials\.matrix\.law = 'maxwell'.*plane strain"),
    "unknown law": ("strain", with_matrix(J2, law='"tresca"'), r"materials\.matrix\.law must be one of"),
    "law not a string": ("strain", with_matrix(J2, law="2"), r"materials\.matrix\.law must be one of"),
    "missing sigma_y": ("strain", with_matrix(J2, sigma_y=None), r"materials\.matrix: missing \['sigma_y'\]"),
    "zero sigma_y": ("strain", with_matrix(J2, sigma_y="0.0"), r"materials\.matrix\.sigma_y = 0\.0 is out of range"),
    "negative H_iso": ("strain", with_matrix(J2, H_iso="-1.0"), r"materials\.matrix\.H_iso = -1\.0 is out of range"),
    "H_kin a string": ("strain", with_matrix(J2, H_kin='"a"'), r"materials\.matrix\.H_kin must be a number"),
    "prony key on j2": ("strain", with_matrix(J2, prony="[[1.0, 1.0]]"), r"materials\.matrix: unknown key\(s\) \['prony'\]"),
    "j2 key without law": ("strain", with_matrix(J2, law=None), r"materials\.matrix: unknown key\(s\) \['H_iso', 'H_kin', 'sigma_y'\].*law = \"j2\""),
    "nu 0.5": ("strain", with_matrix(J2, nu="0.5"), r"materials\.matrix\.nu = 0\.5 is out of range"),
    "missing prony": ("strain", with_matrix(MAXWELL, prony=None), r"materials\.matrix: missing \['prony'\]"),
    "empty prony": ("strain", with_matrix(MAXWELL, prony="[]"), r"materials\.matrix\.prony must be a list of 1 to 10"),
    "eleven terms": ("strain", with_matrix(MAXWELL, prony=str([[1.0, 1.0]] * 11)), r"materials\.matrix\.prony must be a list of 1 to 10"),
    "prony not a list": ("strain", with_matrix(MAXWELL, prony="3.0"), r"materials\.matrix\.prony must be a list"),
    "prony triple": ("strain", with_matrix(MAXWELL, prony="[[1.0, 1.0, 1.0]]"), r"materials\.matrix\.prony\[0\] must be a pair"),
    "prony modulus zero": ("strain", with_matrix(MAXWELL, prony="[[1.0, 1.0], [0.0, 1.0]]"), r"materials\.matrix\.prony\[1\]\[0\] = 0\.0 is out of range"),
    "prony time negative": ("strain", with_matrix(MAXWELL, prony="[[1.0, -2.0]]"), r"materials\.matrix\.prony\[0\]\[1\] = -2\.0 is out of range"),
    "prony time inf": ("strain", with_matrix(MAXWELL, prony="[[1.0, inf]]"), r"materials\.matrix\.prony\[0\]\[1\] = inf"),
    "sigma_y on maxwell": ("strain", with_matrix(MAXWELL, sigma_y="1.0"), r"materials\.matrix: unknown key\(s\) \['sigma_y'\] for law = 'maxwell'"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_HISTORY))
def test_bad_history_law_exits_2_naming_the_key(folder, capsys, case):
    plane, matrix, message = BAD_HISTORY[case]
    path = write(folder, ELASTIC_CELL.format(plane=plane, matrix=matrix), "cell.toml")
    assert main(["homogenize", str(path)]) == 2
    err = cli_error(capsys)
    assert err.startswith("hmm-fenics: error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err


def test_history_law_in_diffusion_is_refused():
    from hmm_fenics.materials import J2Plastic, material_from_dict
    from hmm_fenics.physics import Diffusion, Elasticity

    with pytest.raises(InputError, match=r"materials\.matrix\.law = 'j2' applies to elasticity"):
        material_from_dict("matrix", {"law": "j2", "k": 1.0}, Diffusion(2))
    with pytest.raises(InputError, match=r"materials\.matrix\.law = 'elastic' applies to"):
        material_from_dict("matrix", {"law": "elastic", "k": 1.0}, Diffusion(3))
    with pytest.raises(InputError, match="needs elasticity physics, not diffusion"):
        J2Plastic(70.0, 0.3, 0.2).tensor(Diffusion(2))
    with pytest.raises(InputError, match="plane strain only"):
        J2Plastic(70.0, 0.3, 0.2).tensor(Elasticity(2, "stress"))
    with pytest.raises(InputError, match="history cell"):  # no UFL law for a path-independent cell
        J2Plastic(70.0, 0.3, 0.2).law(None, Elasticity(2))

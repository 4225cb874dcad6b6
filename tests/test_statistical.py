"""The statistical study (issue 13 point 3): ensembles of random media against δ, per micro BC.

Expected values are computed independently: each realization homogenized here on its own
(``build_rve`` + ``homogenize`` of that seed and BC), the Student-t interval from its formula,
and the ordering Neumann ≤ periodic ≤ Dirichlet of nested discrete spaces (references.md).
"""

import itertools
import json
import math
from dataclasses import replace

from mpi4py import MPI

import numpy as np
import pytest
from conftest import cli_error
from scipy.stats import t as student
from test_cli import LAMINATE

import hmm_fenics as hf
from hmm_fenics.cli import main
from hmm_fenics.coupling.ensemble import ensembles, inclusion_diameter, scaled_spec
from hmm_fenics.errors import InputError
from hmm_fenics.studies import STUDIES
from hmm_fenics.studies.statistical import statistical_study

CONDUCTIVITIES = {"matrix": hf.Conductivity(1.0), "inclusion": hf.Conductivity(10.0)}
SPEC = hf.RVESpec("random", 2, 0.3, 0.06, count=2, min_gap=0.03, seed=7)
ROUND_OFF = 1e-10  # the same cell solved twice by MUMPS: the solve error of ~1e3 unknowns


@pytest.fixture(scope="module")
def study():
    return statistical_study(
        SPEC, hf.Diffusion(2), CONDUCTIVITIES, [2.0, 1.0], 4, comm=MPI.COMM_WORLD
    )


def test_every_realization_is_its_own_cell_under_each_bc(study):
    assert [s.scale for s in study.sizes] == [1.0, 2.0]  # sorted
    assert [s.inclusions for s in study.sizes] == [2, 8]
    large = study.sizes[1]
    seeds = large.ensembles["periodic"].seeds
    assert seeds.tolist() == [7, 8, 9, 10]
    # realization 2 of the larger window, meshed and solved on its own, under each BC
    rve = hf.build_rve(replace(scaled_spec(SPEC, 2.0), seed=int(seeds[2])))
    for bc in ("periodic", "dirichlet", "neumann"):
        alone = hf.homogenize(rve, hf.Diffusion(2), CONDUCTIVITIES, check=False, bc=bc).tensor
        np.testing.assert_allclose(large.ensembles[bc].tensors[2], alone, rtol=ROUND_OFF)
        assert large.ensembles[bc].bc == bc
    assert large.ratio == pytest.approx(2.0 / inclusion_diameter(SPEC))
    # ε: the diameter of a disk of the mean inclusion area f·|Y|/count
    assert inclusion_diameter(SPEC) == pytest.approx(2 * math.sqrt(0.3 / 2 / math.pi))


def test_the_bcs_are_ordered_on_every_realization_and_the_bracket_closes(study):
    eig = np.linalg.eigvalsh
    for size in study.sizes:
        D, P, N = (size.ensembles[bc].tensors for bc in ("dirichlet", "periodic", "neumann"))
        # the same packing for the three BCs: nested spaces order every realization
        assert eig(D - P).min() > -1e-12 and eig(P - N).min() > -1e-12
    small, large = (
        size.scalar("dirichlet").mean - size.scalar("neumann").mean for size in study.sizes
    )
    assert large < small


def test_scalar_statistics_are_the_student_interval(study):
    size = study.sizes[0]
    tensors = size.ensembles["dirichlet"].tensors
    values = (tensors[:, 0, 0] + tensors[:, 1, 1]) / 2
    s = size.scalar("dirichlet")
    np.testing.assert_allclose(s.values, values)
    assert s.mean == pytest.approx(values.mean())
    half = student.ppf(0.975, 3) * values.std(ddof=1) / 2  # t_{0.975, N−1} s / √N, N = 4
    assert s.ci95 == pytest.approx(half)
    data = study.to_dict()
    row = data["sizes"][0]["bcs"]["dirichlet"]
    assert row["scalar_ci95"] == pytest.approx(half) and len(row["tensors"]) == 4
    json.dumps(data)  # every number is JSON-ready


def test_ensembles_share_the_packings_with_the_single_bc_ensemble():
    together = ensembles(SPEC, hf.Diffusion(2), CONDUCTIVITIES, 3, ("dirichlet", "neumann"))
    alone = hf.ensemble(SPEC, hf.Diffusion(2), CONDUCTIVITIES, 3, bc="neumann")
    np.testing.assert_allclose(together["neumann"].tensors, alone.tensors, rtol=ROUND_OFF)
    assert alone.bc == "neumann" and set(together) == {"dirichlet", "neumann"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sizes": [0.0]}, "--sizes"),
        ({"sizes": [1.0, 1.0]}, "--sizes"),
        ({"sizes": [40.0]}, "--sizes"),  # 2·40² inclusions > MAX_COUNT
        # at the same fraction, 2·0.5² = 0.5 inclusions → 1 of half the cell's inclusion area
        # (ε × √0.5); 2·1.3² = 3.38 → 3, each 3.38/3 the area (ε × 1.06)
        ({"sizes": [0.5]}, r"--sizes 0\.5: .* changes their size ε by -29%"),
        ({"sizes": [1.3]}, r"--sizes 1\.3: .* rounded to 3, .* by \+6%"),
        ({"realizations": 1}, "--realizations"),
        ({"bcs": ["robin"]}, "micro.bc"),
    ],
)
def test_bad_study_arguments_name_them(kwargs, match):
    args = {"sizes": [1.0], "realizations": 2, **kwargs}
    with pytest.raises(InputError, match=match):
        statistical_study(SPEC, hf.Diffusion(2), CONDUCTIVITIES, **args)


def test_a_deterministic_cell_is_refused_naming_the_kind():
    with pytest.raises(InputError, match=r"rve\.kind"):
        statistical_study(hf.RVESpec("inclusion", 2, 0.3, 0.1), hf.Diffusion(2), CONDUCTIVITIES)


RANDOM = LAMINATE.replace('kind = "laminate"', 'kind = "random"').replace(
    "fraction = 0.5\nmesh_size = 0.1",
    "fraction = 0.3\ncount = 2\nmesh_size = 0.06\nmin_gap = 0.03\nseed = 7",
)


def shared_file(tmp_path, text, name="cell.toml"):
    shared = MPI.COMM_WORLD.bcast(tmp_path, root=0)
    if MPI.COMM_WORLD.rank == 0:
        (shared / name).write_text(text)
    MPI.COMM_WORLD.barrier()
    return shared / name, shared


def test_cli_study_writes_json_and_png(tmp_path, capsys):
    assert "statistical" in STUDIES
    cell, shared = shared_file(tmp_path, RANDOM)
    out = shared / "study"
    command = ["study", "statistical", str(cell), "--sizes", "1", "2", "--realizations", "3"]
    assert main([*command, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "statistical.json").read_text())
    assert data["input"] == str(cell) and data["realizations"] == 3
    assert [row["count"] for row in data["sizes"]] == [2, 8]
    assert set(data["sizes"][0]["bcs"]) == {"periodic", "dirichlet", "neumann"}
    assert (out / "statistical.png").stat().st_size > 10_000
    if MPI.COMM_WORLD.rank == 0:
        assert "δ/ε" in printed and "statistical.png" in printed
    assert main([*command, "-o", str(out)]) == 2  # the results exist: --overwrite needed
    assert "--overwrite" in cli_error(capsys)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--sizes", "-1"], "--sizes"),
        (["--sizes", "1", "0.5"], "--sizes 0.5: the cell would hold 0.5 inclusions"),
        (["--realizations", "1"], "--realizations"),
    ],
)
def test_cli_bad_arguments_exit_2(tmp_path, capsys, args, option):
    cell, shared = shared_file(tmp_path, RANDOM)
    assert main(["study", "statistical", str(cell), *args, "-o", str(shared / "o")]) == 2
    assert option in cli_error(capsys)


def test_cli_refuses_a_periodic_cell_naming_the_kind(tmp_path, capsys):
    text = RANDOM.replace('kind = "random"', 'kind = "inclusion"').replace("count = 2\n", "")
    text = text.replace("min_gap = 0.03\n", "").replace("seed = 7\n", "")
    cell, shared = shared_file(tmp_path, text)
    assert main(["study", "statistical", str(cell), "-o", str(shared / "o")]) == 2
    assert "rve.kind" in cli_error(capsys)


def test_homogenize_realizations_take_the_cell_files_bc(tmp_path, capsys):
    cell, shared = shared_file(tmp_path, RANDOM + '[micro]\nbc = "dirichlet"\n')
    out = shared / "e.json"
    assert main(["homogenize", str(cell), "--realizations", "2", "--json", str(out), "-q"]) == 0
    data = json.loads(out.read_text())
    assert data["bc"] == "dirichlet"
    periodic = hf.ensemble(SPEC, hf.Diffusion(2), CONDUCTIVITIES, 2)
    dirichlet = np.asarray(data["tensors"])
    eig = np.linalg.eigvalsh
    assert all(eig(d - p).min() > -1e-12 for d, p in zip(dirichlet, periodic.tensors, strict=True))


@pytest.mark.slow
def test_bigger_study_variance_decays_like_the_dimension():
    """Minutes: 16 realizations at δ/ε ≈ 3 to 10; the periodic variance ∝ (ε/δ)^p, p ≈ d."""
    study = statistical_study(
        replace(SPEC, count=4, mesh_size=0.05),
        hf.Diffusion(2),
        CONDUCTIVITIES,
        [1.0, 1.5, 2.0, 3.0],
        16,
        comm=MPI.COMM_WORLD,
    )
    ratios = np.array([s.ratio for s in study.sizes])
    variances = np.array([s.scalar("periodic").std ** 2 for s in study.sizes])
    exponent = -np.polyfit(np.log(ratios), np.log(variances), 1)[0]
    assert 1.0 < exponent < 3.5
    gaps = [s.scalar("dirichlet").mean - s.scalar("neumann").mean for s in study.sizes]
    assert all(a > b for a, b in itertools.pairwise(gaps))

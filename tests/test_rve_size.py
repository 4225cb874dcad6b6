"""The RVE-size selector (issue 13 point 4): windows of growing δ until the bounds agree.

Expected values come from closed forms (references.md: a laminate's arithmetic mean along the
layers under Dirichlet conditions, its harmonic mean across them under Neumann conditions, for
every window of whole periods) and from independent computations (the apparent tensors of the
tilings solved here with ``cell_problem``; the ordering Neumann ≤ periodic ≤ Dirichlet).
"""

import json
import math
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest
from conftest import cli_error
from test_cli import LAMINATE

import hmm_fenics as hf
from hmm_fenics.cli import main
from hmm_fenics.config import CellConfig
from hmm_fenics.errors import InputError
from hmm_fenics.micro.cell_problem import cell_problem
from hmm_fenics.studies.rve_size import relative_gap, select_rve_size

K1, K2 = 1.0, 10.0
CONDUCTIVITIES = {"matrix": hf.Conductivity(K1), "inclusion": hf.Conductivity(K2)}
EXACT = 1e-12  # the laminate's fields are P1 on conforming layers: round-off only


def config(spec, materials=CONDUCTIVITIES):
    return CellConfig(spec, hf.Diffusion(spec.dim), materials)


def test_laminate_bounds_are_the_closed_forms_and_the_gap_closes_no_faster_than_1_over_k():
    f = 0.5
    selection = select_rve_size(config(hf.RVESpec("laminate", 2, f, 0.1)), 0.01, max_size=3)
    arithmetic = f * K2 + (1 - f) * K1
    harmonic = 1 / (f / K2 + (1 - f) / K1)
    assert [w.k for w in selection.windows] == [1, 2, 3] and selection.mode == "tiles"
    for w in selection.windows:  # layers normal to x1: x2 is along, x1 across
        assert w.dirichlet[1, 1] == pytest.approx(arithmetic, rel=EXACT)
        assert w.neumann[0, 0] == pytest.approx(harmonic, rel=EXACT)
        assert np.diag(w.periodic) == pytest.approx([harmonic, arithmetic], rel=EXACT)
    # Dirichlet across and Neumann along keep boundary layers of one period at the faces
    # parallel to the gradient: their share is 1/k, so k·gap does not fall and a 1% gap
    # would need dozens of periods. The selector says that no window met the tolerance.
    gaps = [w.gap for w in selection.windows]
    assert gaps[0] > gaps[1] > gaps[2]
    assert all(k * g >= gaps[0] for k, g in zip((2, 3), gaps[1:], strict=True))
    assert not selection.met and selection.chosen is None
    advice = selection.advice()
    assert "no window up to k = 3 met tol 0.01" in advice
    # about k = 81 would do: beyond the 11 × 11 tiling limit, so --max-size cannot help
    assert "beyond the largest tiling" in advice and "--max-size" not in advice
    # D − N is largest along the layers at k = 1 (Neumann along: 3.60 vs 5.5)
    assert abs(selection.windows[0].direction[1]) > 0.9


@pytest.fixture(scope="module")
def disk_gaps():
    """Gaps of the 1×1, 2×2, 3×3 tilings of a disk cell, solved here with cell_problem."""
    spec = hf.RVESpec("inclusion", 2, 0.3, 0.1)
    rve = hf.build_rve(spec)
    physics = hf.Diffusion(2)
    P = cell_problem(physics, rve, CONDUCTIVITIES).effective_tensor
    gaps = []
    for k in (1, 2, 3):
        window = hf.tile_rve(rve, (k, k))
        D, N = (
            cell_problem(physics, window, CONDUCTIVITIES, bc=bc).effective_tensor
            for bc in ("dirichlet", "neumann")
        )
        gaps.append(np.linalg.eigvalsh(D - N).max() / np.linalg.eigvalsh(P).max())
    return spec, gaps


def test_disk_gap_falls_like_1_over_k_and_the_selector_picks_the_first_window_below_tol(
    disk_gaps,
):
    spec, gaps = disk_gaps
    # boundary layers of one period in a window of k periods: gap ∝ 1/k (to ~10% here)
    assert gaps[0] / gaps[1] == pytest.approx(2, rel=0.1)
    assert gaps[0] / gaps[2] == pytest.approx(3, rel=0.1)
    tol = (gaps[1] + gaps[2]) / 2
    selection = select_rve_size(config(spec), tol, max_size=5)
    assert selection.met and selection.windows[selection.chosen].k == 3
    assert len(selection.windows) == 3  # stops at the first window that meets tol
    assert [w.gap for w in selection.windows] == pytest.approx(gaps, rel=1e-10)
    assert selection.windows[2].lengths == pytest.approx((3.0, 3.0))
    for w in selection.windows:
        assert w.seconds > 0 and w.measure == w.gap
        eig = np.linalg.eigvalsh
        assert (
            eig(w.dirichlet - w.periodic).min() > -1e-12
            and eig(w.periodic - w.neumann).min() > -1e-12
        )


def test_relative_gap_is_the_spectral_norm_ratio():
    D, N, P = np.diag([3.0, 2.0]), np.diag([1.0, 1.5]), np.diag([2.0, 1.8])
    gap, direction = relative_gap(D, N, P)
    assert gap == pytest.approx(2.0 / 2.0)
    assert direction == pytest.approx([1.0, 0.0])


def test_random_medium_confidence_interval_shrinks_with_the_window():
    spec = hf.RVESpec("random", 2, 0.3, 0.06, count=2, min_gap=0.03, seed=4)
    selection = select_rve_size(config(spec), 1e-4, max_size=2, realizations=5)
    assert selection.mode == "ensemble" and selection.criterion == "ci"
    assert not selection.met and [w.k for w in selection.windows] == [1, 2]
    small, large = selection.windows
    # variance ∝ (ε/δ)^d: the CI of a window twice as large is about half (d = 2)
    assert large.ci < 0.8 * small.ci
    assert np.isfinite(small.gap) and small.measure == small.ci
    assert large.lengths == pytest.approx((2.0, 2.0))
    eig = np.linalg.eigvalsh  # the means keep the order of every realization
    for w in selection.windows:
        assert eig(w.dirichlet - w.periodic).min() > 0 and eig(w.periodic - w.neumann).min() > 0


def laminate_image(tmp_path, period=4, repeats=4):
    """Layers normal to x1: columns of `period` pixels, half matrix (0), half inclusion (1)."""
    column = (np.arange(period * repeats) % period >= period // 2).astype(np.int32)
    image = np.tile(column[:, None], (1, period * repeats))  # a[i1, i2], x1 first
    path = MPI.COMM_WORLD.bcast(tmp_path, root=0) / "laminate.npy"
    if MPI.COMM_WORLD.rank == 0:
        np.save(path, image)
    MPI.COMM_WORLD.barrier()
    return path


def test_image_crops_of_a_laminate_keep_the_closed_forms(tmp_path):
    path = laminate_image(tmp_path)
    spec = hf.RVESpec(
        "image", 2, path=str(path), voxel_size=0.25, labels={"matrix": 0, "inclusion": 1}
    )
    selection = select_rve_size(config(spec), 1e-6, max_size=3, step=4)
    assert selection.mode == "crops" and [w.pixels for w in selection.windows] == [4, 8, 12]
    harmonic, arithmetic = 1 / (0.5 / K2 + 0.5 / K1), 0.5 * (K1 + K2)
    for w in selection.windows:  # every crop holds whole periods (a shifted one, centred)
        assert w.lengths == pytest.approx((w.k * 1.0, w.k * 1.0))
        assert w.dirichlet[1, 1] == pytest.approx(arithmetic, rel=EXACT)
        assert w.neumann[0, 0] == pytest.approx(harmonic, rel=EXACT)
        assert np.diag(w.periodic) == pytest.approx([harmonic, arithmetic], rel=EXACT)
    gaps = [w.gap for w in selection.windows]
    assert gaps[0] > gaps[1] > gaps[2]


def test_image_crop_without_a_phase_is_not_chosen(tmp_path):
    """A small centred crop of a picture with a far inclusion is one phase: D = N, gap 0.

    Such a crop agrees with itself, not with the image: it must not meet the tolerance.
    """
    image = np.zeros((12, 12), dtype=np.int32)
    image[0, 0] = 1  # an inclusion pixel in the corner, outside the centred crops
    path = MPI.COMM_WORLD.bcast(tmp_path, root=0) / "corner.npy"
    if MPI.COMM_WORLD.rank == 0:
        np.save(path, image)
    MPI.COMM_WORLD.barrier()
    spec = hf.RVESpec(
        "image", 2, path=str(path), voxel_size=1.0, labels={"matrix": 0, "inclusion": 1}
    )
    selection = select_rve_size(config(spec), 0.01, max_size=2, step=4)
    assert [w.pixels for w in selection.windows] == [4, 8]
    for w in selection.windows:  # homogeneous crops: the bounds agree exactly
        np.testing.assert_allclose(w.dirichlet, K1 * np.eye(2), atol=1e-12)
        np.testing.assert_allclose(w.neumann, K1 * np.eye(2), atol=1e-12)
        assert w.gap < 1e-12 and w.fractions_off == np.inf
    assert not selection.met and selection.chosen is None
    assert "misses a phase of the image" in selection.advice()
    assert selection.to_dict()["windows"][0]["fractions_off"] is None


def test_image_crop_must_hold_the_image_phase_fractions(tmp_path):
    """Whole laminate periods hold the image's fractions; a crop of 3 px of a 4 px period not."""
    path = laminate_image(tmp_path)  # fractions 1/2, 1/2
    spec = hf.RVESpec(
        "image", 2, path=str(path), voxel_size=0.25, labels={"matrix": 0, "inclusion": 1}
    )
    odd = select_rve_size(config(spec), 0.5, max_size=2, step=3)
    # 3 px: 2 of one phase, 1 of the other per row: off by 1/6, beyond tol 0.1 though the
    # gap may be anything; whole periods (step 4) are exact
    assert odd.windows[0].fractions_off == pytest.approx(1 / 6, rel=1e-12)
    assert not odd.windows[0].meets(0.1)
    assert odd.windows[0].meets(max(odd.windows[0].gap, 0.17))
    whole = select_rve_size(config(spec), 0.5, max_size=1, step=4)
    assert whole.windows[0].fractions_off == 0.0


def test_porous_image_crops_without_a_pore_are_solid_cells(tmp_path):
    """A pore far from the centre: the small crops hold none and are meshed without voids."""
    image = np.zeros((12, 12), dtype=np.int32)
    image[1, 1] = 2  # a pore pixel near a corner, off the faces (periodic crops exist)
    path = MPI.COMM_WORLD.bcast(tmp_path, root=0) / "pore.npy"
    if MPI.COMM_WORLD.rank == 0:
        np.save(path, image)
    MPI.COMM_WORLD.barrier()
    spec = hf.RVESpec(
        "image",
        2,
        path=str(path),
        voxel_size=1.0,
        labels={"matrix": 0, "pore": 2},
        voids=("pore",),
    )
    selection = select_rve_size(config(spec, {"matrix": hf.Conductivity(K1)}), 0.5, 3, step=4)
    assert [w.pixels for w in selection.windows] == [4, 8, 12]
    for w in selection.windows[:2]:  # solid crops: the matrix conductivity, no pore
        np.testing.assert_allclose(w.periodic, K1 * np.eye(2), atol=1e-12)
        assert w.fractions_off == np.inf
    whole = selection.windows[2]  # the whole image: its own fractions, a pore lowers K
    assert whole.fractions_off == 0.0 and whole.periodic[0, 0] < K1
    assert selection.chosen == 2


def cell_file(tmp_path, text=LAMINATE):
    shared = MPI.COMM_WORLD.bcast(tmp_path, root=0)
    path = shared / "cell.toml"
    if MPI.COMM_WORLD.rank == 0:
        path.write_text(text)
    MPI.COMM_WORLD.barrier()
    return path, shared


def test_cli_prints_the_windows_and_writes_the_json(tmp_path, capsys):
    cell, shared = cell_file(tmp_path)
    assert (
        main(["rve-size", str(cell), "--tol", "0.2", "--max-size", "4", "-o", str(shared / "o")])
        == 0
    )
    out = capsys.readouterr().out
    data = json.loads((shared / "o" / "rve_size.json").read_text())
    # the laminate's gaps 0.345, 0.209, 0.150 (k = 1, 2, 3): 0.2 is met at k = 3
    assert data["met"] and data["windows"][data["chosen"]]["k"] == 3
    assert data["chosen_lengths"] == [3.0, 3.0] and data["norm"].startswith("gap = ||D - N||_2")
    if MPI.COMM_WORLD.rank == 0:
        assert "chosen: window k = 3" in out and "gap" in out
    assert main(["rve-size", str(cell), "--tol", "0.2", "--max-size", "3", "--json", "-q"]) == 0
    printed = capsys.readouterr().out
    if MPI.COMM_WORLD.rank == 0:
        assert json.loads(printed)["windows"][0]["k"] == 1


def test_cli_takes_a_run_files_cell(capsys):
    """The demo's run file: its cell is the micro-CT image, windows are centred crops."""
    run_file = Path(__file__).parent.parent / "demos" / "porous_rock_ct.toml"
    command = ["rve-size", str(run_file), "--tol", "0.01", "--step", "32", "--max-size", "4"]
    assert main([*command, "--json"]) == 0
    printed = capsys.readouterr().out
    if MPI.COMM_WORLD.rank == 0:
        data = json.loads(printed)
        assert data["mode"] == "crops" and [w["pixels"] for w in data["windows"]] == [
            32,
            64,
            96,
            128,
        ]
        assert not data["met"] and "bring a larger image" in data["advice"]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--tol", "0"], "--tol"),
        (["--tol", "1.5"], "--tol"),
        (["--tol", "nan"], "--tol"),
        (["--max-size", "0"], "--max-size"),
        (["--realizations", "1"], "--realizations"),
        (["--criterion", "ci"], "--criterion ci"),
        (["--step", "4"], "--step"),
        (["--step", "1"], "--step must be a number of pixels ≥ 2"),
        (["--max-size", "12"], "--max-size"),  # 144 copies > MAX_TILES
    ],
)
def test_bad_arguments_exit_2_naming_them(tmp_path, capsys, args, option):
    cell, _ = cell_file(tmp_path)
    assert main(["rve-size", str(cell), *args]) == 2
    err = cli_error(capsys)
    assert option in err and "Traceback" not in err


def test_bad_choice_and_existing_output(tmp_path, capsys):
    cell, shared = cell_file(tmp_path)
    with pytest.raises(SystemExit) as exit_info:  # argparse: exit 2 naming the option
        main(["rve-size", str(cell), "--criterion", "median"])
    assert exit_info.value.code == 2 and "--criterion" in capsys.readouterr().err
    (shared / "o").mkdir(exist_ok=True)
    MPI.COMM_WORLD.barrier()
    if MPI.COMM_WORLD.rank == 0:
        (shared / "o" / "rve_size.json").write_text("{}")
    MPI.COMM_WORLD.barrier()
    assert main(["rve-size", str(cell), "-o", str(shared / "o")]) == 2
    assert "--overwrite" in cli_error(capsys)


def test_three_d_tiles_are_limited_by_the_tiling():
    spec = hf.RVESpec("inclusion", 3, 0.1, 0.25)
    with pytest.raises(InputError, match="--max-size 6"):
        select_rve_size(config(spec), 0.01, max_size=6)


def test_advice_does_not_suggest_a_tiling_beyond_the_limit():
    from hmm_fenics.studies.rve_size import SizeSelection, WindowBounds

    def window(k, gap):
        eye = np.eye(2)
        return WindowBounds(k, (k, k), None, eye, eye, eye, gap, math.nan, gap, eye[0], 0.0)

    # the gap falls like k^-0.415: k = 2 · 30^(1/0.415) ≈ 7e3 tiles per axis would be needed,
    # but a 2D tiling holds at most 11 × 11 copies
    selection = SizeSelection("tiles", "gap", 0.01, [window(1, 0.4), window(2, 0.3)], None, None, 0)
    advice = selection.advice()
    assert "beyond the largest tiling (k ≤ 11: at most 121 copies" in advice
    assert "Raise --max-size" not in advice
    near = SizeSelection("tiles", "gap", 0.2, [window(1, 0.4), window(2, 0.3)], None, None, 0)
    assert "about k = 6 would do" in near.advice() and "Raise --max-size" in near.advice()

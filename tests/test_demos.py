"""The demos run serially and under mpirun, and their numbers make sense."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DEMOS = Path(__file__).parent.parent / "demos"
MPIRUN = Path(sys.executable).parent / "mpirun"


def run(script, tmp_path, ranks, *args):
    command = [sys.executable, str(DEMOS / script), "--output", str(tmp_path), *args]
    if ranks > 1:
        command = [str(MPIRUN if MPIRUN.exists() else "mpirun"), "-n", str(ranks), *command]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / "results.json").read_text()), proc.stdout


def passed(data):
    failed = [c["name"] for c in data["checks"] if not c["passed"]]
    assert not failed, failed
    return {c["name"]: c for c in data["checks"]}


@pytest.mark.serial
@pytest.mark.parametrize("ranks", [1, 2])
def test_fe2_plate_demo(tmp_path, ranks):
    data, _ = run("fe2_plate.py", tmp_path, ranks, "--size", "small")
    checks = passed(data)
    assert data["ranks"] == ranks
    assert data["newton_iterations"] == 1
    assert data["steps"][0]["residuals"][-1] < 1e-10 * data["steps"][0]["residuals"][0]
    # a hole in a (nearly isotropic) plate: Kirsch's 3 for an infinite plate; this finite quarter
    # plate (R/L = 0.25) gives a little less
    assert 2.4 < data["stress_concentration"] < 3.5
    assert checks["Clapeyron: energy = ½ R·u"]["error"] < 1e-8
    # the checks that can fail: FE² = a plain DOLFINx solve with C_hom, and a converged peak
    assert checks["FE² = plain C_hom solve: right reaction"]["error"] < 1e-9
    assert checks["FE² = plain C_hom solve: peak σ11"]["error"] < 1e-9
    assert abs(data["stress_concentration_converged"] / data["stress_concentration"] - 1) < 0.05
    assert data["reaction_right"] > 0
    assert (tmp_path / "displacement.xdmf").exists() and (tmp_path / "stress.xdmf").exists()
    from mpi4py import MPI

    from dolfinx import io

    with io.XDMFFile(MPI.COMM_SELF, str(tmp_path / "displacement.xdmf"), "r") as xdmf:
        mesh = xdmf.read_mesh(name="mesh")
    assert mesh.topology.index_map(2).size_local > 100


@pytest.mark.serial
@pytest.mark.parametrize("ranks", [1, 2])
def test_fiber_composite_demo(tmp_path, ranks):
    data, _ = run("fiber_composite.py", tmp_path, ranks, "--size", "small")
    passed(data)
    kappa_low, kappa_high = data["bounds"]["kappa"]
    # stiff fibres in a soft matrix: the transverse bulk modulus sits near the lower bound
    assert kappa_low <= data["kappa"] < kappa_low + 0.05 * (kappa_high - kappa_low)
    assert (tmp_path / "rve_unit_0_total.xdmf").exists() and (tmp_path / "rve.png").exists()
    e = data["engineering_3d"]
    # along the fibres close to the rule of mixtures; across, far below (matrix-dominated)
    assert 36.0 < e["E1"] < 37.0 and e["E2"] < 0.3 * e["E1"] and 0.2 < e["nu12"] < 0.35


@pytest.mark.serial
@pytest.mark.parametrize("ranks", [1, 2])
def test_porous_rock_demo(tmp_path, ranks):
    data, _ = run("porous_rock.py", tmp_path, ranks, "--size", "small")
    checks = passed(data)
    assert checks["FE² = plain solve with K_hom (flux out)"]["error"] < 1e-9
    ensemble = data["ensemble"]
    assert ensemble["realizations"] == 4 and ensemble["std"][0][0] > 0
    # the ensemble is independent of the run file's cell, so "cell within the band" can fail
    assert data["input"]["config"]["rve"]["seed"] not in ensemble["seeds"]
    assert checks["cell: ⟨∇T⟩ = G over the box, pores included"]["value"] < 1e-12
    # heat flows from the hot left edge to the cold right edge
    assert data["heat_flow"] > 0 and data["reactions"]["left"][0] > 0


@pytest.mark.serial
@pytest.mark.parametrize("ranks", [1, 2])
def test_porous_rock_ct_demo(tmp_path, ranks):
    data, _ = run("porous_rock_ct.py", tmp_path, ranks, "--size", "small")
    checks = passed(data)
    assert data["ranks"] == ranks
    selection = data["rve_size"]
    windows = selection["windows"]
    # the selector stopped at the first window below tol, and it is a crop of the image
    assert selection["met"] and selection["chosen"] == len(windows) - 1
    assert windows[-1]["gap"] <= selection["tol"] < windows[-2]["gap"]
    assert data["chosen_pixels"] == windows[-1]["pixels"] < 128
    assert checks["cell: Hill–Mandel residual"]["value"] < 1e-12
    # the bounds of the slab are a few 1e-7 apart here (K12 ≪ K11): the FE² flow sits inside
    low, high = data["heat_flow_bounds"]
    assert low <= data["heat_flow"] <= high and high - low < 1e-3 * high
    # noise removal: the segmented image differs from the noise-free disks by < 2% of pixels
    assert 0 < data["denoising_changed"] < 0.02 and 0.15 < data["porosity"] < 0.3
    assert (tmp_path / "rve_size.png").stat().st_size > 10_000
    assert (tmp_path / "cell.npy").exists() and (tmp_path / "fe2" / "results.json").exists()


@pytest.mark.serial
@pytest.mark.parametrize("ranks", [1, 2])
def test_three_scales_demo(tmp_path, ranks):
    data, _ = run("three_scales.py", tmp_path, ranks, "--size", "small")
    checks = passed(data)
    assert data["ranks"] == ranks and len(checks) == 15
    # the 1D loop: √3 at every macro point, and the macro Newton converged in one step
    whole = data["oned"]["whole"]
    assert max(abs(a - 3**0.5) for a in whole["coefficients"]) < 1e-10
    assert len(whole["residuals"]) == 2
    # the budget's macro error does not depend on the ranks (the same structured mesh)
    rows = {(r["sweep"], r["H"], r["bc"]): r for r in data["budget"]["rows"]}
    assert rows["H", 0.25, "periodic"]["macro_L2"] == pytest.approx(8.67e-3, rel=1e-2)
    for picture in ("oned.png", "oned_dirichlet.png", "resonance.png", "budget.png"):
        assert (tmp_path / picture).stat().st_size > 10_000


@pytest.mark.serial
@pytest.mark.parametrize("ranks", [1, 2])
def test_graded_demo(tmp_path, ranks):
    data, _ = run("graded.py", tmp_path, ranks, "--size", "small")
    checks = passed(data)
    assert checks["heat flow = series bar ΔT H / ∫ dx/k"]["error"] < 5e-3
    assert len(data["fractions"]) == 9
    k = data["conductivities"]
    assert all(a < b for a, b in itertools.pairwise(k))  # more fibre, more conduction


@pytest.mark.serial
def test_plastic_composite_demo(tmp_path):
    """Load, unload, reload of a plastic composite plate on 2 ranks (balanced schedule)."""
    data, _ = run("plastic_composite.py", tmp_path, 2, "--size", "small")
    checks = passed(data)
    assert data["ranks"] == 2 and data["input"]["config"]["solver"]["schedule"] == "balanced"
    steps = data["steps"]
    assert all(s["cutbacks"] == 0 for s in steps)
    # first yield well inside the loading (the load reaches several times the elastic limit)
    assert 0.05 < data["lambda_y"] < 0.3
    factors = [s["factor"] for s in steps]
    peak = factors.index(1.0)
    unloaded = factors.index(0.0)
    dissipated = [s["dissipated_energy"] for s in steps]
    # a visible loop: unloading yields the matrix again (reversed, the Bauschinger effect) and
    # so does reloading, so the cycle after the peak dissipates a sizeable part of what the
    # loading did
    assert dissipated[unloaded] > dissipated[peak] > 0
    assert dissipated[-1] - dissipated[peak] > 0.1 * dissipated[peak]
    # compression: the plate keeps a shortening and pulls on the support at zero displacement
    assert data["residual_reaction"] > 0
    prescribed = data["input"]["config"]["dirichlet"]["right"][0]  # < 0: compression
    assert prescribed < data["residual_displacement"] < 0
    assert checks["unloading slope = initial elastic slope"]["error"] < 1e-8
    assert checks["homogeneous cell: FE² = J2 law at the macro points (reactions)"]["value"] < 1e-8
    for picture in ("hysteresis.png", "plastic_zone.png", "curve.png"):
        assert (tmp_path / picture).stat().st_size > 10_000
    assert (tmp_path / "rve_0_plastic_strain.xdmf").exists()
    assert (tmp_path / "homogeneous" / "results.json").exists()


@pytest.mark.serial
@pytest.mark.parametrize(
    "name",
    [
        "fiber_composite",
        "fe2_plate",
        "porous_rock",
        "porous_rock_ct",
        "graded",
        "plastic_composite",
    ],
)
def test_demo_run_files_run_with_the_cli(tmp_path, name):
    """`hmm-fenics run demos/<name>.toml` works on its own (the demos' small size)."""
    cli = Path(sys.executable).parent / "hmm-fenics"
    proc = subprocess.run(
        [str(cli), "run", str(DEMOS / f"{name}.toml"), "-o", str(tmp_path / name), "-q"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == ""  # --quiet
    data = json.loads((tmp_path / name / "results.json").read_text())
    assert data["input"]["file"].endswith(f"{name}.toml")


@pytest.mark.serial
def test_plate_demo_is_rank_independent(tmp_path):
    serial, _ = run("fe2_plate.py", tmp_path / "1", 1, "--size", "small")
    for ranks in (2, 4):  # 4 oversubscribes the 2 cores here
        parallel, _ = run("fe2_plate.py", tmp_path / str(ranks), ranks, "--size", "small")
        assert serial["macro_points"] == parallel["macro_points"]
        np.testing.assert_allclose(parallel["peak_stress_11"], serial["peak_stress_11"], rtol=1e-10)
        np.testing.assert_allclose(parallel["reaction_right"], serial["reaction_right"], rtol=1e-10)


@pytest.mark.serial
@pytest.mark.parametrize("ranks", [1, 2])
def test_fe2_versus_dns_smallest_case(tmp_path, ranks):
    data, _ = run(
        "fe2_vs_dns.py", tmp_path, ranks, "--size", "small", "--cases", "diffusion", "elasticity"
    )
    checks = passed(data)
    assert data["ranks"] == ranks and data["size"] == "small"
    for name in ("diffusion", "elasticity"):
        rows = data[name]["rows"]
        u = [r["u_error"] for r in rows]
        assert u[1] < u[0] and u[1] < 0.1
        # homogenization error O(ε) in L2 (theory: rate 1), checked by the demo itself
        rate = checks[f"{name}: rate of L2(u) (theory 1)"]
        assert rate["value"] == data[name]["u_rate"] and rate["low"] <= 1 <= rate["high"]
        assert data[name]["flux_rate"] > 0.8
    assert len(checks) == 4  # two per case run
    assert (tmp_path / "errors.png").stat().st_size > 10_000


@pytest.mark.serial
def test_fe2_versus_dns_refuses_a_used_output_without_overwrite(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    command = [sys.executable, str(DEMOS / "fe2_vs_dns.py"), "--output", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert (tmp_path / "results.json").read_text() == "{}"


@pytest.mark.serial
def test_quiet_silences_progress_and_only_rank_0_reports(tmp_path):
    command = [
        str(MPIRUN if MPIRUN.exists() else "mpirun"),
        "-n",
        "2",
        sys.executable,
        str(DEMOS / "fe2_plate.py"),
        "--output",
        str(tmp_path),
    ]
    quiet = subprocess.run(
        [*command, "--quiet"], capture_output=True, text=True, timeout=300, check=False
    )
    assert quiet.returncode == 0 and quiet.stdout == "" and "macro iteration" not in quiet.stderr
    loud = subprocess.run(
        [*command, "--overwrite"], capture_output=True, text=True, timeout=300, check=False
    )
    # not a terminal: plain lines, one per macro iteration, from rank 0 only
    assert loud.stderr.count("macro iteration 0: micro cells") == 1
    assert "imbalance max/mean" in loud.stderr

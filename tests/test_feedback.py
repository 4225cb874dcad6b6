"""Feedback where a user waits (issue 15 point 4): progress and Newton residuals from the
Python API on rank 0 without configuring logging, and ``hmm_fenics.log`` to silence it."""

import logging
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics import log as hlog

ROOT = Path(__file__).resolve().parent.parent
SPEC = hf.RVESpec("random", 2, 0.3, 0.06, count=2, min_gap=0.03, seed=7)
CONDUCTIVITIES = {"matrix": hf.Conductivity(1.0), "inclusion": hf.Conductivity(10.0)}


def python(code):
    """Run ``code`` in a fresh interpreter of this venv (no logging configured there)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        check=True,
    )


@pytest.fixture
def unconfigured(monkeypatch):
    """As in a user's script: the root logger has no handler (pytest's are hidden)."""
    monkeypatch.setattr(hlog, "application_configured", lambda: False)
    level = logging.getLogger("hmm_fenics").level
    yield
    logging.getLogger("hmm_fenics").setLevel(level)


@pytest.mark.skipif(__import__("mpi4py.MPI").MPI.COMM_WORLD.size > 1, reason="a serial subprocess")
def test_a_script_sees_progress_and_quiet_silences_it():
    code = (
        "import logging, hmm_fenics\n"
        "logging.getLogger('hmm_fenics.somewhere').info('progress 1')\n"
        "hmm_fenics.log.quiet()\n"
        "logging.getLogger('hmm_fenics.somewhere').info('progress 2')\n"
        "logging.getLogger('hmm_fenics.somewhere').warning('a warning')\n"
        "hmm_fenics.log.verbose()\n"
        "logging.getLogger('hmm_fenics.somewhere').debug('details')\n"
        "logging.basicConfig(format='app: %(message)s')\n"  # the application takes over
        "logging.getLogger('hmm_fenics.somewhere').warning('once')\n"
    )
    lines = python(code).stderr.splitlines()
    assert lines == ["progress 1", "a warning", "details", "app: once"]


def test_only_rank_zero_prints(unconfigured, capsys, monkeypatch):
    logger = logging.getLogger("hmm_fenics.test_feedback")
    hlog.normal()
    monkeypatch.setattr(hlog, "world_rank", lambda: 1)
    logger.info("from rank 1")
    monkeypatch.setattr(hlog, "world_rank", lambda: 0)
    logger.info("from rank 0")
    assert capsys.readouterr().err.splitlines() == ["from rank 0"]


def test_solve_reports_iterations_and_residuals(unconfigured, capsys):
    from mpi4py import MPI

    from hmm_fenics.coupling.micro_models import EffectiveModel
    from hmm_fenics.macro.mesh import macro_mesh
    from hmm_fenics.macro.problem import MacroProblem
    from hmm_fenics.solver import solve

    hlog.normal()
    problem = MacroProblem(
        macro_mesh("rectangle", 0.25), hf.Diffusion(2), {"left": 1.0, "right": 0.0}
    )
    result = solve(problem, EffectiveModel(2.0 * np.eye(2)))
    err = capsys.readouterr().err
    hlog.quiet()
    solve(problem, EffectiveModel(2.0 * np.eye(2)))  # collective: every rank solves again
    assert capsys.readouterr().err == ""
    if MPI.COMM_WORLD.rank != 0:
        assert err == ""
        return
    for k, residual in enumerate(result.residuals):
        assert f"macro iteration {k}: micro cells" in err
        assert f"|R| = {residual:.3e}" in err
    assert f"macro Newton converged: |R| = {result.residuals[-1]:.3e} after 1 step(s)" in err


def test_ensemble_and_size_study_report_progress(caplog):
    with caplog.at_level(logging.INFO, logger="hmm_fenics.coupling.ensemble"):
        study = hf.size_study(
            SPEC, hf.Diffusion(2), CONDUCTIVITIES, [1.0, math.sqrt(2)], 2
        )  # 2 → 4 disks
    messages = [r.getMessage() for r in caplog.records]
    from mpi4py import MPI

    if MPI.COMM_WORLD.rank != 0:
        return
    done = [m for m in messages if m.startswith("ensemble: realization")]
    assert len(done) == 4  # two sizes × two realizations, each reported as it ends
    assert done[0].startswith(f"ensemble: realization 1 of 2 (seed {SPEC.seed}, periodic)")
    sizes = [m for m in messages if m.startswith("size study: scale")]
    assert len(sizes) == 2
    assert sizes[1].startswith(f"size study: scale 2 of 2, δ/ε = {study.ratios[1]:.3g}")
    assert f"mean {study.means[1]:.6g}" in sizes[1]


def test_the_cli_sets_levels_in_one_place(monkeypatch):
    """``configure`` at the CLI's --quiet: the package level follows (rank 0); rank > 0 errors."""
    monkeypatch.setattr(hlog, "application_configured", lambda: False)
    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: None)
    level = logging.getLogger("hmm_fenics").level
    try:
        hlog.configure(logging.WARNING, rank=0)
        assert logging.getLogger("hmm_fenics").level == logging.WARNING
        hlog.configure(logging.INFO, rank=1)
        assert logging.getLogger("hmm_fenics").level == logging.ERROR
    finally:
        logging.getLogger("hmm_fenics").setLevel(level)

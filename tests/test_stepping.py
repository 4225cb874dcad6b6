"""Time stepping: load paths, commit/rollback/cut-back, energy bookkeeping, state migration.

A fake NumPy history model (``history_fakes.SpringModel``: an elastoplastic spring per
gradient component) stands for the micro cells: fast, with closed-form answers. Serial and
under ``mpirun -n 2 / 4 python -m mpi4py -m pytest``.
"""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest
from history_fakes import SpringModel, spring

import hmm_fenics as hf
from hmm_fenics.coupling.micro_models import BalancedModel
from hmm_fenics.errors import InputError, MicroFailure
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.macro.problem import MacroProblem
from hmm_fenics.run.loading import parse_loading
from hmm_fenics.run.memory import StateMemory, check_state_memory, state_memory, state_widths
from hmm_fenics.stepping import LoadPath, load_path, march

E, H, SIGMA_Y = 1.0, 0.1, 0.004
STRETCH = 0.01
CYCLE = [(0.0, 0.0), (1.0, 1.0), (2.0, -1.0), (3.0, 0.0)]
"""Load, unload and reverse, back to zero: a hysteresis loop of the springs."""


# -- [loading] parsing ----------------------------------------------------------------------


def test_steps_alone_is_the_old_ramp():
    path = parse_loading({"steps": 4})
    assert path.points == ((0.0, 0.0), (1.0, 1.0))
    np.testing.assert_allclose(path.times, [0.25, 0.5, 0.75, 1.0], rtol=0, atol=1e-15)
    assert [path.factor(t) for t in path.times] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert parse_loading({}).times == (1.0,) and parse_loading({}).max_cuts == 6


def test_path_with_steps_per_segment_and_dt():
    raw = [[0, 0], [1, 1], [3, -1], [4, -1]]
    path = parse_loading({"path": raw, "steps": [2, 4, 1], "max_cuts": 3})
    expected = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0]
    np.testing.assert_allclose(path.times, expected, atol=1e-15)
    assert path.factor(2.0) == 0.0 and path.factor(3.5) == -1.0 and path.max_cuts == 3
    by_dt = parse_loading({"path": raw, "dt": 0.8})  # ceil(1/0.8) = 2, ceil(2/0.8) = 3, 2
    assert len(by_dt.times) == 2 + 3 + 2 and by_dt.times[1] == 1.0 and by_dt.times[-1] == 4.0
    assert max(np.diff((0.0, *by_dt.times))) <= 0.8 + 1e-12


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"steps": 0}, r"loading\.steps must be an integer from 1 to 1000, got 0"),
        ({"path": [[0, 0]]}, r"loading\.path must be a list of 2 to"),
        ({"path": [[0, 0], [1]]}, r"loading\.path\[1\] must be \[time, factor\]"),
        ({"path": [[0, 0], [1, "x"]]}, r"loading\.path\[1\] must be \[time, factor\]"),
        ({"path": [[-1, 0], [1, 1]]}, r"loading\.path\[0\]: the time -1\.0 must be ≥ 0"),
        ({"path": [[0, 0], [1, 1], [1, 0]]}, r"loading\.path\[2\]: the time 1\.0 must be after"),
        ({"path": [[0, 0], [1, 1], [2, 0]], "steps": [2]}, r"loading\.steps has 1 counts"),
        ({"path": [[0, 0], [1, 1]], "steps": [0]}, r"loading\.steps\[0\] must be an integer"),
        ({"steps": 2, "dt": 0.1}, r"loading\.steps and loading\.dt both given"),
        ({"dt": -0.1}, r"loading\.dt must be a positive time step"),
        ({"dt": 1e-6}, r"loading: 1000000 steps in all"),
        ({"max_cuts": 50}, r"loading\.max_cuts must be an integer from 0 to 20"),
        ({"step": 2}, r"loading\.step"),
    ],
)
def test_bad_loading_names_the_key(table, message):
    with pytest.raises(InputError, match=message):
        parse_loading(table)


# -- marching with the fake history model -----------------------------------------------------


def bar(mesh_size=0.5):
    """A unit square stretched along x, free to contract: uniform ε11, every point alike."""
    mesh = macro_mesh("rectangle", mesh_size, params={"L": 1.0, "H": 1.0})
    pull = {"left": (0.0, None), "bottom": (None, 0.0), "right": (STRETCH, None)}
    return MacroProblem(mesh, hf.Elasticity(2), pull)


def one_spring(path: LoadPath):
    """Reference: one scalar spring along the strain history ε11 = factor · STRETCH."""
    p, d, previous_sigma, previous_strain, work = 0.0, 0.0, 0.0, 0.0, 0.0
    rows = []
    for t in path.times:
        strain = path.factor(t) * STRETCH
        sigma, _, p, d = spring(np.array(strain), np.array(p), np.array(d), E, H, SIGMA_Y)
        work += 0.5 * (sigma + previous_sigma) * (strain - previous_strain)
        stored = 0.5 * E * (strain - p) ** 2 + 0.5 * H * p**2
        rows.append((float(sigma), work, float(stored), float(d)))
        previous_sigma, previous_strain = sigma, strain
    return rows


def test_cyclic_path_matches_the_single_spring_and_balances_energy():
    path = load_path(CYCLE, steps=8)
    model = SpringModel(3, E, H, SIGMA_Y)
    records = [i.record for i in march(bar(), model, path, progress=False)]
    reference = one_spring(path)
    assert len(records) == len(reference) == 24
    # tolerances: the Newton stops at |R| ≤ 1e-10 |R0|; the bar's answers are exact otherwise
    for record, (sigma, work, stored, dissipated) in zip(records, reference, strict=True):
        # the unit-height right edge carries the uniform σ11
        assert record["reactions"]["right"][0] == pytest.approx(sigma, rel=1e-8, abs=1e-12)
        assert record["external_work"] == pytest.approx(work, rel=1e-8, abs=1e-14)
        assert record["internal_work"] == pytest.approx(work, rel=1e-8, abs=1e-14)
        assert record["stored_energy"] == pytest.approx(stored, rel=1e-8, abs=1e-14)
        assert record["dissipated_energy"] == pytest.approx(dissipated, rel=1e-8, abs=1e-14)
        assert record["cutbacks"] == 0 and record["micro_iterations"]["max"] in (1, 2)
    assert reference[-1][3] > 0  # the loop dissipated
    # the hysteresis: back at zero strain after the reverse yield, a tensile residual stress
    assert records[-1]["reactions"]["right"][0] > 1e-4


def energy_gap(steps):
    path = load_path(CYCLE, steps=steps)
    last = march(bar(), SpringModel(3, E, H, SIGMA_Y), path, progress=False)[-1].record
    return abs(last["external_work"] - last["stored_energy"] - last["dissipated_energy"])


def test_energy_balance_converges_with_the_step():
    # external = stored + dissipated up to the trapezoidal rule in the steps that cross the
    # yield point (first order in the crossing step's length ~ Δt² per crossing)
    coarse, fine = energy_gap(4), energy_gap(16)
    total = 3 * 0.5 * E * STRETCH**2
    assert coarse < 0.05 * total and fine < coarse / 4


def failing_at(time_to_fail, ranks=None):
    """Fail the first attempt of the step that ends at ``time_to_fail`` (on ``ranks``)."""

    def fail(model, time, attempt):
        rank_ok = ranks is None or MPI.COMM_WORLD.rank in ranks
        return rank_ok and abs(time - time_to_fail) < 1e-12 and attempt == 1

    return fail


@pytest.mark.parametrize("ranks", [None, (MPI.COMM_WORLD.size - 1,)])
def test_a_failed_step_is_cut_and_equals_the_run_with_the_smaller_step(ranks):
    path = load_path(CYCLE, steps=4)
    model = SpringModel(3, E, H, SIGMA_Y, fail=failing_at(path.times[5], ranks))
    problem = bar()
    cut = march(problem, model, path, progress=False)
    # the reference marches the same times with step 6 halved, no failure
    times = (*path.times[:5], 0.5 * (path.times[4] + path.times[5]), *path.times[5:])
    reference_problem = bar()
    reference = march(
        reference_problem,
        SpringModel(3, E, H, SIGMA_Y),
        LoadPath(path.points, times),
        progress=False,
    )
    assert [i.time for i in cut] == pytest.approx([i.time for i in reference], abs=1e-14)
    assert [i.cutbacks for i in cut] == [0] * 5 + [1, 1] + [0] * 6
    assert [i.step for i in cut] == [1, 2, 3, 4, 5, 6, 6, 7, 8, 9, 10, 11, 12]
    # the same arithmetic up to the parallel direct solver's round-off (|F| ~ 4e-3, u ~ 1e-2)
    for a, b in zip(cut, reference, strict=True):
        for name, forces in a.record["reactions"].items():
            got = [np.nan if f is None else f for f in forces]
            want = [np.nan if f is None else f for f in b.record["reactions"][name]]
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)
        assert a.record["dissipated_energy"] == pytest.approx(
            b.record["dissipated_energy"], rel=1e-12
        )
    np.testing.assert_allclose(problem.u.x.array, reference_problem.u.x.array, rtol=0, atol=1e-14)
    # the failed attempt was rolled back, never committed
    log = model.log
    failed = log.index(("begin", path.times[5]))
    assert log[failed + 1] == ("rollback", path.times[5])


def test_exhausted_cut_backs_name_step_time_and_point():
    path = load_path(CYCLE, steps=4)

    def always(model, time, attempt):
        return time > path.times[1] + 1e-12 and MPI.COMM_WORLD.rank == 0

    model = SpringModel(3, E, H, SIGMA_Y, fail=always)
    with pytest.raises(MicroFailure) as caught:
        march(bar(), model, load_path(CYCLE, steps=4, max_cuts=2), progress=False)
    message = str(caught.value)
    assert re.search(
        r"step 3 \(t = 0\.5 → 0\.75\) failed at t = 0\.5625 after 2 cut-backs", message
    )
    assert re.search(
        r"rank 0: .*fake micro Newton failed at macro point \d+ \(global index\)", message
    )
    assert model.log.count(("rollback", 0.5625)) == 1 and model.committed.shape[1] == 6


class CommitFailsOnLastRank(SpringModel):
    """Injected failure: the last rank's commit raises at the second step."""

    def commit(self):
        if MPI.COMM_WORLD.rank == MPI.COMM_WORLD.size - 1 and self.time > 0.3:
            raise RuntimeError("injected commit failure")
        super().commit()


@pytest.mark.timeout(60)  # before the fix rank 0 waited in micro_iterations' allreduce
def test_a_commit_that_fails_on_one_rank_is_raised_on_every_rank():
    comm = MPI.COMM_WORLD
    model = CommitFailsOnLastRank(3, E, H, SIGMA_Y)
    with pytest.raises(RuntimeError) as caught:
        march(bar(), model, load_path(CYCLE, steps=4), progress=False)
    message = str(caught.value)
    assert message == f"rank {comm.size - 1}: injected commit failure"
    assert comm.allgather(message) == [message] * comm.size
    assert model.log.count(("commit", 0.25)) == 1  # the first step was committed


@pytest.mark.serial
@pytest.mark.parametrize("ranks", [2, 3])
def test_a_commit_failure_under_mpirun_ends_within_seconds(tmp_path, ranks):
    script = tmp_path / "fail.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_stepping import test_a_commit_that_fails_on_one_rank_is_raised_on_every_rank as t
        t()
        print("raised on every rank")
    """)
    )
    mpirun = Path(sys.executable).parent / "mpirun"
    command = [str(mpirun if mpirun.exists() else "mpirun"), "-n", str(ranks), sys.executable]
    proc = subprocess.run(
        [*command, "-m", "mpi4py", str(script)],
        capture_output=True,
        text=True,
        timeout=120,  # the march takes seconds; a hang would take the 600 s test timeout
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("raised on every rank") == ranks


# -- balanced schedule: the states travel with their points --------------------------------


def skewed(x):
    return 20.0 if x[0] > 0.6 else 1.0


def test_balanced_with_replans_equals_owner_computes_on_a_cycle():
    path = load_path(CYCLE, steps=4)
    # a plate with a hole: the strain is not uniform, so every point has its own history
    mesh = macro_mesh("plate-with-hole", 0.2, params={"L": 1.0, "R": 0.25})
    pull = {"left": (0.0, None), "bottom": (None, 0.0), "right": (STRETCH, None)}
    owner_problem = MacroProblem(mesh, hf.Elasticity(2), pull)
    owner = march(owner_problem, SpringModel(3, E, H, SIGMA_Y), path, progress=False)
    balanced_problem = MacroProblem(mesh, hf.Elasticity(2), pull)
    inner = SpringModel(3, E, H, SIGMA_Y, cost=skewed)
    model = BalancedModel(inner, MPI.COMM_WORLD, replan_above=1e-9)  # replans every respond
    moved = []
    original = model._replan

    def counting(exchange):
        moved.append(int(np.count_nonzero(exchange.send_counts)) > 1)
        original(exchange)

    model._replan = counting
    balanced = march(balanced_problem, model, path, progress=False)
    assert len(moved) > 10
    if MPI.COMM_WORLD.size > 1:  # the skewed costs really move points between ranks
        assert MPI.COMM_WORLD.allreduce(any(moved), op=MPI.LOR)
    for a, b in zip(owner, balanced, strict=True):
        for key in ("external_work", "stored_energy", "dissipated_energy"):
            assert b.record[key] == pytest.approx(a.record[key], rel=1e-10, abs=1e-16)
        assert b.record["iterations"] == a.record["iterations"]
    np.testing.assert_allclose(balanced_problem.u.x.array, owner_problem.u.x.array, atol=1e-12)
    assert owner[-1].record["dissipated_energy"] > 0


# -- state memory ------------------------------------------------------------------------------


def test_state_memory_is_reported_and_refused_when_too_large():
    memory = StateMemory(1000, 500, 50, 1000 * 550 * 8 + 1000, 10**9)
    assert memory.describe() == (
        "micro states: 4.2 MiB (1000 points × (500 committed + 50 trial) floats)"
    )
    check_state_memory(memory)  # fits
    check_state_memory(memory._replace(available=-1))  # unknown: passes
    with pytest.raises(
        InputError, match=r"micro states: 4\.2 MiB .* exceed the 1\.0 MiB .* coarser macro mesh"
    ):
        check_state_memory(memory._replace(available=2**20))


def test_state_memory_counts_a_trial_row_without_internal_variables():
    """The estimate: N × (W + T) × 8 bytes + N flag bytes, T = the trial row of the model
    (or of the model it wraps); a model without ``trial_width`` keeps full trial rows."""

    class Cell:  # a history cell model's widths: 3 + 40 unknowns + 400 internal
        def state_width(self):
            return 443

        def trial_width(self):
            return 43

    class Wrapper:  # forwards state_width only, as BalancedModel does
        def __init__(self, inner):
            self.inner = inner

        def state_width(self):
            return self.inner.state_width()

    class Full:  # a history model with full trial rows
        def state_width(self):
            return 10

    assert state_widths(Wrapper(Cell())) == (443, 43)
    assert state_widths(Full()) == (10, 10)
    assert state_widths(object()) == (0, 0)
    comm = MPI.COMM_WORLD
    memory = state_memory(comm, 10, 443, 43)
    points = 10 * comm.size
    assert (memory.points, memory.width, memory.trial_width) == (points, 443, 43)
    assert memory.nbytes == points * (443 + 43) * 8 + points
    assert state_memory(comm, 10, 443).nbytes == points * 2 * 443 * 8 + points


def test_state_memory_counts_the_transient_copies_of_the_committed_rows():
    """A balanced run holds MIGRATION_COPIES = 2 copies of the committed rows while it moves
    them, a resumed one RESTORE_COPIES = 1 while it reads them: N × W × 8 bytes each, in the
    estimate, the message and the refusal (which then names the owner schedule)."""
    from hmm_fenics.run.memory import transient_copies

    comm = MPI.COMM_WORLD
    points = 10 * comm.size
    memory = state_memory(comm, 10, 443, 43, copies=2)
    assert memory.nbytes == points * (443 + 43 + 2 * 443) * 8 + points
    assert memory.describe().endswith("(443 committed + 43 trial) floats + 2 transient copies "
                                      "of the committed rows)")  # fmt: skip
    assert state_memory(comm, 10, 0, 0, copies=2).nbytes == 0  # no states, no copies
    with pytest.raises(InputError, match=r'solver\.schedule = "owner" needs none of the 2'):
        check_state_memory(memory._replace(available=2**10))

    class Balanced:
        def owned_state_rows(self):
            raise AssertionError

    assert transient_copies(Balanced(), resuming=False) == 2
    assert transient_copies(object(), resuming=True) == 1
    assert transient_copies(object(), resuming=False) == 0


# -- hmm-fenics run with a history model: per-step results, fields, pictures, memory ---------

RUN = """\
[macro]
geometry = "rectangle"
mesh_size = 0.25

[dirichlet]
left = [0.0, "free"]
bottom = ["free", 0.0]
right = [0.01, "free"]

[loading]
path = [[0, 0], [1, 1], [2, -1], [3, 0]]
steps = 3

[rve]
kind = "inclusion"
dim = 2
fraction = 0.3
mesh_size = 0.1

[physics]
kind = "elasticity"
plane = "stress"

[materials.matrix]
E = 3.0
nu = 0.35

[materials.inclusion]
E = 70.0
nu = 0.2

[output]
snapshots = []
"""


def test_run_with_a_history_model_writes_steps_fields_and_pictures(tmp_path, monkeypatch):
    import json

    from hmm_fenics.cli import main
    from hmm_fenics.run import job

    comm = MPI.COMM_WORLD
    folder = comm.bcast(tmp_path, root=0)
    if comm.rank == 0:
        (folder / "run.toml").write_text(RUN)
    comm.barrier()
    monkeypatch.setattr(job, "_micro_model", lambda config, comm: (SpringModel(3), None))
    assert main(["run", str(folder / "run.toml"), "-o", str(folder / "out"), "-q"]) == 0
    data = json.loads((folder / "out" / "results.json").read_text())
    steps = data["steps"]
    assert [s["time"] for s in steps] == pytest.approx([k / 3 for k in range(1, 10)])
    reference = one_spring(load_path(CYCLE, steps=3))
    for step, (sigma, work, stored, dissipated) in zip(steps, reference, strict=True):
        assert step["reactions"]["right"][0] == pytest.approx(sigma, rel=1e-8, abs=1e-12)
        assert step["external_work"] == pytest.approx(work, rel=1e-8, abs=1e-14)
        assert step["dissipated_energy"] == pytest.approx(dissipated, rel=1e-8, abs=1e-14)
        assert step["stored_energy"] == pytest.approx(stored, rel=1e-8, abs=1e-14)
    out = folder / "out"
    for picture in ("curve.png", "plastic_zone.png", "macro.png"):
        assert (out / picture).stat().st_size > 10_000
    assert (out / "plastic_strain.xdmf").exists()
    # too many states for the memory: refused before the solve, exit 2
    from hmm_fenics.run import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 1024)
    assert main(["run", str(folder / "run.toml"), "-o", str(folder / "bad"), "-q"]) == 2


def test_curve_segments_follow_the_load_path():
    """curve.png colours: the curve points of each path segment, the shared vertex in both."""
    from dataclasses import replace

    from hmm_fenics.run.schema import RunConfig
    from hmm_fenics.run.steps import path_segments

    path = load_path([(0.0, 0.0), (1.0, 1.0), (2.0, 0.0), (2.5, 0.0), (3.0, -0.5)], [2, 1, 1, 3])
    config = replace(RunConfig(cell=None, macro=None), loading=path)  # type: ignore[arg-type]
    steps = [{"time": t} for t in path.times]
    # point 0 is the start, point k the end of step k: 2 + 1 + 1 + 3 steps
    assert path_segments(config, steps) == [
        (0, 2, "1: loading, factor 0 → 1"),
        (2, 3, "2: unloading, factor 1 → 0"),
        (3, 4, "3: hold, factor 0 → 0"),
        (4, 7, "4: loading, factor 0 → -0.5"),
    ]
    # the steps done so far (a curve drawn mid-path): the last segment is partial
    assert path_segments(config, steps[:5]) == [
        (0, 2, "1: loading, factor 0 → 1"),
        (2, 3, "2: unloading, factor 1 → 0"),
        (3, 4, "3: hold, factor 0 → 0"),
        (4, 5, "4: loading, factor 0 → -0.5"),
    ]

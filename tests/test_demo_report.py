"""`make demos` ends with one pass/fail table of every demo's checks (demos/report.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPORT = Path(__file__).parents[1] / "demos" / "report.py"


def write(root, name, checks):
    folder = root / f"demo_{name}"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"checks": checks}))


def report(root, *demos):
    return subprocess.run(
        [sys.executable, str(REPORT), "--root", str(root), *demos],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


GOOD = {
    "name": "energy = ½ R·u",
    "value": 1.0,
    "reference": 1.0,
    "error": 0.0,
    "tolerance": 1e-8,
    "passed": True,
}
BOUND = {"name": "κ within the bounds", "value": 2.0, "low": 1.0, "high": 3.0, "passed": True}


@pytest.mark.serial
def test_all_passed_is_exit_0_with_every_check_in_one_table(tmp_path):
    write(tmp_path, "a", [GOOD, BOUND])
    write(tmp_path, "b", [GOOD, {**BOUND, "high": None}])  # a one-sided bound
    proc = report(tmp_path, "a=0", "b=0")
    assert proc.returncode == 0, proc.stdout
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith(("a ", "b "))]
    assert [(r[0], r[-1]) for r in rows] == [("a", "ok"), ("a", "ok"), ("b", "ok"), ("b", "ok")]
    assert "1 vs 1" in proc.stdout and "2 in [1, 3]" in proc.stdout and "2 ≥ 1" in proc.stdout
    assert proc.stdout.rstrip().endswith("all 4 checks of 2 demos passed")
    assert report(tmp_path).returncode == 0  # no names: every demo_* folder


@pytest.mark.serial
@pytest.mark.parametrize(
    ("case", "shown"),
    [("failed check", "FAIL"), ("exit code", "exited with code 1"), ("missing", "MISSING")],
)
def test_a_failure_an_error_or_missing_results_is_exit_1(tmp_path, case, shown):
    write(tmp_path, "a", [GOOD])
    demos = ["a=0", "b=0"]
    if case == "failed check":
        write(tmp_path, "b", [{**BOUND, "value": 4.0, "passed": False}])
    elif case == "exit code":
        write(tmp_path, "b", [GOOD])
        demos[1] = "b=1"
    proc = report(tmp_path, *demos)
    assert proc.returncode == 1
    line = next(line for line in proc.stdout.splitlines() if line.startswith("b "))
    assert shown in line
    assert "problem(s)" in proc.stdout.splitlines()[-1]

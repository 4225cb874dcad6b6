"""bench/bench_fewer_solves.py's 3D FE² part runs (``--quick``) and shows what it claims.

The quick 3D run (a bar of 12 tetrahedra gripped at both ends, pulled and released in two
steps, a 3D J2 composite cell of ~560 unknowns) takes ~10 s on one core: the three modes
answer alike (the shortcut to 1e-10, the Krylov Newton to the micro tolerance), the
shortcut saves factorizations and Krylov makes one per run. The other parts and the full
sizes are the lead's to run (BENCHMARKS.md).
"""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "bench" / "bench_fewer_solves.py"


@pytest.mark.serial  # the bench writes its own files from one process
def test_quick_3d_fe2_modes_agree_and_save_factorizations(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_fewer_solves", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out, png = tmp_path / "fewer.json", tmp_path / "curves_3d.png"
    argv = ["--parts", "fe2_3d", "--quick", "--json", str(out), "--png3d", str(png)]
    results = bench.main(argv)["fe2_3d"]
    assert json.loads(out.read_text())["fe2_3d"]["plain"]["points"] == 12
    assert png.stat().st_size > 0
    plain, shortcut, krylov = (results[mode] for mode in ("plain", "shortcut", "krylov"))
    assert plain["micro_unknowns"] > 100 and len(plain["reaction"]) == 2
    # the exact shortcut: the same answers to 1e-10 (issue 14); Krylov: to the micro
    # tolerance (rtol 1e-10) times the macro Newton's amplification, with a margin of 100
    assert shortcut["reaction_difference"] <= 1e-10 and shortcut["u_difference"] <= 1e-10
    assert krylov["reaction_difference"] <= 1e-8 and krylov["u_difference"] <= 1e-8
    # the unloading step is elastic: the shortcut answers (nearly) every point there
    assert shortcut["shortcut_points"][1] > shortcut["newton_points"][1]
    assert plain["shortcut_points"] == [0, 0]
    assert sum(shortcut["factorizations"]) < sum(plain["factorizations"])
    assert sum(krylov["factorizations"]) == 1 and sum(krylov["krylov_iterations"]) > 0

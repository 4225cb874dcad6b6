"""bench/bench_balance.py's replay ranks the schedules on a recording whose dear cluster moves.

A synthetic recording (no run): 2 ranks × 40 points; in each load step a block of 20
neighbouring points costs 10 (a zone that yields), the rest 1, and the block sits on rank 0
in odd steps and on rank 1 in even ones, 3 macro iterations a step: a plan from the last costs
is always one step late for the contiguous shift, while dealing shares every block.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).parent.parent / "bench" / "bench_balance.py"


def test_replay_prefers_dealing_when_a_cluster_turns_dear(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_balance", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    n, steps, per_step = 40, 6, 3
    rows, step_of, iteration_of = [], [], []
    for step in range(1, steps + 1):
        dear = np.arange(10, 30) + (0 if step % 2 else n)  # a block on rank 0, then on rank 1
        for k in range(per_step):
            costs = np.ones(2 * n)
            costs[dear] = 10.0
            rows.append(costs)
            step_of.append(step)
            iteration_of.append(k)
    recording = tmp_path / "costs.npz"
    np.savez(
        recording,
        costs=np.array(rows),
        owners=np.repeat([0, 1], n),
        local_order=np.arange(2 * n),
        steps=np.array(step_of),
        iterations=np.array(iteration_of),
    )
    table = bench.replay(str(recording), None)
    before = table["before: contiguous, last costs, measured > 1.15"][0]
    dealt = table["dealt, last costs, measured > 1.15 (the default)"][0]
    bound = table["bound: contiguous on the respond's own costs"][0]
    # each respond: 260 of cost in all; dealt, the 20 dear points split 10/10 at every plan
    # (the first plan from unit costs deals 0, 1, 0, 1, ...), so both ranks hold 130: 1.0
    assert dealt == 1.0
    assert bound == 1.0  # the cut of the respond's own costs: 130/130 exactly here
    # contiguous: the first answer is owner computes (max 220 of 260); each later step's
    # first answer meets the plan cut for the previous block (its owner's dear points up to
    # the 130 mark stay put, 18 cheap ones of the other rank follow): max 238; the other
    # answers are replanned to 130. Efficiency = 18 · 260 / (2 · (220 + 5 · 238 + 12 · 130))
    assert before == pytest.approx(18 * 260 / (2 * (220 + 5 * 238 + 12 * 130)), rel=1e-12)

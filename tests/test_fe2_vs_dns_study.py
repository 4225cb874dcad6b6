"""The FE²-versus-DNS study of BENCHMARKS.md: its conclusions, asserted (slow: minutes)."""

import numpy as np
import pytest
from test_demos import run


def local_rates(rows, key):
    """Observed orders between successive ε (each ε half the previous)."""
    errors = np.array([r[key] for r in rows])
    eps = np.array([r["epsilon"] for r in rows])
    return np.log(errors[:-1] / errors[1:]) / np.log(eps[:-1] / eps[1:])


@pytest.mark.slow
@pytest.mark.serial
def test_medium_study_errors_fall_over_the_whole_range(tmp_path):
    data, _ = run(
        "fe2_vs_dns.py", tmp_path, 1, "--size", "medium", "--cases", "diffusion", "elasticity"
    )
    for name in ("diffusion", "elasticity"):
        rows = data[name]["rows"]
        assert [round(1 / r["epsilon"]) for r in rows] == [4, 8, 16, 32]
        assert data[name]["settings"]["H"] == pytest.approx(1 / 32)
        # u: O(ε) at every halving (theory: first order), no floor down to ε = 1/32
        np.testing.assert_array_less(0.85, local_rates(rows, "u_error"))
        np.testing.assert_array_less(local_rates(rows, "u_error"), 1.15)
        # the cell-averaged flux on the fixed middle square falls at every halving
        np.testing.assert_array_less(0.9, local_rates(rows, "flux_error_middle"))
    # diffusion, Dirichlet all round, centred disks: the O(ε) terms of the cell average
    # vanish by symmetry, and the error is O(ε²)
    np.testing.assert_array_less(1.8, local_rates(data["diffusion"]["rows"], "flux_error_middle"))

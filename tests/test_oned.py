"""The 1D hands-on case (studies.oned): the HMM loop gives the harmonic mean, not the arithmetic one."""

import json
import math

import numpy as np
import pytest

import hmm_fenics  # noqa: F401  (loads the wheel's MPI before dolfinx)
from hmm_fenics.errors import InputError
from hmm_fenics.studies import oned


def harmonic_mean(lower: float, delta: float, epsilon: float) -> float:
    """δ / ∫ 1/(2 + cos(2π s/ε)) ds over [lower, lower + δ], in closed form.

    An antiderivative of 1/(2 + cos t) is (2/√3) atan(tan(t/2)/√3), continued across the
    branches of tan by adding π/√3·2 per period of t (2π): F(t) = (2/√3)(atan(tan(t/2)/√3)
    + π·round(t/(2π))).
    """

    def F(t: float) -> float:
        k = math.floor(t / (2 * math.pi) + 0.5)
        return 2 / math.sqrt(3) * (math.atan(math.tan(t / 2) / math.sqrt(3)) + math.pi * k)

    scale = epsilon / (2 * math.pi)  # ds = scale dt
    t0, t1 = lower / scale, (lower + delta) / scale
    return delta / (scale * (F(t1) - F(t0)))


def test_the_closed_form_matches_quadrature():
    # the two independent references agree (quad at epsrel 1e-13): 1e-12
    for lower, delta in [(0.013, 0.125), (-0.2, 0.37), (0.3, 0.1)]:
        assert harmonic_mean(lower, delta, 0.05) == pytest.approx(
            oned.window_harmonic_mean(lower + delta / 2, delta, 0.05), rel=1e-12
        )


def test_periodic_whole_windows_give_the_harmonic_mean_and_the_homogenized_solution():
    result = oned.oned_hmm(macro_cells=6, epsilon=0.05, delta=0.1, bc="periodic")
    # P3 windows of 64 cells per period: the 1D FE error of the coefficient is ~1e-11 (h^6)
    assert np.abs(result.coefficients - math.sqrt(3)).max() < 1e-10
    assert np.abs(result.fluxes - math.sqrt(3) * result.gradients).max() < 1e-10
    # P2 holds u0 = x(1−x)/(2√3) exactly: only the coefficient's 1e-11 is left
    u0 = result.nodes * (1 - result.nodes) / (2 * math.sqrt(3))
    assert np.abs(result.u - u0).max() < 1e-10 * np.abs(u0).max()
    # the macro problem is linear: one Newton step, then round-off
    assert result.residuals[-1] < 1e-12 * result.residuals[0]
    # the arithmetic-mean model is off by 1 − √3/2 = 13.4 % everywhere
    # (|1/4 − 1/(2√3)| / (1/(2√3)))
    assert result.error_arithmetic == pytest.approx(1 - math.sqrt(3) / 2, rel=1e-12)
    assert result.error_homogenized < 1e-10


def test_a_dirichlet_window_of_a_non_whole_number_of_periods_gives_its_own_harmonic_mean():
    epsilon, delta = 0.05, 0.125  # 2.5 periods
    result = oned.oned_hmm(macro_cells=4, epsilon=epsilon, delta=delta, bc="dirichlet")
    expected = np.array([harmonic_mean(x - delta / 2, delta, epsilon) for x in result.points])
    assert np.abs(result.coefficients - expected).max() < 1e-10  # P3 mesh error, as above
    assert np.abs(result.references - expected).max() < 1e-12
    # ... which is not √3: the resonance error, O(ε/δ) (here up to 7 %)
    assert np.abs(result.coefficients - math.sqrt(3)).max() > 0.02
    assert result.error_homogenized > 1e-3


def test_the_fine_solution_oscillates_around_the_homogenized_one():
    x = np.linspace(0, 1, 41)
    fine = oned.fine_solution(x, 0.02)
    u0 = oned.homogenized_solution(x, math.sqrt(3))
    # the first-order corrector: |u_ε − u0| = O(ε) (here ε = 0.02, u0 up to 0.072)
    assert np.abs(fine - u0).max() < 0.02 * 0.5
    assert np.abs(fine - oned.homogenized_solution(x, 2.0)).max() > 0.005


def test_bad_sizes_name_the_option():
    with pytest.raises(InputError, match="--delta"):
        oned.oned_hmm(delta=-1.0)
    with pytest.raises(InputError, match="--macro-cells"):
        oned.oned_hmm(macro_cells=0)
    with pytest.raises(InputError, match=r"micro\.bc"):
        oned.oned_hmm(bc="neumann")


def test_the_macro_cells_have_an_upper_bound():
    # every macro point solves a window: 10⁸ cells would run for hours before any output
    with pytest.raises(InputError, match="--macro-cells"):
        oned.oned_hmm(macro_cells=10**8)


def test_a_huge_window_names_the_study_options_and_a_short_count():
    # δ/ε · 64 = 1.28e303 cells: the message names the options of the command (not run-file
    # keys) and prints the count in three digits, not as a 304-digit integer
    with pytest.raises(InputError) as error:
        oned.oned_hmm(delta=1e300)
    message = str(error.value)
    assert "--delta" in message and "--cells-per-epsilon" in message
    assert "micro." not in message and "1.28e+303" in message and len(message) < 200


@pytest.mark.serial  # every rank has its own tmp_path: rank 0 writes, rank 1 would not find it
def test_the_study_commands_write_json_and_png(tmp_path, capsys):
    from conftest import cli_error

    from hmm_fenics.cli import main

    out = tmp_path / "o"
    assert main(["study", "oned", "--macro-cells", "4", "-o", str(out)]) == 0
    data = json.loads((out / "oned.json").read_text())
    assert max(abs(a - math.sqrt(3)) for a in data["coefficients"]) < 1e-10
    assert (out / "oned.png").stat().st_size > 10_000
    command = ["study", "resonance", "--ratios", "1", "1.5", "--bc", "periodic"]
    assert main([*command, "--cells-per-epsilon", "4", "-o", str(out)]) == 0
    data = json.loads((out / "resonance.json").read_text())
    assert data["errors"]["periodic"][1] > 10 * data["errors"]["periodic"][0]
    assert (out / "resonance.png").stat().st_size > 10_000
    assert main(["study", "oned", "--delta", "0", "-o", str(tmp_path / "x")]) == 2
    assert "--delta" in cli_error(capsys)
    assert main(["study", "budget", "--H", "2", "-o", str(tmp_path / "y")]) == 2
    assert "--H" in cli_error(capsys)

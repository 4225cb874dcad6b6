"""The resonance study (studies.resonance): errors of the apparent coefficient against δ/ε per BC."""

import math

import numpy as np
import pytest

import hmm_fenics  # noqa: F401  (loads the wheel's MPI before dolfinx)
from hmm_fenics.errors import InputError
from hmm_fenics.studies import resonance
from hmm_fenics.studies.oned import window_harmonic_mean

pytestmark = pytest.mark.serial  # windows on COMM_SELF: every rank would repeat them

RATIOS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)


@pytest.fixture(scope="module")
def study():
    # P2, 4 cells per period: the mesh error of the coefficient is ~1.3e-3 (pre-asymptotic;
    # 1.3e-4 at 8 cells), far below the O(ε/δ) errors studied (2e-2 … 6e-2)
    return resonance.resonance_study(RATIOS, cells_per_epsilon=4)


def test_dirichlet_and_neumann_errors_fall_as_eps_over_delta(study):
    # theory: the boundary layer's O(ε/δ), fitted on the whole δ/ε (1 … 4) where it is the
    # only error; pre-asymptotic at δ = ε, so a slope within ±0.3 of −1
    for bc in ("dirichlet", "neumann"):
        assert resonance.REGIMES[bc] == "whole"
        assert -1.3 < study.rates[bc] < -0.7, (bc, study.rates[bc])
        assert study.errors[bc][-1] < study.errors[bc][0] / 3


def test_the_periodic_resonance_rate_is_fitted_on_the_non_whole_ratios(study):
    # periodic windows: O(ε/δ) resonance at non-whole δ/ε; 1.5 and 2.5 have the same
    # fractional phase (½), so the constant is the same and the slope is −1 up to the mesh
    # error (~1e-3 against errors ~3e-2: a few hundredths) — a band of ±0.25. Fitted over
    # every ratio it mixed in the whole ones' mesh error and gave −0.55.
    assert resonance.REGIMES["periodic"] == resonance.REGIMES["oversampling"] == "non-whole"
    assert -1.25 < study.rates["periodic"] < -0.75, study.rates["periodic"]
    # fewer than two ratios in a regime: no rate (n/a in the summary)
    single = resonance.resonance_study((1.0, 1.5), ("periodic", "dirichlet"), cells_per_epsilon=4)
    assert math.isnan(single.rates["periodic"]) and math.isnan(single.rates["dirichlet"])
    assert "n/a" in resonance.summary(single)


def test_periodic_is_exact_at_whole_ratios_and_resonates_at_the_others(study):
    whole = [i for i, r in enumerate(RATIOS) if resonance.is_whole(r)]
    others = [i for i in range(len(RATIOS)) if i not in whole]
    errors = np.asarray(study.errors["periodic"])
    assert errors[whole].max() < 2e-3  # the mesh error (see the fixture)
    assert errors[others].min() > 10 * errors[whole].max()  # the resonance error


def test_the_periodic_error_at_whole_ratios_is_the_mesh_error():
    # it falls as the mesh is refined (P2, pre-asymptotic: ×10 from 4 to 8 cells per period)
    coarse = resonance.resonance_study((2.0,), ("periodic",), cells_per_epsilon=4)
    fine = resonance.resonance_study((2.0,), ("periodic",), cells_per_epsilon=8)
    assert fine.errors["periodic"][0] < coarse.errors["periodic"][0] / 5


def test_oversampling_beats_dirichlet_and_neumann_at_whole_ratios(study):
    for i, r in enumerate(RATIOS):
        if resonance.is_whole(r) and r >= 2:
            best = min(study.errors["dirichlet"][i], study.errors["neumann"][i])
            assert study.errors["oversampling"][i] < best / 5


def test_the_laminate_closed_forms_of_the_windows(study):
    # a depends on x1 only: the Dirichlet window's A22 is the arithmetic mean of a over the
    # window and the Neumann window's A11 its harmonic mean (references.md, laminate)
    for i, r in enumerate(RATIOS):
        lower = resonance.CENTER[0] - r / 2
        arithmetic = 2 + (math.sin(2 * math.pi * (lower + r)) - math.sin(2 * math.pi * lower)) / (
            2 * math.pi * r
        )
        harmonic = window_harmonic_mean(resonance.CENTER[0], r, 1.0)
        # the P2 mesh error at 4 cells per period (as above), relative
        assert study.tensors["dirichlet"][i][1][1] == pytest.approx(arithmetic, rel=2e-3)
        assert study.tensors["neumann"][i][0][0] == pytest.approx(harmonic, rel=2e-3)


def test_bad_ratios_name_the_option():
    with pytest.raises(InputError, match="--ratios"):
        resonance.resonance_study((0.0,))
    with pytest.raises(InputError, match="--ratios"):
        resonance.resonance_study((1.3,), cells_per_epsilon=4)
    with pytest.raises(InputError, match="--cells-per-epsilon"):
        resonance.resonance_study((1.0,), cells_per_epsilon=0)


def test_a_huge_window_names_the_resonance_options():
    # δ/ε = 10⁶ at 8 cells per period: 8e6 cells per side, above the window limit
    with pytest.raises(InputError) as error:
        resonance.resonance_study((1e6,))
    message = str(error.value)
    assert "--ratios" in message and "--cells-per-epsilon" in message and "8e+06" in message


def test_an_oversampled_window_of_a_homogeneous_medium_returns_its_conductivity():
    from hmm_fenics.materials import Conductivity
    from hmm_fenics.physics import Elasticity
    from hmm_fenics.studies.windows import OversampledWindows, boundary_windows

    windows = boundary_windows(2, lambda x: np.full(x.shape[1], 3.5), 0.4, 4, "oversampling")
    tensor = windows.cell_at(np.array([0.1, 0.2])).effective_tensor
    # the affine field is the exact solution: round-off (the form's sums, 1e-13)
    assert np.abs(tensor - 3.5 * np.eye(2)).max() < 1e-12
    assert windows.delta == pytest.approx(1.2) and windows.inner_delta == pytest.approx(0.4)
    with pytest.raises(InputError, match=r"micro\.oversampling"):
        boundary_windows(2, lambda x: np.ones(x.shape[1]), 0.4, 4, "oversampling", ratio=2)
    with pytest.raises(InputError, match="diffusion only"):
        OversampledWindows(Elasticity(2), lambda x: np.ones(x.shape[1]), 0.4, 4, Conductivity(1.0))


@pytest.mark.slow
def test_the_default_study_up_to_eight_periods():
    # the command's default sizes (8 cells per period: mesh error 1.3e-4)
    study = resonance.resonance_study()
    for bc in ("dirichlet", "neumann"):
        assert -1.2 < study.rates[bc] < -0.9  # whole δ/ε: the boundary layer alone
    assert -1.3 < study.rates["periodic"] < -0.9  # non-whole δ/ε: the resonance (−1.1)
    errors = np.asarray(study.errors["periodic"])
    whole = np.array([resonance.is_whole(r) for r in study.ratios])
    assert errors[whole].max() < 2e-4 and errors[~whole].min() > 50 * errors[whole].max()
    # oversampling at whole δ/ε ≥ 2: at least 20× below the better of Dirichlet and Neumann
    for i, r in enumerate(study.ratios):
        if whole[i] and r >= 2:
            best = min(study.errors["dirichlet"][i], study.errors["neumann"][i])
            assert study.errors["oversampling"][i] < best / 20

"""The micro boundary-condition family (issue 13.1): periodic, Dirichlet, Neumann, oversampling.

Expected values come from closed forms (references.md): the phase tensor of a homogeneous
cell, the arithmetic and harmonic means of a laminate, the single-point J2 law, and from
independent computations: central differences (consistent tangents), the mesh integrals of
``coupling.restriction`` (⟨ε⟩, Hill–Mandel) and the nesting of the discrete spaces
(Dirichlet ⊂ periodic ⊂ Neumann, hence the energy ordering of the apparent tensors).
"""

import numpy as np
import pytest
from conftest import cli_error
from test_history_cell import (
    MATRIX,
    check_tangent_at_a_plastic_state,
    embed,
    path,
    virgin,
    walk,
)
from test_run import DIFFUSION as RUN

import hmm_fenics as hf
from hmm_fenics.cli import main
from hmm_fenics.coupling.homogenize import homogenize
from hmm_fenics.coupling.restriction import VolumeAverager
from hmm_fenics.errors import InputError
from hmm_fenics.materials import PowerLawConductivity, PowerLawElastic
from hmm_fenics.micro.boundary import BOUNDARY_CONDITIONS
from hmm_fenics.micro.cell_problem import cell_problem
from hmm_fenics.micro.history import history_cell_problem
from hmm_fenics.micro.nonlinear import finite_difference_tangent, nonlinear_cell_problem
from hmm_fenics.point_laws import IN_PLANE, Elastic, J2Plasticity
from hmm_fenics.rve.tiling import tile_rve

BCS = list(BOUNDARY_CONDITIONS)
EXACT = ["periodic", "dirichlet", "neumann"]  # Hill–Mandel and ⟨ε⟩ = G are identities
ROUND_OFF = 1e-11  # relative: direct (MUMPS) solves of a few hundred unknowns give ~1e-14


@pytest.fixture(scope="module")
def disk():
    return hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1))


def materials(physics, k1=1.0, k2=10.0):
    if isinstance(physics, hf.Diffusion):
        return {"matrix": hf.Conductivity(k1), "inclusion": hf.Conductivity(k2)}
    return {"matrix": hf.IsotropicElastic(3.0, 0.35), "inclusion": hf.IsotropicElastic(70.0, 0.2)}


@pytest.mark.parametrize("bc", BCS)
@pytest.mark.parametrize(
    "physics, phase",
    [
        (hf.Diffusion(2), hf.Conductivity(2.5)),
        (hf.Elasticity(2), hf.IsotropicElastic(5.0, 0.3)),
    ],
    ids=["diffusion", "elasticity"],
)
def test_a_homogeneous_cell_returns_the_phase_tensor(disk, physics, phase, bc):
    cell = cell_problem(physics, disk, {"matrix": phase, "inclusion": phase}, bc=bc)
    expected = phase.tensor(physics)
    # the affine field solves every BC exactly: the fluctuation is round-off
    np.testing.assert_allclose(cell.effective_tensor, expected, atol=ROUND_OFF * expected.max())


@pytest.mark.parametrize("bc", BCS)
def test_a_homogeneous_3d_cell_returns_the_phase_tensor(bc):
    rve = hf.build_rve(hf.RVESpec("inclusion", 3, 0.1, 0.35))
    physics, phase = hf.Elasticity(3), hf.IsotropicElastic(5.0, 0.3)
    cell = cell_problem(physics, rve, {"matrix": phase, "inclusion": phase}, bc=bc)
    expected = phase.tensor(physics)
    np.testing.assert_allclose(cell.effective_tensor, expected, atol=ROUND_OFF * expected.max())


@pytest.mark.parametrize("bc", EXACT)
@pytest.mark.parametrize("kind", ["diffusion", "elasticity"])
def test_mean_gradient_is_the_macro_gradient_and_hill_mandel_holds(disk, kind, bc):
    physics = hf.Diffusion(2) if kind == "diffusion" else hf.Elasticity(2)
    cell = cell_problem(physics, disk, materials(physics), bc=bc)
    averager = VolumeAverager(cell)  # integrates the DOLFINx fields on the mesh
    for G in np.eye(physics.n_components):
        avg = averager(G)
        # ⟨ε⟩ over the box from the fluctuation: G to round-off (Neumann: its constraint)
        np.testing.assert_allclose(avg.gradient, G, atol=ROUND_OFF)
        assert avg.hill_mandel_residual(G) < ROUND_OFF
        np.testing.assert_allclose(avg.flux, cell.effective_tensor @ G, atol=1e-10)
    assert cell.hill_mandel_residual < ROUND_OFF  # the algebraic one the summary reports


@pytest.mark.parametrize(
    "center", [(0.5, 0.5), (0.0, 0.0)], ids=["inner pore", "pore in the corners"]
)
def test_porous_cells_keep_the_identities_and_the_ordering(center):
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.08, void=True, center=center))
    physics = hf.Elasticity(2)
    C = {}
    for bc in EXACT:
        cell = cell_problem(physics, rve, {"matrix": hf.IsotropicElastic(3.0, 0.35)}, bc=bc)
        averager = VolumeAverager(cell)  # ⟨ε⟩ over the box with the pore-boundary term
        for G in np.eye(3):
            avg = averager(G)
            np.testing.assert_allclose(avg.gradient, G, atol=ROUND_OFF)
            assert avg.hill_mandel_residual(G) < ROUND_OFF
        assert cell.hill_mandel_residual < ROUND_OFF
        C[bc] = cell.effective_tensor
    assert ordered(C["neumann"], C["periodic"], 1e-12)
    assert ordered(C["periodic"], C["dirichlet"], 1e-12)


def test_neumann_elasticity_refuses_a_pore_cut_by_a_face():
    # a pore split between the faces x = 0 and x = 1: a rigid rotation has a mean strain
    # from the pore-boundary term, so the pins would be extra constraints (C33 0.27 or 0.48
    # depending on which dofs were pinned)
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.08, void=True, center=(0.0, 0.5)))
    matrix = {"matrix": hf.IsotropicElastic(3.0, 0.35)}
    with pytest.raises(InputError, match=r'micro\.bc = "neumann": pores cut the cell faces'):
        cell_problem(hf.Elasticity(2), rve, matrix, bc="neumann")
    for bc in ("periodic", "dirichlet"):  # well posed there
        assert np.isfinite(
            cell_problem(hf.Elasticity(2), rve, matrix, bc=bc).effective_tensor
        ).all()


def permuted_pins(monkeypatch, seed):
    """Make ``boundary.rigid_pins`` choose another valid pin set (a permuted greedy)."""
    import hmm_fenics.micro.boundary as boundary

    greedy = boundary.rigid_pins

    def pins(modes):
        order = np.random.default_rng(seed).permutation(len(modes))
        chosen = np.sort(order[greedy(modes[order])])
        assert np.linalg.matrix_rank(modes[chosen]) == modes.shape[1]  # they pin every mode
        return chosen

    monkeypatch.setattr(boundary, "rigid_pins", pins)


@pytest.mark.parametrize(
    "kind, center",
    [("elasticity", (0.5, 0.5)), ("elasticity", (0.0, 0.0)), ("diffusion", (0.0, 0.5))],
    ids=["inner pore", "pore in the corners", "diffusion, pore on a face"],
)
def test_neumann_tensor_does_not_depend_on_the_pinned_dofs(monkeypatch, kind, center):
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.08, void=True, center=center))
    physics = hf.Diffusion(2) if kind == "diffusion" else hf.Elasticity(2)
    phase = hf.Conductivity(1.0) if kind == "diffusion" else hf.IsotropicElastic(3.0, 0.35)
    C = cell_problem(physics, rve, {"matrix": phase}, bc="neumann").effective_tensor
    permuted_pins(monkeypatch, seed=1)
    C2 = cell_problem(physics, rve, {"matrix": phase}, bc="neumann").effective_tensor
    # the pins are a gauge: a different set changes the solve's round-off only
    np.testing.assert_allclose(C2, C, atol=ROUND_OFF * np.abs(C).max())


def pore_image(tmp_path, labels, name="pores.npy"):
    """An image cell of ``labels`` (0 matrix, 2 pore) with unit box, written to ``tmp_path``."""
    np.save(tmp_path / name, labels)
    labels_of = {"matrix": 0, "pore": 2}
    return hf.build_rve(
        hf.RVESpec(
            "image",
            2,
            path=str(tmp_path / name),
            voxel_size=1 / labels.shape[0],
            labels=labels_of,
            voids=("pore",),
        )
    )


@pytest.mark.parametrize("kind", ["diffusion", "elasticity"])
def test_neumann_refuses_material_joined_only_across_a_periodic_face(tmp_path, kind):
    # pores around a solid pixel on the face x = 1: it joins the rest only through its
    # periodic image, so under Neumann it floats (returned K11 = 0 silently before);
    # periodic and Dirichlet hold it (by the periodic face, by the Dirichlet face)
    labels = np.zeros((6, 6), dtype=np.int32)
    for pixel in [(0, 1), (0, 3), (5, 1), (5, 3), (4, 2), (4, 1), (4, 3)]:
        labels[pixel] = 2
    rve = pore_image(tmp_path, labels)
    physics = hf.Diffusion(2) if kind == "diffusion" else hf.Elasticity(2)
    phase = {"matrix": hf.Conductivity(1.0) if kind == "diffusion" else hf.IsotropicElastic(1, 0.3)}
    with pytest.raises(InputError, match=r'micro\.bc = "neumann" needs the material .* 2 pieces'):
        cell_problem(physics, rve, phase, bc="neumann")
    for bc in ("periodic", "dirichlet"):
        C = cell_problem(physics, rve, phase, bc=bc).effective_tensor
        assert np.linalg.eigvalsh((C + C.T) / 2).min() > 0.1  # no floating piece there


def test_an_image_whose_pores_differ_on_opposite_faces_has_dirichlet_and_neumann_tensors(
    tmp_path,
):
    # a 1×2-pixel pore on the face x = 0 (rows 2-3) and one on x = 1 (rows 5-6): their middle
    # face nodes have no partner, so the cell is not periodic; the same cut length on both
    # faces gives a constant mean gradient 0 (Neumann well posed for diffusion). A micro-CT
    # crop is like this
    labels = np.zeros((8, 8), dtype=np.int32)
    labels[0, 2:4] = labels[7, 5:7] = 2
    rve = pore_image(tmp_path, labels)
    physics, phase = hf.Diffusion(2), {"matrix": hf.Conductivity(1.0)}
    D = cell_problem(physics, rve, phase, bc="dirichlet")
    N = cell_problem(physics, rve, phase, bc="neumann")
    assert ordered(N.effective_tensor, D.effective_tensor, 1e-12)
    assert np.trace(D.effective_tensor - N.effective_tensor) > 1e-3  # pores: a real gap
    for cell in (D, N):
        assert cell.hill_mandel_residual < ROUND_OFF
    with pytest.raises(InputError, match=r'micro\.bc = "periodic": the pores of the image'):
        cell_problem(physics, rve, phase, bc="periodic")
    # rve-size: the whole image as one crop, with D and N and without P
    from hmm_fenics.config import CellConfig
    from hmm_fenics.studies.rve_size import format_selection, select_rve_size

    selection = select_rve_size(CellConfig(rve.spec, physics, phase), 0.5, 1, step=8)
    window = selection.windows[0]
    assert window.periodic is None
    np.testing.assert_allclose(window.neumann, N.effective_tensor, rtol=1e-12)
    assert "—" in format_selection(selection)
    assert selection.to_dict()["windows"][0]["periodic"] is None


def test_neumann_multigrid_gets_the_rigid_modes_as_near_null_space():
    rve = hf.build_rve(hf.RVESpec("inclusion", 3, 0.2, 0.2))
    physics = hf.Elasticity(3)
    options = {"ksp_type": "cg", "pc_type": "gamg", "ksp_rtol": 1e-8}
    iterations = {}
    for bc in ("periodic", "neumann"):
        cell = cell_problem(physics, rve, materials(physics), bc=bc, petsc_options=options)
        iterations[bc] = cell.ksp.getIterationNumber()  # CG iterations of the last solve
    # measured: periodic 25, neumann 20 with Pᵀ R as near null space, 76 without
    assert iterations["neumann"] <= 1.5 * iterations["periodic"]


def test_oversampling_reports_a_nonzero_hill_mandel_residual_and_a_nonsymmetric_tensor(disk):
    physics = hf.Elasticity(2)
    result = homogenize(disk, physics, materials(physics), bc="oversampling", oversampling=3)
    assert result.bc == "oversampling" and result.oversampling == 3
    # the inner average of a window solve is not an energy: HM fails beyond round-off
    assert 1e-8 < result.hill_mandel_residual < 0.1
    C = result.tensor
    assert np.abs(C - C.T).max() > 1e-8 * np.abs(C).max()


def test_oversampling_with_a_window_of_one_period_is_dirichlet(disk):
    physics = hf.Elasticity(2)
    window = cell_problem(physics, disk, materials(physics), bc="oversampling", oversampling=1)
    dirichlet = cell_problem(physics, disk, materials(physics), bc="dirichlet")
    # the same mesh and space; the inner average is the whole average: symmetric again
    C = dirichlet.effective_tensor
    np.testing.assert_allclose(window.effective_tensor, C, atol=1e-12 * np.abs(C).max())
    assert window.hill_mandel_residual < ROUND_OFF


@pytest.mark.parametrize("f", [0.3, 0.5])
def test_laminate_dirichlet_along_is_arithmetic_and_neumann_across_is_harmonic(f):
    k1, k2 = 1.0, 10.0
    rve = hf.build_rve(hf.RVESpec("laminate", 2, f, 0.1))  # layers normal to x1
    physics = hf.Diffusion(2)
    arithmetic = f * k2 + (1 - f) * k1
    harmonic = 1 / (f / k2 + (1 - f) / k1)
    dirichlet = cell_problem(physics, rve, materials(physics, k1, k2), bc="dirichlet")
    neumann = cell_problem(physics, rve, materials(physics, k1, k2), bc="neumann")
    # conforming layers: the exact fields (affine along; piecewise affine across) are P1
    assert dirichlet.effective_tensor[1, 1] == pytest.approx(arithmetic, rel=1e-12)
    assert neumann.effective_tensor[0, 0] == pytest.approx(harmonic, rel=1e-12)


def ordered(lower, upper, tol):
    """upper − lower is positive semidefinite (eigenvalues ≥ −tol · scale)."""
    difference = (upper - lower + (upper - lower).T) / 2
    return np.linalg.eigvalsh(difference).min() >= -tol * np.abs(upper).max()


def apparent(physics, rve, mats):
    return {bc: cell_problem(physics, rve, mats, bc=bc).effective_tensor for bc in EXACT}


@pytest.mark.parametrize("kind", ["diffusion", "elasticity"])
def test_neumann_periodic_dirichlet_ordering_on_a_random_cell(kind):
    rve = hf.build_rve(hf.RVESpec("random", 2, 0.35, 0.06, count=8, seed=3))
    physics = hf.Diffusion(2) if kind == "diffusion" else hf.Elasticity(2)
    C = apparent(physics, rve, materials(physics))
    # nested discrete spaces: the ordering is exact up to round-off; and strict here
    assert ordered(C["neumann"], C["periodic"], 1e-12)
    assert ordered(C["periodic"], C["dirichlet"], 1e-12)
    assert np.trace(C["dirichlet"] - C["neumann"]) > 1e-3 * np.trace(C["periodic"])


def test_neumann_periodic_dirichlet_ordering_on_a_random_3d_cell():
    rve = hf.build_rve(hf.RVESpec("random", 3, 0.15, 0.2, count=4, seed=5, min_gap=0.05))
    physics = hf.Elasticity(3)
    C = apparent(physics, rve, materials(physics))
    assert ordered(C["neumann"], C["periodic"], 1e-12)
    assert ordered(C["periodic"], C["dirichlet"], 1e-12)
    assert np.trace(C["dirichlet"] - C["neumann"]) > 1e-3 * np.trace(C["periodic"])


@pytest.mark.parametrize("kind", ["diffusion", "elasticity"])
def test_dirichlet_neumann_gap_shrinks_as_the_window_grows(kind):
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1))
    physics = hf.Diffusion(2) if kind == "diffusion" else hf.Elasticity(2)
    gaps, periodic = [], []
    for k in (1, 2, 3):
        C = apparent(physics, tile_rve(rve, (k, k)), materials(physics))
        gaps.append(np.linalg.eigvalsh(C["dirichlet"] - C["neumann"]).max())
        periodic.append(C["periodic"])
    assert gaps[0] > gaps[1] > gaps[2] > 0
    assert gaps[2] < 0.5 * gaps[0]  # roughly O(1/k): boundary layers over k periods
    for C in periodic[1:]:
        # the same periodic mesh repeated: the same periodic solution, to the solve error
        np.testing.assert_allclose(C, periodic[0], atol=1e-9 * np.abs(periodic[0]).max())


POWER_LAW = {
    "diffusion": (
        hf.Diffusion(2),
        {"matrix": PowerLawConductivity(1.0, 4.0, 0.5), "inclusion": hf.Conductivity(10.0)},
        np.array([1.0, 0.5]),
    ),
    "elasticity": (
        hf.Elasticity(2),
        {
            "matrix": PowerLawElastic(3.0, 0.35, 0.01, 0.3),
            "inclusion": hf.IsotropicElastic(70, 0.2),
        },
        np.array([0.02, -0.005, 0.01]),
    ),
}


@pytest.mark.parametrize("bc", BCS)
@pytest.mark.parametrize("kind", list(POWER_LAW))
def test_power_law_cell_tangent_matches_central_differences(disk, kind, bc):
    physics, mats, G = POWER_LAW[kind]
    cell = nonlinear_cell_problem(
        physics, disk, mats, bc=bc, oversampling=3 if bc == "oversampling" else None
    )
    solution = cell.solve(G)
    assert solution.iterations >= 3  # really nonlinear
    step = 1e-6 * np.abs(G).max()
    fd = finite_difference_tangent(lambda g: cell.solve(g, solution.fluctuation).flux, G, step)
    # central differences: O(step²) truncation plus round-off·|σ|/step ≈ 1e-9 relative
    np.testing.assert_allclose(solution.tangent, fd, atol=1e-7 * np.abs(solution.tangent).max())
    hill_mandel = cell.hill_mandel_of(G, solution.fluctuation)
    if bc == "oversampling":  # the inner average of a heterogeneous window is no energy
        assert 1e-8 < hill_mandel < 0.1
        assert np.abs(solution.tangent - solution.tangent.T).max() > 1e-8 * np.abs(fd).max()
    else:  # Newton to rtol 1e-10: the residual's work on w is of that order
        assert hill_mandel < 1e-9


@pytest.mark.parametrize("linear_solver", ["direct", "krylov"])
@pytest.mark.parametrize("bc", BCS)
def test_j2_cell_tangent_matches_central_differences(disk, bc, linear_solver):
    cell = history_cell_problem(
        hf.Elasticity(2),
        disk,
        {"matrix": J2Plasticity(*MATRIX), "inclusion": Elastic(70.0, 0.2)},
        rtol=1e-13,
        bc=bc,
        linear_solver=linear_solver,
    )
    G, solution = check_tangent_at_a_plastic_state(cell)
    hill_mandel = cell.hill_mandel_of(G, solution.fluctuation, solution.internal_row)
    if bc == "oversampling":  # reported, not an identity
        assert 1e-8 < hill_mandel < 0.1
    else:  # Newton to rtol 1e-13: round-off
        assert hill_mandel < 1e-10


@pytest.mark.parametrize("bc", BCS)
def test_homogeneous_j2_cell_is_the_single_point_law(disk, bc):
    law = J2Plasticity(*MATRIX)
    cell = history_cell_problem(hf.Elasticity(2), disk, {"matrix": law, "inclusion": law}, bc=bc)
    direction = np.array([1.0, -0.4, 0.5])
    gradients = [0.01 * f * direction for f in (0.5, 1.0, 2.0, 3.0, 1.5, 0.0, -2.0, -3.5)]
    points = path(law, [embed(G) for G in gradients])
    assert max(p[2][12] for p in points) > 0.01  # really plastic, and reversed
    for s, (stress, tangent, state) in zip(walk(cell, gradients), points, strict=True):
        # uniform fields: the fluctuation stays zero; round-off of the quadrature sums only
        np.testing.assert_allclose(s.flux, stress[IN_PLANE], atol=1e-10 * np.abs(stress).max())
        np.testing.assert_allclose(
            s.tangent, tangent[IN_PLANE][:, IN_PLANE], atol=1e-10 * np.abs(tangent).max()
        )
        np.testing.assert_allclose(s.plastic_strain, state[12], rtol=1e-10)


def test_elastic_history_cell_is_the_linear_cell_for_every_bc(disk):
    physics = hf.Elasticity(2)
    mats = materials(physics)
    for bc in BCS:
        linear = cell_problem(physics, disk, mats, bc=bc).effective_tensor
        history = history_cell_problem(physics, disk, mats, bc=bc)
        tangent = history.elastic.predictor(virgin(history)[0], 1.0)[0].tangent
        np.testing.assert_allclose(tangent, linear, atol=1e-10 * np.abs(linear).max())


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"bc": "affine"}, "micro.bc"),
        ({"bc": "dirichlet", "oversampling": 3}, "micro.oversampling"),
        ({"bc": "oversampling", "oversampling": 2.0}, "micro.oversampling"),
        ({"bc": "oversampling", "oversampling": 0.5}, "micro.oversampling"),
    ],
)
def test_bad_bc_arguments_name_the_key(disk, kwargs, key):
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        cell_problem(hf.Diffusion(2), disk, materials(hf.Diffusion(2)), **kwargs)


CELL = RUN[RUN.index("[rve]") :]  # the run file's cell part


def test_cell_file_bc_gives_the_apparent_tensor_and_says_so(tmp_path, capsys):
    from mpi4py import MPI

    folder = MPI.COMM_WORLD.bcast(tmp_path, root=0)
    cell = folder / "cell.toml"
    out = folder / "out.json"
    if MPI.COMM_WORLD.rank == 0:
        cell.write_text(CELL + '\n[micro]\nbc = "dirichlet"\n')
    MPI.COMM_WORLD.barrier()
    assert main(["homogenize", str(cell), "--json", str(out)]) == 0
    import json

    data = json.loads(out.read_text())
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1))
    expected = cell_problem(hf.Diffusion(2), rve, materials(hf.Diffusion(2)), bc="dirichlet")
    assert data["bc"] == "dirichlet"
    np.testing.assert_allclose(data["tensor"], expected.effective_tensor, rtol=1e-12)
    assert "micro BC             dirichlet" in capsys.readouterr().out or MPI.COMM_WORLD.rank


@pytest.mark.parametrize("bc", BCS)
def test_homogenize_summary_labels_its_checks_for_the_bc(tmp_path, capsys, bc):
    from mpi4py import MPI

    folder = MPI.COMM_WORLD.bcast(tmp_path, root=0)
    cell = folder / "cell.toml"
    if MPI.COMM_WORLD.rank == 0:
        cell.write_text(CELL + f'\n[micro]\nbc = "{bc}"\n')
    MPI.COMM_WORLD.barrier()
    assert main(["homogenize", str(cell)]) == 0
    out = capsys.readouterr().out
    if MPI.COMM_WORLD.rank:
        return
    # the labels claimed the periodic identities for every BC before
    assert ("fails if w is not periodic" in out) == (bc == "periodic")
    assert ("symmetry error" in out) and (("solve error only" in out) == (bc != "oversampling"))
    if bc == "oversampling":
        assert "not symmetric by design" in out and "not an identity for oversampling" in out


@pytest.mark.parametrize(
    "micro, message",
    [
        ('bc = "affine"', r"micro\.bc must be one of"),
        ("bc = 1", r"micro\.bc"),
        ('bc = "periodic"\noversampling = 3', r"micro\.oversampling applies to bc"),
        ('bc = "oversampling"\noversampling = 4', r"micro\.oversampling must be an odd"),
        ('bc = "oversampling"\noversampling = "big"', r"micro\.oversampling"),
    ],
)
@pytest.mark.parametrize("file", ["run", "cell"])
def test_bad_micro_bc_keys_exit_2_naming_the_key(tmp_path, capsys, micro, message, file):
    import re

    from mpi4py import MPI

    folder = MPI.COMM_WORLD.bcast(tmp_path, root=0)
    path = folder / "input.toml"
    if MPI.COMM_WORLD.rank == 0:
        path.write_text((RUN if file == "run" else CELL) + f"\n[micro]\n{micro}\n")
    MPI.COMM_WORLD.barrier()
    args = (
        ["run", str(path), "-o", str(folder / "out")]
        if file == "run"
        else ["homogenize", str(path)]
    )
    assert main(args) == 2
    assert re.search(message, cli_error(capsys))


def test_run_with_a_micro_bc_uses_its_apparent_tensor(tmp_path):
    import json

    from mpi4py import MPI

    folder = MPI.COMM_WORLD.bcast(tmp_path, root=0)
    path = folder / "run.toml"
    if MPI.COMM_WORLD.rank == 0:
        path.write_text(RUN + '\n[micro]\nbc = "neumann"\n')
    MPI.COMM_WORLD.barrier()
    assert main(["run", str(path), "-o", str(folder / "out")]) == 0
    data = json.loads((folder / "out" / "results.json").read_text())
    rve = hf.build_rve(hf.RVESpec("inclusion", 2, 0.3, 0.1))
    expected = cell_problem(hf.Diffusion(2), rve, materials(hf.Diffusion(2)), bc="neumann")
    assert data["micro_bc"] == "neumann"
    np.testing.assert_allclose(data["effective_tensor"], expected.effective_tensor, rtol=1e-12)

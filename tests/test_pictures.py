"""Pictures that explain themselves (issue 15 point 1): the matplotlib figures, inspected
before they are saved — axis labels, colour bar labels, legends, titles — not pixels."""

import math
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.plots import NARROW, WIDENED, colour_range, figure_size, reference_slope
from hmm_fenics.run.pictures import macro_figure, micro_figure, scalar_figure


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def grid_polygons(nx, ny, width, height):
    """Rectangles of an nx × ny grid over [0, width] × [0, height], ``(nx ny, 4, 2)``."""
    xs, ys = np.linspace(0, width, nx + 1), np.linspace(0, height, ny + 1)
    return np.array(
        [
            [[xs[i], ys[j]], [xs[i + 1], ys[j]], [xs[i + 1], ys[j + 1]], [xs[i], ys[j + 1]]]
            for i in range(nx)
            for j in range(ny)
        ]
    )


def colour_bar_label(figure, axes):
    """The label of the colour bar drawn for ``axes`` (the collection's colorbar)."""
    (collection,) = [c for c in axes.collections if c.colorbar is not None]
    return collection.colorbar.ax.get_ylabel(), collection


def assert_states_range(note, values):
    """The note gives the values' ends, told apart (to 10% of their spread), and the spread."""
    low, high, spread = map(
        float, re.fullmatch(r"values (\S+) – (\S+) \(spread (\S+)%\)", note).groups()
    )
    gap = values.max() - values.min()
    assert low == pytest.approx(values.min(), abs=0.1 * gap)
    assert high == pytest.approx(values.max(), abs=0.1 * gap)
    assert spread == pytest.approx(100 * gap / np.abs(values).max(), rel=0.05)


def test_a_field_with_one_percent_noise_is_not_drawn_as_stripes():
    rng = np.random.default_rng(0)
    values = 2.0 * (1 + 0.005 * rng.uniform(-1, 1, 500))  # ±0.5%: spread ≤ 1% < NARROW
    limits = colour_range(values)
    # the colour range is the mean ± WIDENED·max|v|: the noise covers at most 1%/(2·10%)
    # = 1/20 of the colour bar, i.e. one shade; the title says the actual range
    assert limits.vmax - limits.vmin == pytest.approx(2 * WIDENED * values.max(), rel=1e-12)
    assert (values.max() - values.min()) / (limits.vmax - limits.vmin) < 0.06
    assert_states_range(limits.note, values)
    # a spread of 1e-5 is written with the 7 digits that tell its ends apart
    assert colour_range([1.0, 1.00001]).note == "values 1 – 1.00001 (spread 0.001%)"
    # a field that varies (spread 50%) keeps its own range and says nothing
    wide = np.linspace(1.0, 2.0, 11)
    assert colour_range(wide) == (1.0, 2.0, "")
    # the boundary: a spread of exactly NARROW of the magnitude is not narrow
    assert colour_range([1.0 - NARROW, 1.0]).note == ""
    assert colour_range(np.zeros(3)).note == "all values 0"


def test_figure_size_follows_the_domain_shape():
    _, wide_h = figure_size((4.0, 1.0))
    square_w, square_h = figure_size((1.0, 1.0))
    tall_w, tall_h = figure_size((1.0, 3.0))
    assert wide_h < square_h < tall_h
    assert tall_w < square_w
    # drawing area of the wide domain is 4:1 (width 5 in, height 1.25 in; margins fixed)
    assert wide_h - 1.3 == pytest.approx(5.0 / 4.0)


@pytest.mark.parametrize("rate", [1.0, 2.0, 0.5])
def test_reference_slope_has_the_expected_slope_and_a_legend_entry(rate):
    _, axes = plt.subplots()
    h = np.array([0.5, 0.25, 0.125, 0.0625])
    error = 3.0 * h**rate * (1 + 0.1 * np.array([1, -1, 1, -1]))
    axes.loglog(h, error, "o-", label="error")
    line = reference_slope(axes, h, error, rate, f"O(h^{rate:g})")
    x, y = line.get_data()
    assert math.log(y[1] / y[0]) / math.log(x[1] / x[0]) == pytest.approx(rate, rel=1e-12)
    assert (x.min(), x.max()) == (h.min(), h.max())
    anchor = math.exp(np.log(h).mean())  # at the data's geometric mean, 0.6 × the data
    on_line = y[0] * (anchor / x[0]) ** rate
    assert on_line < np.interp(np.log(anchor), np.log(h[::-1]), error[::-1])
    axes.legend()
    assert f"O(h^{rate:g})" in [t.get_text() for t in axes.get_legend().get_texts()]


def test_macro_figure_names_fields_axes_and_a_narrow_range():
    polygons = grid_polygons(6, 2, 3.0, 1.0)
    x = polygons[:, :, 0].mean(axis=1)
    temperature = 1 - x / 3
    flux = np.full(len(polygons), 0.5) * (1 + 1e-4 * np.sin(7 * x))  # uniform up to noise
    figure = macro_figure(polygons, temperature, flux, hf.Diffusion(2), "temperature")
    panels = [a for a in figure.axes if a.get_xlabel()]
    assert len(panels) == 2
    for axes in panels:
        assert axes.get_xlabel() == "x (mesh units)"
        assert axes.get_ylabel() == "y (mesh units)"
        assert axes.get_xlim() == (0.0, 3.0) and axes.get_ylim() == (0.0, 1.0)  # no margins
    label, collection = colour_bar_label(figure, panels[0])
    assert label == "temperature"
    assert panels[0].get_title() == "temperature, cell averages"
    label, collection = colour_bar_label(figure, panels[1])
    assert label == "|flux|, cell average"
    assert_states_range(panels[1].get_title().splitlines()[1], flux)
    assert collection.get_clim() == pytest.approx((0.5 - 0.05, 0.5 + 0.05), abs=1e-4)
    # a 3:1 strip: the two pictures are stacked, so each keeps its width
    assert panels[0].get_position().y0 > panels[1].get_position().y1


def test_macro_figure_of_elasticity_names_the_von_mises_stress():
    polygons = grid_polygons(2, 2, 1.0, 1.0)
    figure = macro_figure(
        polygons, np.arange(4.0), np.arange(4.0), hf.Elasticity(2), "|displacement|"
    )
    panels = [a for a in figure.axes if a.get_xlabel()]
    assert colour_bar_label(figure, panels[1])[0] == "von Mises stress, cell average"
    assert panels[0].get_position().x1 < panels[1].get_position().x0  # side by side


@pytest.mark.parametrize(
    "physics, gradient, text",
    [
        (hf.Diffusion(2), [-0.333, 0.0], "macro gradient ∇u = (-0.333, 0)"),
        (hf.Elasticity(2), [0.01, -0.0, 0.002], "macro strain ε = (0.01, 0, 0.002) (Mandel)"),
    ],
)
def test_micro_figure_shows_the_macro_gradient_and_cell_units(physics, gradient, text):
    polygons = grid_polygons(4, 4, 1.0, 1.0)
    values = np.linspace(0.1, 1.0, len(polygons))
    figure = micro_figure(polygons, values, physics, "RVE at x = (0.5, 0.5)", gradient)
    (axes,) = [a for a in figure.axes if a.get_xlabel()]
    assert axes.get_title().splitlines()[:2] == ["RVE at x = (0.5, 0.5)", text]
    assert axes.get_xlabel() == "y₁ (cell units)" and axes.get_ylabel() == "y₂ (cell units)"
    name = "von Mises stress (in-plane)" if isinstance(physics, hf.Elasticity) else "|flux|"
    assert colour_bar_label(figure, axes)[0] == f"{name}, cell average"
    assert "-0 " not in axes.get_title() and "-0," not in axes.get_title()


def test_scalar_figure_labels_its_colour_bar_and_scale():
    polygons = grid_polygons(4, 2, 2.0, 1.0)
    values = np.array([0, 0, 0, 0, 0.1, 0.2, 0.0, 0.4])
    figure = scalar_figure(polygons, values, "plastic zone", "p̄ (RVE average)", True)
    (axes,) = [a for a in figure.axes if a.get_xlabel()]
    assert axes.get_xlabel() == "x (mesh units)"
    assert colour_bar_label(figure, axes)[0] == "p̄ (RVE average), square-root scale"


def test_rve_picture_has_a_phase_legend_the_fraction_and_cell_units(tmp_path):
    import meshio

    from hmm_fenics.io import preview_rve, rve_figure

    spec = hf.RVESpec("square-array", 2, 0.2, 0.05, cell=(2.0, 1.0), n=2)
    preview = preview_rve(spec, tmp_path / "cell.msh")
    # a polygonal circle holds less than the disk: the generator fits it to 2%
    assert preview.fraction == pytest.approx(0.2, rel=0.02)
    assert preview.inclusions == 4 and preview.target == 0.2
    assert sum(preview.phases.values()) == pytest.approx(1.0, abs=1e-12)  # the box is filled
    mesh = meshio.read(tmp_path / "cell.msh")
    triangles = [c.data for c in mesh.cells if c.type == "triangle"]
    tags = [
        d
        for c, d in zip(mesh.cells, mesh.cell_data["gmsh:physical"], strict=True)
        if c.type == "triangle"
    ]
    figure = rve_figure(
        mesh.points, np.concatenate(triangles), np.concatenate(tags), spec, preview,
        {1: "matrix", 2: "inclusion"},
    )  # fmt: skip
    (axes,) = figure.axes
    assert axes.get_xlabel() == "y₁ (cell units)" and axes.get_ylabel() == "y₂ (cell units)"
    entries = [t.get_text() for t in axes.get_legend().get_texts()]
    assert entries == [
        f"matrix: {preview.phases['matrix']:.3f}",
        f"inclusion: {preview.phases['inclusion']:.3f}",
    ]
    assert axes.get_legend().get_title().get_text() == "phase: area fraction"
    title = axes.get_title()
    assert f"{preview.cells} triangles, 4 inclusion(s)" in title
    assert f"inclusion fraction {preview.fraction:.4f} achieved (target 0.2)" in title
    assert axes.get_xlim() == (0.0, 2.0) and axes.get_ylim() == (0.0, 1.0)
    width, height = figure.get_size_inches()
    assert width > 1.5 * height  # a 2:1 cell in a wide figure


def test_rve_picture_of_a_void_cell_has_a_void_entry(tmp_path):
    import meshio

    from hmm_fenics.io import preview_rve, rve_figure

    spec = hf.RVESpec("inclusion", 2, 0.2, 0.1, void=True)
    preview = preview_rve(spec, tmp_path / "cell.msh")
    assert preview.fraction == pytest.approx(0.2, rel=0.02)
    assert list(preview.phases) == ["matrix"]
    mesh = meshio.read(tmp_path / "cell.msh")
    (block,) = [i for i, c in enumerate(mesh.cells) if c.type == "triangle"]
    figure = rve_figure(
        mesh.points, mesh.cells[block].data, mesh.cell_data["gmsh:physical"][block], spec,
        preview, {1: "matrix"},
    )  # fmt: skip
    entries = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert entries == [f"matrix: {1 - preview.fraction:.3f}", f"void: {preview.fraction:.3f}"]
    assert "void fraction" in figure.axes[0].get_title()


def test_cell_measures_of_quadrilaterals_and_hexahedra():
    from hmm_fenics.io import _cell_measures

    # a skewed quadrilateral (area by the shoelace formula) and a box-shaped hexahedron
    quad = np.array([[0.0, 0.0], [2.0, 0.0], [2.5, 1.0], [0.5, 1.0]])
    assert _cell_measures(quad, np.array([[0, 1, 2, 3]]), "quad")[0] == pytest.approx(2.0)
    box = np.array(
        [[0, 0, 0], [2, 0, 0], [2, 3, 0], [0, 3, 0], [0, 0, 5], [2, 0, 5], [2, 3, 5], [0, 3, 5]],
        dtype=float,
    )
    assert _cell_measures(box, np.arange(8)[None], "hexahedron")[0] == pytest.approx(30.0)
    tet = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    assert _cell_measures(tet, np.arange(4)[None], "tetra")[0] == pytest.approx(1 / 6)

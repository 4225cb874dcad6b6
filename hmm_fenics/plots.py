"""Picture conventions shared by every PNG: colour ranges, figure shapes, reference slopes.

matplotlib only (no DOLFINx), imported lazily by the functions that draw. Every picture of
the package names its axes (with units, or "cell units" for an RVE), names the quantity of
each colour bar, and follows three rules kept here:

- a colour range that would turn a nearly constant field into stripes is widened
  (``colour_range``), and the title then says the values' range;
- a figure takes the shape of the domain it shows (``figure_size``), so a long strip is
  not drawn inside a square of white;
- a log–log error plot shows the expected rate as a reference slope (``reference_slope``).
"""

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

NARROW = 0.02
"""A field whose spread (max − min) is below this fraction of its magnitude max|value| is
"narrow": drawn on the full colour map, its ±1% round-off or discretization noise would look
like structure."""
WIDENED = 0.1
"""A narrow field's colour range is its mean ± this fraction of its magnitude: a 2% spread
then covers a tenth of the colour bar."""


class ColourRange(NamedTuple):
    """The colour limits of a field and what the title should say about them.

    Attributes:
        vmin: Lower colour limit.
        vmax: Upper colour limit.
        note: Empty, or (for a narrow field) the values' range for the title.
    """

    vmin: float
    vmax: float
    note: str


def colour_range(values: npt.ArrayLike) -> ColourRange:
    """The colour limits of ``values``: their range, or a wider one around a narrow field.

    Args:
        values: The values coloured, any shape (non-finite ones are ignored).

    Returns:
        ``(vmin, vmax, note)``: for a spread below ``NARROW`` × max|value| the limits are
        mean ± ``WIDENED`` × max|value| and ``note`` says the actual range, e.g.
        ``"values 0.9912 – 1.008 (spread 1.7%)"``, with as many digits as the ends need
        to differ.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return ColourRange(0.0, 1.0, "no values")
    low, high = float(data.min()), float(data.max())
    scale = max(abs(low), abs(high))
    if scale == 0.0:
        return ColourRange(-1.0, 1.0, "all values 0")
    spread = (high - low) / scale
    if spread >= NARROW:
        return ColourRange(low, high, "")
    middle = 0.5 * (low + high)
    # enough digits that the two ends differ (a spread of 1e-4 needs 6)
    digits = 4 if spread == 0 else min(12, max(4, math.ceil(-math.log10(spread)) + 2))
    note = f"values {low:.{digits}g} – {high:.{digits}g} (spread {100 * spread:.2g}%)"
    return ColourRange(middle - WIDENED * scale, middle + WIDENED * scale, note)


def figure_size(
    extent: Sequence[float], panels: int = 1, width: float = 5.0, colour_bar: bool = True
) -> tuple[float, float]:
    """Figure inches for ``panels`` side-by-side pictures of a domain of ``extent`` (w, h).

    The height follows the domain's aspect ratio (limited to [1/4, 4], beyond which the
    picture would be a line) plus room for a two-line title and the axis labels.

    Args:
        extent: Width and height of the domain (any units).
        panels: Pictures side by side.
        width: Inches of one picture's drawing area.
        colour_bar: Whether each picture has a colour bar on its right.
    """
    aspect = float(np.clip(extent[1] / extent[0], 0.25, 4.0)) if extent[0] > 0 else 1.0
    height = min(width * aspect, 8.0)
    drawing = height / aspect
    return (panels * (drawing + (1.6 if colour_bar else 0.6)) + 0.4, height + 1.3)


def reference_slope(
    axes: Any,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    rate: float,
    label: str | None = None,
    below: float = 0.6,
) -> Any:
    """Draw the line y ∝ x^rate under the data of a log–log plot, with a legend label.

    The line passes ``below`` × the data's value at the data's geometric-mean abscissa,
    so it sits just under the points it is compared with.

    Args:
        axes: A matplotlib ``Axes`` on log–log scales.
        x: The data's abscissas (positive).
        y: The data's values (positive).
        rate: The expected slope.
        label: The legend label (default ``"O(x^rate)"`` written as "slope rate").
        below: Factor between the data and the line at the anchor point.

    Returns:
        The ``Line2D`` drawn.
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    keep = (xs > 0) & (ys > 0) & np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if xs.size == 0:
        raise ValueError("reference_slope needs positive data points on a log–log plot.")
    anchor = math.exp(float(np.mean(np.log(xs))))
    at_anchor = math.exp(float(np.interp(math.log(anchor), *_sorted_logs(xs, ys))))
    line_x = np.array([xs.min(), xs.max()])
    line_y = below * at_anchor * (line_x / anchor) ** rate
    text = label if label is not None else f"slope {rate:g} (reference)"
    (line,) = axes.loglog(line_x, line_y, ":", color="0.35", linewidth=1.2, label=text)
    return line


def _sorted_logs(
    xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The logarithms: x ascending, y in the same order (for ``np.interp``)."""
    order = np.argsort(xs)
    return np.log(xs[order]), np.log(ys[order])

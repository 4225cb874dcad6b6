"""The 1D micro window: a two-point boundary-value problem on an interval, solved directly.

On the window [x − δ/2, x + δ/2] with coefficient a, the micro field u = G y + w solves
(a u')' = 0. The apparent coefficient A = ⟨a u'⟩ / G is the harmonic mean of a over the
window for affine Dirichlet data (w = 0 at both ends): a u' is constant, so
u' = c / a and ∫ u' = G δ give A = δ / ∫ 1/a. A periodic w pinned at one end vanishes at
the other as well, so in 1D the periodic and the Dirichlet windows are the same problem:
both return the harmonic mean over the window, which equals the homogenized coefficient
(the harmonic mean over a period) when δ/ε is an integer, and differs from it by O(ε/δ)
otherwise (the resonance error).

Assembled with DOLFINx on ``MPI.COMM_SELF`` (the cell problems of ``micro.core`` are 2D/3D);
the Lagrange stiffness K with a sampled at its quadrature points, the affine lift U = y, the
interior selection P and, as in the core, A = (Uᵀ K U − Bᵀ X)/δ with Pᵀ K P X = B = −Pᵀ K U.
"""

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.micro.sparse import to_csr
from hmm_fenics.rve.medium import (
    CoefficientMedium,
    quadrature_space,
    sample,
    window_mesh,
    window_origin,
)

BCS_1D = ("dirichlet", "periodic")


class IntervalWindow(NamedTuple):
    """The answer of a 1D window.

    Attributes:
        coefficient: The apparent coefficient A (flux per unit gradient).
        flux_mean: ⟨a u'⟩ averaged over the window by quadrature, for G = 1 (equals A up to
            round-off: a check of the solve).
        n_cells: Elements of the window mesh.
    """

    coefficient: float
    flux_mean: float
    n_cells: int


def interval_window(
    medium: CoefficientMedium,
    center: float,
    delta: float,
    cells: int,
    bc: str = "dirichlet",
    degree: int = 1,
    quadrature_degree: int | None = None,
) -> IntervalWindow:
    """Apparent coefficient of the 1D window of size ``delta`` centred at ``center``.

    Args:
        medium: a(x), called with positions of shape ``(1, n)``.
        center: Macro position of the window centre.
        delta: Window length δ.
        cells: Elements of the window mesh.
        bc: ``dirichlet`` (w = 0 at both ends) or ``periodic`` (the same in 1D, see above).
        degree: Lagrange degree of the micro field.
        quadrature_degree: Points of the coefficient (default 2·degree + 2).

    Raises:
        InputError: an unknown ``bc``, a bad size, or a medium that returns bad values.
    """
    import ufl
    from dolfinx import fem
    from dolfinx.fem import petsc as fem_petsc

    if bc not in BCS_1D:
        raise InputError(f"micro.bc of a 1D window must be one of {list(BCS_1D)}, got {bc!r}.")
    if degree not in (1, 2, 3):
        raise InputError(f"physics.degree must be 1, 2 or 3, got {degree}.")
    mesh = window_mesh(1, delta, cells)
    space = quadrature_space(mesh, quadrature_degree or 2 * degree + 2)
    a = sample(medium, space, window_origin(np.array([center]), delta, 1))
    V = fem.functionspace(mesh, ("Lagrange", degree))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    K = fem_petsc.assemble_matrix(fem.form(a * u.dx(0) * v.dx(0) * ufl.dx))
    K.assemble()
    Kc = to_csr(K)
    K.destroy()
    n = V.dofmap.index_map.size_local
    y = V.tabulate_dof_coordinates()[:n, 0]
    ends = np.isclose(y, 0.0, atol=1e-12 * delta) | np.isclose(y, delta, atol=1e-12 * delta)
    interior = np.flatnonzero(~ends)  # both BCs: w = 0 at the ends (see the module note)
    KU = Kc @ y
    B = -KU[interior]
    X = _solve_interior(Kc, interior, B)
    coefficient = float((y @ KU - B @ X) / delta)
    w = np.zeros(n)
    w[interior] = X
    field = fem.Function(V)
    field.x.array[:] = y + w
    flux_mean = float(np.real(fem.assemble_scalar(fem.form(a * field.dx(0) * ufl.dx)))) / delta
    return IntervalWindow(coefficient, flux_mean, cells)


def _solve_interior(K: Any, interior: npt.NDArray[np.int64], rhs: npt.NDArray[np.float64]) -> Any:
    """Solve the interior block K[interior, interior] x = rhs (sparse direct)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    full = sp.csr_matrix((K.data, K.indices, K.indptr), shape=K.shape)
    block = full[interior][:, interior].tocsc()
    return np.asarray(spla.spsolve(block, rhs), dtype=np.float64)

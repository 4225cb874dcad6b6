"""Restriction: explicit volume averages of micro fields, and the checks of a cell solution.

``CellProblem`` returns averages through an algebraic identity (no extra assembly); here the
same quantities are integrated from the actual micro field u = G·(y − O) + w.

What each check can detect:

- Hill–Mandel ⟨σ:ε⟩ = ⟨σ⟩:G and the symmetry of the flux-averaged tensor are identities of the
  Galerkin system: ⟨σ:ε(w)⟩ = a(u, w)/|Y| vanishes because w lies in the range of the
  periodic prolongation P, whatever P is. They measure round-off (and the solve error) only;
  a wrong periodic map passes them.
- ⟨ε⟩ = G over the whole box (with the pore-boundary term for porous cells) and the
  agreement of w on matched boundary nodes hold only if w is really periodic: they fail for
  a wrong pairing of the faces.
- The integrated flux against the algebraic one checks the restriction formula.
"""

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import PeriodicityError
from hmm_fenics.micro.boundary import HOLE, pore_facets
from hmm_fenics.micro.cell_problem import CellProblem


class CellAverages(NamedTuple):
    """Volume averages over the whole cell Y of one micro solution.

    Attributes:
        gradient: ⟨ε⟩ (or ⟨∇u⟩) over the box Y, shape ``(n_components,)``, Mandel for
            elasticity; in a porous cell it includes the pore-boundary term (see
            :class:`VolumeAverager`).
        flux: ⟨σ⟩ (or ⟨q⟩), same layout (zero in the pores).
        energy: ⟨σ : ε⟩ (or ⟨q · ∇u⟩), a scalar.
    """

    gradient: npt.NDArray[np.float64]
    flux: npt.NDArray[np.float64]
    energy: float

    def hill_mandel_residual(self, macro: npt.NDArray[np.float64]) -> float:
        """|⟨σ:ε⟩ − ⟨σ⟩:G| / |⟨σ:ε⟩| for the macro gradient G.

        An identity of the Galerkin system for any periodic prolongation (round-off only): it
        cannot detect a wrong periodic map, :attr:`gradient` and :func:`periodicity_error` can.
        """
        return abs(self.energy - float(self.flux @ macro)) / abs(self.energy)


class VolumeAverager:
    """Integrates ⟨ε⟩, ⟨σ⟩ and ⟨σ:ε⟩ of a cell's micro field; one compiled form for all three.

    The integrand vector [Mandel(σ), Mandel(ε(w)), σ:ε] is tested against piecewise constants,
    so one assembly gives every average. The average strain over the whole box is
    ⟨ε⟩ = G + ⟨ε(w)⟩_Y, and for a porous cell (solid S, pores V, pore boundary Γ with normal
    n_V out of the pores) the divergence theorem gives

        |Y| ⟨ε(w)⟩_Y = ∫_S ε(w) dx + ∫_Γ sym(w ⊗ n_V) ds,

    which is what is computed: the pore integral is replaced by the pore-boundary term. It
    equals ∫ sym(w ⊗ n) over the solid parts of the box faces,
    which cancel in pairs when w is periodic and not when the faces are paired wrongly. The
    affine part contributes G by construction (also where pores cut the faces).
    """

    def __init__(self, cell: CellProblem) -> None:
        import basix.ufl
        import ufl
        from dolfinx import fem

        physics = cell.physics
        mesh = cell.rve.mesh
        n = physics.n_components
        self.cell = cell
        self.G = fem.Constant(mesh, np.zeros(n))
        self.w = fem.Function(cell.V)
        grad_w = physics.gradient(self.w)
        eps = physics.from_mandel(self.G) + grad_w
        element = basix.ufl.element("DG", mesh.basix_cell(), 0, shape=(2 * n + 1,))
        q = ufl.TestFunction(fem.functionspace(mesh, element))
        terms = []
        for tag, law in cell.laws.items():
            sigma = law(eps)
            integrand = ufl.as_vector(
                [*physics.to_mandel(sigma), *physics.to_mandel(grad_w), ufl.inner(sigma, eps)]
            )
            terms.append(ufl.inner(integrand, q) * cell.dx(tag))
        holes = pore_boundary(cell)
        if holes is not None:
            ds = ufl.Measure("ds", domain=mesh, subdomain_data=holes)
            n_out = -ufl.FacetNormal(mesh)  # out of the pores: into the solid
            jump = ufl.sym(ufl.outer(self.w, n_out)) if physics.value_shape else self.w * n_out
            zeros = [ufl.as_ufl(0.0)] * n
            boundary = ufl.as_vector([*zeros, *physics.to_mandel(jump), ufl.as_ufl(0.0)])
            terms.append(ufl.inner(boundary, q) * ds(HOLE))
        self.form = fem.form(sum(terms[1:], start=terms[0]))
        self._n = n

    def __call__(self, gradient: npt.NDArray[np.float64]) -> CellAverages:
        """Averages of the micro solution for the macro gradient ``gradient`` (shape ``(n,)``)."""
        G = np.asarray(gradient, dtype=np.float64).reshape(self._n)
        self.w.x.array[:] = self.cell.fluctuation(G).x.array
        return self.average(G)

    def average(self, gradient: npt.NDArray[np.float64]) -> CellAverages:
        """Averages of u = G·(y − O) + w for the fluctuation currently in ``self.w``."""
        from dolfinx import fem

        G = np.asarray(gradient, dtype=np.float64).reshape(self._n)
        self.G.value[:] = G
        per_cell = fem.assemble_vector(self.form).array.reshape(-1, 2 * self._n + 1)
        total = per_cell.sum(axis=0) / self.cell.rve.volume
        return CellAverages(G + total[self._n : 2 * self._n], total[: self._n], float(total[-1]))


def pore_boundary(cell: CellProblem) -> Any:
    """Facet tags (value 1) of the pore boundaries: exterior facets not on a box face.

    Returns:
        ``MeshTags`` of the pore boundary facets, or None for a cell without pores.
    """
    return pore_facets(cell.rve.mesh, cell.rve.lower, cell.rve.upper)


class PeriodicityProbe:
    """Compares a field on the max faces with its value at the image points on the min faces.

    Independent of the periodic map P: the image y − L_d e_d of every dof y on a max face
    x_d = U_d is located in the mesh geometrically (bounding-box tree) and the DOLFINx
    ``Function`` evaluated there.
    """

    def __init__(self, cell: CellProblem) -> None:
        from dolfinx import geometry

        V, rve = cell.V, cell.rve
        mesh, dim = rve.mesh, rve.mesh.geometry.dim
        n_nodes = V.dofmap.index_map.size_local
        x = V.tabulate_dof_coordinates()[:n_nodes]
        size = rve.upper - rve.lower
        tol = 1e-8 * float(np.max(size))
        nodes, images = [], []
        for d in range(dim):
            on_max = np.flatnonzero(np.abs(x[:, d] - rve.upper[d]) < tol)
            target = x[on_max].copy()
            target[:, d] = rve.lower[d]  # the image is on the min face
            nodes.append(on_max)
            images.append(target)
        self.nodes = np.concatenate(nodes)
        self.points = np.ascontiguousarray(np.concatenate(images), dtype=np.float64)
        # the images lie on the min faces: only the cells with a node there can hold one
        on_min_face = (np.abs(mesh.geometry.x[:, :dim] - rve.lower[:dim]) < tol).any(axis=1)
        near = np.flatnonzero(on_min_face[mesh.geometry.dofmaps[0]].any(axis=1)).astype(np.int32)
        tree = geometry.bb_tree(mesh, dim, entities=near, padding=tol)
        candidates = geometry.compute_collisions_points(tree, self.points)
        colliding = geometry.compute_colliding_cells(mesh, candidates, self.points)
        counts = np.diff(colliding.offsets)
        cells = np.full(len(self.points), -1, dtype=np.int32)
        cells[counts > 0] = colliding.array[colliding.offsets[:-1][counts > 0]]
        missed = np.flatnonzero(counts == 0)  # on the solid's edge up to round-off, or outside
        if missed.size:
            midpoints = geometry.create_midpoint_tree(mesh, dim, near)
            closest = geometry.compute_closest_entity(tree, midpoints, mesh, self.points[missed])
            cells[missed] = closest
            x = mesh.geometry.x
            for p, c in zip(missed, closest, strict=True):
                corners = x[mesh.geometry.dofmaps[0][c]]
                gap = float(np.linalg.norm(geometry.compute_distance_gjk(corners, self.points[p])))
                if gap > tol:
                    raise PeriodicityError(
                        f"the periodic image {self.points[p, :dim]} of a max-face dof lies outside "
                        f"the RVE mesh (distance {gap:.3g}): the faces do not match."
                    )
        self.cells = cells
        self._bs = V.dofmap.index_map_bs

    def __call__(self, w: Any) -> float:
        """The largest |w(y) − w(image of y)| over the max-face dofs, relative to max |w|."""
        values = w.x.array.reshape(-1, self._bs)[self.nodes]
        images = w.eval(self.points, self.cells).reshape(values.shape)
        scale = max(float(np.abs(w.x.array).max()), np.finfo(float).tiny)
        return float(np.abs(values - images).max(initial=0.0)) / scale


class AverageChecks(NamedTuple):
    """How well the integrated fields agree with theory, worst case over the gradients.

    Attributes:
        hill_mandel_residual: max |⟨σ:ε⟩ − ⟨σ⟩:G| / |⟨σ:ε⟩|; an identity of the Galerkin
            system (round-off for any periodic map).
        gradient_error: max ‖⟨ε⟩ − G‖ / ‖G‖ over the whole box, with the pore-boundary term
            in a porous cell; zero only if the fluctuations are periodic.
        flux_mismatch: max ‖⟨σ⟩_integrated − ⟨σ⟩_algebraic‖ / ‖⟨σ⟩‖.
        periodicity_error: max |w(y) − w(y − L_d e_d)| / max |w| over the dofs y on the max
            faces, evaluated from the DOLFINx function (not from P).
    """

    hill_mandel_residual: float
    gradient_error: float
    flux_mismatch: float
    periodicity_error: float


def check_averages(
    cell: CellProblem, gradients: npt.NDArray[np.float64] | None = None
) -> AverageChecks:
    """Integrate the micro fields of ``gradients`` (default: the unit gradients) and compare.

    Args:
        cell: A factored cell problem.
        gradients: Macro gradients, shape ``(n_points, n_components)``.
    """
    averager = VolumeAverager(cell)
    probe = PeriodicityProbe(cell)
    cases = np.eye(cell.physics.n_components) if gradients is None else np.atleast_2d(gradients)
    hill_mandel = gradient_error = flux_mismatch = periodicity = 0.0
    for G in cases:
        avg = averager(G)
        algebraic = cell.flux_tensor @ G  # ⟨C⟩G − BᵀXG/|Y| from the unit solutions
        scale = max(float(np.linalg.norm(avg.flux)), np.finfo(float).tiny)
        hill_mandel = max(hill_mandel, avg.hill_mandel_residual(G))
        gradient_error = max(
            gradient_error, float(np.linalg.norm(avg.gradient - G) / np.linalg.norm(G))
        )
        flux_mismatch = max(flux_mismatch, float(np.linalg.norm(avg.flux - algebraic)) / scale)
        periodicity = max(periodicity, probe(averager.w))
    return AverageChecks(hill_mandel, gradient_error, flux_mismatch, periodicity)


def volume_average(cell: CellProblem, gradient: npt.NDArray[np.float64]) -> CellAverages:
    """⟨ε⟩, ⟨σ⟩ and ⟨σ:ε⟩ of the micro solution for one macro gradient, integrated."""
    return VolumeAverager(cell)(gradient)

# petsc4py's stubs, and DOLFINx's singledispatch in-place assemblers (assemble_vector(b, L),
# assemble_matrix(A, a)), are stricter than what runs.
# mypy: disable-error-code="arg-type, misc, operator, index"
"""The macro problem: forms written against quadrature flux/tangent, BCs, one Newton step.

Residual R(u; v) = ∫ σ_Q : B(v) − ∫ f · v − Σ_N ∫ t · v, with σ_Q the flux stored at the
quadrature points and B(v) the Mandel vector of the gradient/strain of v; the Jacobian is
∫ (C_Q B(du)) · B(v). The problem has no material law: the micro solver fills σ_Q, C_Q.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from petsc4py import PETSc

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.macro.mesh import MacroMesh
from hmm_fenics.macro.quadrature import QuadratureFields
from hmm_fenics.petsc_options import prefixed_options
from hmm_fenics.physics import Physics

BoundaryValue = float | Sequence[float | None]
OPTIONS_PREFIX = "hmm_macro_"


class MacroProblem:
    """Macro diffusion or elasticity on a ``MacroMesh``, Newton-ready.

    Args:
        mesh: The macro mesh and its named boundaries.
        physics: ``Diffusion`` or ``Elasticity`` of the mesh dimension.
        dirichlet: Boundary name → prescribed value: a number (diffusion), or one entry per
            displacement component with ``None`` for a free component (elasticity).
        neumann: Boundary name → prescribed flux (number) or traction (vector).
        source: Body source (number) or body force (vector).
        quadrature_degree: Degree of the quadrature rule where the micro solver is asked.
        degree: Lagrange degree of the macro field.
    """

    def __init__(
        self,
        mesh: MacroMesh,
        physics: Physics,
        dirichlet: Mapping[str, BoundaryValue],
        neumann: Mapping[str, BoundaryValue] | None = None,
        source: BoundaryValue | None = None,
        quadrature_degree: int = 2,
        degree: int = 1,
    ) -> None:
        import ufl
        from dolfinx import fem

        neumann = dict(neumann or {})
        unknown = sorted((set(dirichlet) | set(neumann)) - set(mesh.boundaries))
        if unknown:
            raise InputError(
                f"boundary name(s) {unknown} are not in the macro mesh, which has {sorted(mesh.boundaries)}."
            )
        if physics.dim != mesh.mesh.geometry.dim:
            raise InputError(
                f"physics is {physics.dim}D but the macro mesh is {mesh.mesh.geometry.dim}D."
            )
        if not dirichlet:
            raise InputError(
                "the macro problem needs at least one Dirichlet boundary (else it is singular)."
            )
        self.mesh, self.physics = mesh, physics
        msh = mesh.mesh
        self.V = fem.functionspace(msh, ("Lagrange", degree, physics.value_shape))
        self.u = fem.Function(self.V, name="u")
        self.quadrature = QuadratureFields(msh, physics, quadrature_degree)
        q = self.quadrature
        v, du = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)

        def B(w: Any) -> Any:
            return physics.to_mandel(physics.gradient(w))

        ds = ufl.Measure("ds", domain=msh, subdomain_data=mesh.facet_tags)
        residual = ufl.inner(q.flux, B(v)) * q.dx
        if source is not None:
            residual -= ufl.inner(self._constant(source), v) * q.dx
        for name, value in neumann.items():
            residual -= ufl.inner(self._constant(value), v) * ds(mesh.boundaries[name])
        self.residual_form = fem.form(residual)
        self.jacobian_form = fem.form(ufl.inner(ufl.dot(q.tangent, B(du)), B(v)) * q.dx)
        self.bcs = self._dirichlet(dirichlet)
        self._gradient = fem.Expression(B(self.u), np.asarray(q.points_ref))
        self._set_up_solver()

    def _constant(self, value: BoundaryValue) -> Any:
        from dolfinx import fem

        array = np.asarray(value, dtype=np.float64)
        if array.shape != self.physics.value_shape:
            raise InputError(
                f"a {self.physics.name} source or boundary flux needs shape {self.physics.value_shape}, got {value!r}."
            )
        return fem.Constant(self.mesh.mesh, array)

    def _dirichlet(self, dirichlet: Mapping[str, BoundaryValue]) -> list[Any]:
        from dolfinx import fem

        tags = self.mesh.facet_tags
        fdim = self.mesh.mesh.topology.dim - 1
        bcs = []
        for name, value in dirichlet.items():
            facets = tags.find(self.mesh.boundaries[name])
            if not self.physics.value_shape:
                dofs = fem.locate_dofs_topological(self.V, fdim, facets)
                bcs.append(fem.dirichletbc(float(value), dofs, self.V))  # type: ignore[arg-type]
                continue
            components = list(value) if isinstance(value, Sequence) else None
            if components is None or len(components) != self.physics.dim:
                raise InputError(
                    f"dirichlet.{name}: give {self.physics.dim} components (None for free), got {value!r}."
                )
            for c, g in enumerate(components):
                if g is None:
                    continue
                Vc = self.V.sub(c)
                dofs = fem.locate_dofs_topological(Vc, fdim, facets)
                bcs.append(fem.dirichletbc(float(g), dofs, Vc))
        return bcs

    def _set_up_solver(self) -> None:
        from dolfinx.fem import petsc as fem_petsc

        self.A = fem_petsc.create_matrix(self.jacobian_form)
        self.b = fem_petsc.create_vector(self.V)
        self.du = self.b.duplicate()
        self.ksp = PETSc.KSP().create(self.mesh.mesh.comm)
        self.ksp.setOperators(self.A)
        self.ksp.setOptionsPrefix(OPTIONS_PREFIX)
        defaults = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}
        with prefixed_options(OPTIONS_PREFIX, defaults):
            self.ksp.setFromOptions()

    def apply_dirichlet(self) -> None:
        """Put the Dirichlet values into u (before the first Newton step)."""
        for bc in self.bcs:
            bc.set(self.u.x.array)
        self.u.x.scatter_forward()

    def gradients(self) -> npt.NDArray[np.float64]:
        """Mandel gradients/strains of u at the owned quadrature points, ``(n_points, n)``."""
        return self.quadrature.evaluate(self._gradient)

    def residual_norm(self) -> float:
        """‖R(u)‖ with the Dirichlet rows removed, for the stored flux."""
        self._assemble_residual()
        return float(self.b.norm())

    def _assemble_residual(self) -> None:
        from dolfinx.fem import petsc as fem_petsc

        with self.b.localForm() as local:
            local.set(0.0)
        fem_petsc.assemble_vector(self.b, self.residual_form)
        fem_petsc.apply_lifting(
            self.b, [self.jacobian_form], [self.bcs], x0=[self.u.x.petsc_vec], alpha=-1.0
        )
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fem_petsc.set_bc(self.b, self.bcs, self.u.x.petsc_vec, -1.0)

    def newton_step(self) -> float:
        """Solve J du = −R for the stored flux and tangent and update u; returns ‖du‖.

        Uses the residual of the last :meth:`residual_norm` call (same u, same flux).
        """
        from dolfinx.fem import petsc as fem_petsc

        self.A.zeroEntries()
        fem_petsc.assemble_matrix(self.A, self.jacobian_form, bcs=self.bcs)
        self.A.assemble()
        self.b.scale(-1.0)
        self.ksp.solve(self.b, self.du)
        if self.ksp.getConvergedReason() < 0:
            raise RuntimeError(
                f"the macro linear solver failed (reason {self.ksp.getConvergedReason()})."
            )
        self.u.x.petsc_vec.axpy(1.0, self.du)
        self.u.x.scatter_forward()
        return float(self.du.norm())

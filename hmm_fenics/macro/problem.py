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

from mpi4py import MPI
from petsc4py import PETSc

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.macro.dirichlet import BoundaryValue, dirichlet_bcs
from hmm_fenics.macro.mesh import MacroMesh
from hmm_fenics.macro.quadrature import QuadratureFields
from hmm_fenics.petsc_options import merge_solver_options, prefixed_options
from hmm_fenics.physics import Physics

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
        petsc_options: Options of the ``hmm_macro_`` linear solver (over MUMPS LU).

    All prescribed values (Dirichlet, Neumann, source) are scaled by a load factor, 1 at
    first; :meth:`set_load` changes it for incremental loading.
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
        petsc_options: Mapping[str, Any] | None = None,
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
        self.dirichlet = dict(dirichlet)
        self._loads: list[tuple[Any, npt.NDArray[np.float64]]] = []  # (Constant, value at 1)
        msh = mesh.mesh
        self.V = fem.functionspace(msh, ("Lagrange", degree, physics.value_shape))
        self.u = fem.Function(self.V, name="u")
        self.quadrature = QuadratureFields(msh, physics, quadrature_degree)
        q = self.quadrature
        v, du = ufl.TestFunction(self.V), ufl.TrialFunction(self.V)

        def B(w: Any) -> Any:
            return physics.to_mandel(physics.gradient(w))

        ds = ufl.Measure("ds", domain=msh, subdomain_data=mesh.facet_tags)
        loads = []  # the Neumann and source terms, which follow the load factor
        if source is not None:
            loads.append(ufl.inner(self._constant(source), v) * q.dx)
        for name, value in neumann.items():
            loads.append(ufl.inner(self._constant(value), v) * ds(mesh.boundaries[name]))
        internal = ufl.inner(q.flux, B(v)) * q.dx
        external = sum(loads[1:], loads[0]) if loads else None
        self.residual_form = fem.form(internal if external is None else internal - external)
        # the load vector alone (None without loads): the work of the loads in time stepping
        self.load_form = None if external is None else fem.form(external)
        self.jacobian_form = fem.form(ufl.inner(ufl.dot(q.tangent, B(du)), B(v)) * q.dx)
        self.bcs = self._dirichlet(dirichlet)
        self._gradient = fem.Expression(B(self.u), np.asarray(q.points_ref))
        self._set_up_solver(dict(petsc_options or {}))

    def _constant(self, value: BoundaryValue) -> Any:

        array = np.asarray(value, dtype=np.float64)
        if array.shape != self.physics.value_shape:
            raise InputError(
                f"a {self.physics.name} source or boundary flux needs shape {self.physics.value_shape}, got {value!r}."
            )
        return self._scaled(array)

    def _scaled(self, value: Any) -> Any:
        """A constant that follows the load factor."""
        from dolfinx import fem

        array = np.asarray(value, dtype=np.float64)
        constant = fem.Constant(self.mesh.mesh, array.copy())
        self._loads.append((constant, array))
        return constant

    def set_load(self, factor: float) -> None:
        """Scale every prescribed value (Dirichlet, Neumann, source) to ``factor`` × given."""
        for constant, value in self._loads:
            constant.value = factor * value

    def _dirichlet(self, dirichlet: Mapping[str, BoundaryValue]) -> list[Any]:
        return dirichlet_bcs(self.V, self.mesh, self.physics, dirichlet, self._scaled)

    def _set_up_solver(self, petsc_options: dict[str, Any]) -> None:
        from dolfinx.fem import petsc as fem_petsc

        self.A = fem_petsc.create_matrix(self.jacobian_form)
        self.b = fem_petsc.create_vector(self.V)
        self._forces = self.b.duplicate()
        self.force_scale = 0.0
        self.du = self.b.duplicate()
        self.ksp = PETSc.KSP().create(self.mesh.mesh.comm)
        self.ksp.setOperators(self.A)
        self.ksp.setOptionsPrefix(OPTIONS_PREFIX)
        defaults = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}
        options = merge_solver_options(defaults, petsc_options)
        with prefixed_options(OPTIONS_PREFIX, options, "macro"):
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
        # the size of the forces, reactions included (a scale for the Newton tolerance):
        # the assembled vector before the Dirichlet rows are replaced
        with self.b.localForm() as assembled, self._forces.localForm() as forces:
            assembled.copy(forces)
        self._forces.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        self.force_scale = float(self._forces.norm())
        fem_petsc.apply_lifting(
            self.b, [self.jacobian_form], [self.bcs], x0=[self.u.x.petsc_vec], alpha=-1.0
        )
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fem_petsc.set_bc(self.b, self.bcs, self.u.x.petsc_vec, -1.0)

    def reactions(self) -> dict[str, list[float | None]]:
        """Reaction per component on each Dirichlet boundary (force, or flux for diffusion).

        The residual tested with the boundary's indicator function; None for a free
        component. At equilibrium this is the force/flux the support exerts on the body, ∫ σ·n over
        the boundary, in the variationally consistent form; dofs shared by two Dirichlet
        boundaries (corners) count for both. Uses the stored flux.
        """
        from dolfinx import fem
        from dolfinx.fem import petsc as fem_petsc

        residual = fem_petsc.assemble_vector(self.residual_form)
        residual.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        owned = self.V.dofmap.index_map.size_local * self.V.dofmap.index_map_bs
        fdim = self.mesh.mesh.topology.dim - 1
        spaces = (
            [self.V.sub(c) for c in range(self.physics.dim)]
            if self.physics.value_shape
            else [self.V]
        )
        local = []
        for name in self.dirichlet:
            facets = self.mesh.facet_tags.find(self.mesh.boundaries[name])
            for space in spaces:
                dofs = fem.locate_dofs_topological(space, fdim, facets)
                local.append(float(residual.array[dofs[dofs < owned]].sum()))
        residual.destroy()
        total = iter(self.mesh.mesh.comm.allreduce(np.asarray(local), op=MPI.SUM))
        reactions: dict[str, list[float | None]] = {}
        for name, value in self.dirichlet.items():
            given = list(value) if isinstance(value, Sequence) else [value]
            values = [next(total) for _ in given]
            reactions[name] = [
                None if g is None else float(r) for g, r in zip(given, values, strict=True)
            ]
        return reactions

    def newton_step(self) -> float:
        """Solve J du = −R for the stored flux and tangent and update u; returns ‖du‖.

        Uses the residual of the last :meth:`residual_norm` call (same u, same flux).
        """
        from dolfinx.fem import petsc as fem_petsc

        self.A.zeroEntries()
        fem_petsc.assemble_matrix(self.A, self.jacobian_form, bcs=self.bcs)
        self.A.assemble()
        self.b.scale(-1.0)
        try:
            self.ksp.solve(self.b, self.du)
            reason: Any = self.ksp.getConvergedReason()
        except PETSc.Error as err:
            reason, detail = -1, f": {str(err).strip().splitlines()[-1]}"
        else:
            detail = ""
        if reason < 0:
            # PETSc skips the numeric factorization of a PC whose last one failed: reset it,
            # so that a retry (a cut-back of the load step) factors the new matrix
            self.ksp.reset()
            self.ksp.setOperators(self.A)
            raise RuntimeError(
                f"the macro linear solver failed (reason {reason}{detail}): a singular "
                "tangent (e.g. a limit load of a perfectly plastic material) or a failed "
                "factorization."
            )
        self.u.x.petsc_vec.axpy(1.0, self.du)
        self.u.x.scatter_forward()
        return float(self.du.norm())

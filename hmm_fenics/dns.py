"""Direct numerical simulation (DNS) of an ε-periodic medium, and its comparison with FE².

The macro domain [0, L]² is filled with (L/ε)² copies of a disk-in-matrix cell and solved
fully resolved with DOLFINx; FE² solves the same problem on a coarse macro mesh. The errors
compare u in L2 and the flux averaged over each ε-cell away from the boundary layer.
"""

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from mpi4py import MPI

import gmsh
import numpy as np
import numpy.typing as npt

from hmm_fenics.macro.dirichlet import BoundaryValue, dirichlet_bcs
from hmm_fenics.macro.mesh import MacroMesh, boundary_names, classify_boundaries
from hmm_fenics.materials import Material
from hmm_fenics.parallel.collective import on_one_rank
from hmm_fenics.petsc_options import prefixed_options
from hmm_fenics.physics import Physics
from hmm_fenics.rve.geometry import PHASE_TAGS, gmsh_session


class DNSMesh(NamedTuple):
    """A fully resolved periodic medium.

    Attributes:
        macro: Mesh and named boundaries (left, right, bottom, top).
        cell_tags: Phase tags (matrix 1, inclusion 2).
        epsilon: Period ε.
    """

    macro: MacroMesh
    cell_tags: Any
    epsilon: float


def periodic_medium(
    epsilon: float,
    fraction: float,
    length: float = 1.0,
    per_cell: float = 8.0,
    comm: Any = MPI.COMM_WORLD,
    order: int = 1,
) -> DNSMesh:
    """Mesh [0, L]² filled with an ε-periodic array of centred disks of area fraction ``fraction``.

    Args:
        epsilon: Period; L/ε must be an integer.
        fraction: Disk area fraction.
        length: Domain side L.
        per_cell: Elements across one period (mesh size ε / per_cell).
        comm: Communicator of the DNS.
        order: Geometry order of the cells. 1: straight-sided, every disk a regular polygon
            of the requested area (as the FE² cell corrects its own). 2: curved (quadratic)
            cells, every disk a circle to O(h³): needed for P2 accuracy, for the polygon
            itself differs from a disk (16 sides moved the cell-averaged stress by 7e-4).
    """
    from dolfinx.io import gmsh as gmshio

    if order not in (1, 2):
        raise ValueError(f"the geometry order must be 1 or 2, got {order}.")
    n = round(length / epsilon)
    if abs(n * epsilon - length) > 1e-9 * length:
        raise ValueError(f"L/ε must be an integer, got {length / epsilon}.")
    size = epsilon / per_cell
    if not 0 < fraction < 1:
        raise ValueError(f"the disk fraction must be in (0, 1), got {fraction}.")

    def build() -> dict[str, int]:
        """Rank 0 meshes the medium; its failure is raised on every rank."""
        sides, r = disk_polygon(epsilon, fraction, size)
        if order == 2:
            r = epsilon * math.sqrt(fraction / math.pi)
        occ = gmsh.model.occ
        # one square per period, so that element edges follow the ε-cell boundaries and
        # ε-cell averages are exact sums over elements
        squares = [
            occ.addRectangle(i * epsilon, j * epsilon, 0, epsilon, epsilon)
            for i in range(n)
            for j in range(n)
        ]
        disks = [
            occ.addDisk((i + 0.5) * epsilon, (j + 0.5) * epsilon, 0, r, r)
            for i in range(n)
            for j in range(n)
        ]
        _, pieces = occ.fragment([(2, s) for s in squares], [(2, d) for d in disks])
        occ.synchronize()
        inclusion = sorted({t for piece in pieces[n * n :] for _, t in piece})
        matrix = sorted({t for piece in pieces[: n * n] for _, t in piece} - set(inclusion))
        gmsh.model.addPhysicalGroup(2, matrix, PHASE_TAGS["matrix"], name="matrix")
        gmsh.model.addPhysicalGroup(2, inclusion, PHASE_TAGS["inclusion"], name="inclusion")
        lengths = {"L": length, "H": length, "W": 1.0}
        for number, (name, entities) in enumerate(
            classify_boundaries(2, "rectangle", lengths).items(), start=1
        ):
            gmsh.model.addPhysicalGroup(1, entities, number, name=name)
        for _, curve in gmsh.model.getBoundary(
            [(2, t) for t in inclusion], combined=False, oriented=False
        ):
            gmsh.model.mesh.setTransfiniteCurve(abs(curve), sides + 1)
        _set_sizes(size)
        gmsh.model.mesh.generate(2)
        gmsh.model.mesh.setOrder(order)
        return boundary_names(2)

    with gmsh_session():
        names = on_one_rank(comm, build)
        data = gmshio.model_to_mesh(gmsh.model, comm, 0, gdim=2)
    return DNSMesh(MacroMesh(data.mesh, data.facet_tags, names), data.cell_tags, epsilon)


def _set_sizes(size: float) -> None:
    gmsh.option.setNumber("Mesh.MeshSizeMax", size)
    gmsh.option.setNumber("Mesh.MeshSizeMin", size / 2)


def disk_polygon(epsilon: float, fraction: float, size: float) -> tuple[int, float]:
    """Sides n and radius r of the regular n-gon of area ``fraction`` ε², sides about ``size``.

    The DNS meshes every disk boundary as this polygon (n equal segments), so the meshed
    inclusion fraction is the requested one, as in the FE² cell (an inscribed polygon is
    smaller than its circle: by 2.6% at 16 sides, a flux error that no ε removes).
    """
    sides = max(8, math.ceil(2 * math.pi * epsilon * math.sqrt(fraction / math.pi) / size))
    radius = epsilon * math.sqrt(2 * fraction / (sides * math.sin(2 * math.pi / sides)))
    return sides, radius


def solve_dns(
    dns: DNSMesh,
    physics: Physics,
    materials: Mapping[str, Material],
    dirichlet: Mapping[str, BoundaryValue],
    source: Any = None,
    degree: int = 1,
) -> Any:
    """Solve the fully resolved problem (Newton, so nonlinear phases work too); return u.

    Args:
        dns: The medium.
        physics: ``Diffusion`` or ``Elasticity`` (2D).
        materials: Phase name → law.
        dirichlet: Boundary name → prescribed value (as for ``MacroProblem``).
        source: Body source (number) or body force (vector).
        degree: Lagrange degree of u.
    """
    import ufl
    from dolfinx import fem
    from dolfinx.fem.petsc import NonlinearProblem

    msh = dns.macro.mesh
    V = fem.functionspace(msh, ("Lagrange", degree, physics.value_shape))
    u = fem.Function(V, name="u_dns")
    v = ufl.TestFunction(V)
    dx = ufl.Measure("dx", domain=msh, subdomain_data=dns.cell_tags)
    eps = physics.gradient(u)
    F = sum(
        ufl.inner(materials[name].law(msh, physics)(eps), physics.gradient(v))
        * dx(PHASE_TAGS[name])
        for name in materials
    )
    if source is not None:
        F -= ufl.inner(fem.Constant(msh, np.asarray(source, dtype=np.float64)), v) * dx
    bcs = dirichlet_bcs(V, dns.macro, physics, dirichlet)
    options = {
        "snes_type": "newtonls",
        "snes_linesearch_type": "none",
        "snes_rtol": 1e-10,
        "snes_atol": 1e-12,
        "ksp_type": "preonly",
        "pc_type": "lu",
        "pc_factor_mat_solver_type": "mumps",
    }
    # through prefixed_options, which removes them afterwards (DOLFINx's own clean-up of
    # petsc_options leaves them in PETSc's database, where they leak into later solvers)
    with prefixed_options("hmm_dns_", options, "DNS"):
        problem = NonlinearProblem(F, u, bcs=bcs, petsc_options_prefix="hmm_dns_", petsc_options={})
    problem.solve()
    reason: int = problem.solver.getConvergedReason()  # type: ignore[assignment]
    if reason <= 0:
        raise RuntimeError(f"the DNS Newton solve failed (SNES reason {reason}).")
    return u


class Comparison(NamedTuple):
    """FE² against DNS.

    Attributes:
        u_error: ‖u_DNS − u_FE²‖_L2 / ‖u_DNS‖_L2.
        flux_error: ℓ2 error of the ε-cell averaged flux over the interior cells, relative.
        cells: Interior ε-cells compared.
        flux_error_middle: The same over the ε-cells inside the middle square [L/4, 3L/4]²,
            a region fixed as ε → 0, away from the boundary layers and the corners.
    """

    u_error: float
    flux_error: float
    cells: int
    flux_error_middle: float


def compare(
    dns: DNSMesh,
    physics: Physics,
    materials: Mapping[str, Material],
    u_dns: Any,
    u_fe2: Any,
    macro_flux: Any,
) -> Comparison:
    """Errors of an FE² solution against the DNS.

    Args:
        dns: The DNS mesh.
        physics: Physics of both.
        materials: The DNS phase laws.
        u_dns: DNS solution.
        u_fe2: FE² macro solution (on its own mesh).
        macro_flux: ``macro_flux(G) -> flux`` for Mandel gradients ``(m, n)``: what the
            micro model returns (the FE² flux of an ε-cell is taken at its mean gradient).
    """
    import ufl
    from dolfinx import fem
    from dolfinx import mesh as mesh_module

    msh = dns.macro.mesh
    comm = msh.comm
    V = u_dns.function_space
    u_int = fem.Function(V)
    tdim = msh.topology.dim
    cells = np.arange(msh.topology.index_map(tdim).size_local, dtype=np.int32)
    data = fem.create_interpolation_data(V, u_fe2.function_space, cells, padding=1e-10)
    u_int.interpolate_nonmatching(u_fe2, cells, data)
    u_int.x.scatter_forward()
    diff = fem.form(ufl.inner(u_dns - u_int, u_dns - u_int) * ufl.dx(domain=msh))
    ref = fem.form(ufl.inner(u_dns, u_dns) * ufl.dx(domain=msh))
    u_error = math.sqrt(
        comm.allreduce(fem.assemble_scalar(diff), op=MPI.SUM)
        / comm.allreduce(fem.assemble_scalar(ref), op=MPI.SUM)
    )

    # per element: the integrals of the DNS flux, of the FE² gradient, and of 1 (DG0 tests)
    degree = 2 * V.ufl_element().embedded_superdegree  # exact for linear laws
    dx = ufl.Measure(
        "dx", domain=msh, subdomain_data=dns.cell_tags, metadata={"quadrature_degree": degree}
    )
    n = physics.n_components
    W = fem.functionspace(msh, ("DG", 0, (n,)))
    w = ufl.TestFunction(W)
    flux_dns = sum(
        ufl.inner(physics.to_mandel(material.law(msh, physics)(physics.gradient(u_dns))), w)
        * dx(PHASE_TAGS[name])
        for name, material in materials.items()
    )
    grad_fe2 = ufl.inner(physics.to_mandel(physics.gradient(u_int)), w) * dx
    ones = ufl.inner(ufl.as_vector([1.0] * n), w) * dx
    dofs = W.dofmap.list[cells, 0]
    q_int, g_int, area = (
        fem.assemble_vector(fem.form(form)).array.reshape(-1, n)[dofs]
        for form in (flux_dns, grad_fe2, ones)
    )
    area = area[:, 0]
    x = mesh_module.compute_midpoints(msh, tdim, cells)[:, :tdim]
    per_side = round(
        1.0 / dns.epsilon * float(comm.allreduce(x[:, 0].max() if len(x) else 0.0, op=MPI.MAX))
    )
    index = np.clip((x / dns.epsilon).astype(int), 0, per_side - 1)
    bins = index[:, 0] * per_side + index[:, 1]
    sums = np.zeros((per_side**2, 2 * n + 1))
    np.add.at(sums, bins, np.column_stack([q_int, g_int, area]))
    sums = comm.allreduce(sums, op=MPI.SUM)
    i, j = np.divmod(np.arange(per_side**2), per_side)
    interior = (i > 0) & (j > 0) & (i < per_side - 1) & (j < per_side - 1)
    # the ε-cells inside the middle square [L/4, 3L/4]², the same region at every ε
    low, high = np.arange(per_side) / per_side, np.arange(1, per_side + 1) / per_side
    middle = (low >= 0.25 - 1e-12) & (high <= 0.75 + 1e-12)
    core = middle[i] & middle[j]
    mean = sums[:, :-1] / sums[:, -1:]
    q_dns, g_mean = mean[:, :n], mean[:, n:]
    q_fe2 = np.zeros_like(q_dns)
    q_fe2[interior] = macro_flux(g_mean[interior])

    def relative(where: npt.NDArray[np.bool_]) -> float:
        return float(np.linalg.norm(q_dns[where] - q_fe2[where]) / np.linalg.norm(q_dns[where]))

    return Comparison(u_error, relative(interior), int(interior.sum()), relative(core))

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

from hmm_fenics.macro.mesh import MacroMesh, _boundary_names, _classify
from hmm_fenics.materials import Material
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
) -> DNSMesh:
    """Mesh [0, L]² filled with an ε-periodic array of centred disks of area fraction ``fraction``.

    Args:
        epsilon: Period; L/ε must be an integer.
        fraction: Disk area fraction.
        length: Domain side L.
        per_cell: Elements across one period (mesh size ε / per_cell).
        comm: Communicator of the DNS.
    """
    from dolfinx.io import gmsh as gmshio

    n = round(length / epsilon)
    if abs(n * epsilon - length) > 1e-9 * length:
        raise ValueError(f"L/ε must be an integer, got {length / epsilon}.")
    r = epsilon * math.sqrt(fraction / math.pi)
    with gmsh_session():
        if comm.rank == 0:
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
            for number, (name, entities) in enumerate(
                _classify(2, "rectangle", {"L": length, "H": length, "W": 1.0}).items(), start=1
            ):
                gmsh.model.addPhysicalGroup(1, entities, number, name=name)
            gmsh.option.setNumber("Mesh.MeshSizeMax", epsilon / per_cell)
            gmsh.option.setNumber("Mesh.MeshSizeMin", epsilon / per_cell / 2)
            gmsh.model.mesh.generate(2)
        names = comm.bcast(_boundary_names(2) if comm.rank == 0 else None, root=0)
        data = gmshio.model_to_mesh(gmsh.model, comm, 0, gdim=2)
    return DNSMesh(MacroMesh(data.mesh, data.facet_tags, names), data.cell_tags, epsilon)


def solve_dns(
    dns: DNSMesh,
    physics: Physics,
    materials: Mapping[str, Material],
    dirichlet: Mapping[str, Any],
    source: Any = None,
) -> Any:
    """Solve the fully resolved problem (Newton, so nonlinear phases work too); return u."""
    import ufl
    from dolfinx import fem
    from dolfinx.fem.petsc import NonlinearProblem

    msh = dns.macro.mesh
    V = fem.functionspace(msh, ("Lagrange", 1, physics.value_shape))
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
    bcs = []
    fdim = msh.topology.dim - 1
    for name, value in dirichlet.items():
        facets = dns.macro.facet_tags.find(dns.macro.boundaries[name])
        values = [value] if not physics.value_shape else list(value)
        for c, g in enumerate(values):
            if g is None:
                continue
            space = V if not physics.value_shape else V.sub(c)
            bcs.append(
                fem.dirichletbc(float(g), fem.locate_dofs_topological(space, fdim, facets), space)
            )
    options = {
        "snes_type": "newtonls",
        "snes_linesearch_type": "none",
        "snes_rtol": 1e-10,
        "snes_atol": 1e-12,
        "ksp_type": "preonly",
        "pc_type": "lu",
        "pc_factor_mat_solver_type": "mumps",
    }
    problem = NonlinearProblem(
        F, u, bcs=bcs, petsc_options_prefix="hmm_dns_", petsc_options=options
    )
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
    """

    u_error: float
    flux_error: float
    cells: int


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

    # per element: area, centroid, DNS flux, gradient of the interpolated FE² field (P1: constant)
    midpoint = np.full((1, tdim), 1.0 / (tdim + 1))
    n = physics.n_components
    grad_fe2 = fem.Expression(physics.to_mandel(physics.gradient(u_int)), midpoint)
    centre = fem.Expression(ufl.SpatialCoordinate(msh), midpoint)
    flux_dns = np.zeros((len(cells), n))
    for name, material in materials.items():
        tagged = dns.cell_tags.indices[dns.cell_tags.values == PHASE_TAGS[name]]
        tagged = tagged[tagged < len(cells)]
        law = material.law(msh, physics)
        expr = fem.Expression(physics.to_mandel(law(physics.gradient(u_dns))), midpoint)
        flux_dns[tagged] = np.asarray(expr.eval(msh, tagged)).reshape(-1, n)
    g_fe2 = np.asarray(grad_fe2.eval(msh, cells)).reshape(-1, n)
    x = np.asarray(centre.eval(msh, cells)).reshape(-1, tdim)
    from hmm_fenics.rve.mesh import cell_volumes

    area = cell_volumes(msh)[: len(cells)]
    per_side = round(
        1.0 / dns.epsilon * float(comm.allreduce(x[:, 0].max() if len(x) else 0.0, op=MPI.MAX))
    )
    index = np.clip((x / dns.epsilon).astype(int), 0, per_side - 1)
    bins = index[:, 0] * per_side + index[:, 1]
    sums = np.zeros((per_side**2, 2 * n + 1))
    np.add.at(sums, bins, np.column_stack([area[:, None] * flux_dns, area[:, None] * g_fe2, area]))
    sums = comm.allreduce(sums, op=MPI.SUM)
    i, j = np.divmod(np.arange(per_side**2), per_side)
    interior = (i > 0) & (j > 0) & (i < per_side - 1) & (j < per_side - 1)
    mean = sums[interior, :-1] / sums[interior, -1:]
    q_dns, g_mean = mean[:, :n], mean[:, n:]
    q_fe2 = macro_flux(g_mean)
    flux_error = float(np.linalg.norm(q_dns - q_fe2) / np.linalg.norm(q_dns))
    return Comparison(u_error, flux_error, int(interior.sum()))

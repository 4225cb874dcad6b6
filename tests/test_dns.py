"""The DNS of an ε-periodic medium: the medium it meshes, its boundary conditions, its errors."""

import ast
from pathlib import Path

from mpi4py import MPI

import numpy as np
import pytest

import hmm_fenics as hf
from hmm_fenics.dns import compare, periodic_medium, solve_dns
from hmm_fenics.errors import InputError
from hmm_fenics.macro.dirichlet import dirichlet_bcs
from hmm_fenics.macro.mesh import macro_mesh
from hmm_fenics.rve.geometry import PHASE_TAGS

PACKAGE = Path(hf.__file__).parent


def phase_areas(dns):
    """Areas of the whole mesh and of its inclusion phase (exact for curved cells too)."""
    import ufl
    from dolfinx import fem

    msh = dns.macro.mesh
    dx = ufl.Measure("dx", domain=msh, subdomain_data=dns.cell_tags)
    one = fem.Constant(msh, 1.0)
    return [
        msh.comm.allreduce(fem.assemble_scalar(fem.form(one * measure)), op=MPI.SUM)
        for measure in (dx, dx(PHASE_TAGS["inclusion"]))
    ]


@pytest.mark.parametrize("per_cell", [4, 8])
def test_dns_disks_are_meshed_to_the_requested_fraction(per_cell):
    # The FE² cell corrects its polygonal disk to the fraction; the DNS must mesh the same
    # medium (an inscribed 16-gon is 2.6% smaller than its circle: a constant flux error).
    dns = periodic_medium(1 / 4, 0.3, per_cell=per_cell)
    total, inclusion = phase_areas(dns)
    assert total == pytest.approx(1.0, rel=1e-12)
    assert inclusion / total == pytest.approx(0.3, rel=1e-9)  # a regular polygon, exactly
    # curved cells: quadratic arcs, whose area deficit falls as (sides)^-4: 8e-4 at 8 sides
    # (per_cell = 4), 5e-5 at 16 (per_cell = 8)
    total, inclusion = phase_areas(periodic_medium(1 / 4, 0.3, per_cell=per_cell, order=2))
    assert total == pytest.approx(1.0, rel=1e-12)
    assert inclusion == pytest.approx(0.3, rel=1e-3 if per_cell == 4 else 1e-4)


def test_compare_is_exact_when_fe2_is_the_exact_solution():
    # homogeneous medium (both phases k = 2), u = x: left 0, right 1, insulated top and bottom.
    # DNS (P1, and P2 on curved cells) and the FE² field are both exact, so every error is round-off, and the
    # cell averages see the whole flux (2, 0) in every ε-cell.
    physics = hf.Diffusion(2)
    materials = {"matrix": hf.Conductivity(2.0), "inclusion": hf.Conductivity(2.0)}
    macro = macro_mesh("rectangle", 1 / 4)
    from dolfinx import fem

    u_fe2 = fem.Function(fem.functionspace(macro.mesh, ("Lagrange", 2)))
    u_fe2.interpolate(lambda x: x[0])
    for degree in (1, 2):
        dns = periodic_medium(1 / 4, 0.3, per_cell=4, order=degree)
        u = solve_dns(dns, physics, materials, {"left": 0.0, "right": 1.0}, degree=degree)
        c = compare(dns, physics, materials, u, u_fe2, lambda G: 2.0 * G)
        assert c.cells == 4  # the 2 × 2 interior of 4 × 4 ε-cells
        assert c.u_error < 1e-10 and c.flux_error < 1e-10 and c.flux_error_middle < 1e-10
        # a wrong FE² flux law shows up in full, on all cells and on the middle square
        wrong = compare(dns, physics, materials, u, u_fe2, lambda G: 2.2 * G)
        assert wrong.flux_error == pytest.approx(0.1, rel=1e-8)
        assert wrong.flux_error_middle == pytest.approx(0.1, rel=1e-8)


def test_one_dirichlet_builder_for_dns_and_macro_problem():
    from dolfinx import fem

    macro = macro_mesh("rectangle", 1 / 4)
    physics = hf.Elasticity(2)
    V = fem.functionspace(macro.mesh, ("Lagrange", 1, (2,)))
    bcs = dirichlet_bcs(V, macro, physics, {"left": (0.0, None), "right": (1.0, 2.0)})
    assert len(bcs) == 3  # the free component of "left" has none
    u = fem.Function(V)
    for bc in bcs:
        bc.set(u.x.array)
    x = V.tabulate_dof_coordinates()
    values = u.x.array.reshape(-1, 2)
    right = np.isclose(x[:, 0], 1.0)
    np.testing.assert_array_equal(values[right], np.tile([1.0, 2.0], (right.sum(), 1)))
    assert not values[~right].any()
    with pytest.raises(InputError, match=r"dirichlet\.left: give 2 components"):
        dirichlet_bcs(V, macro, physics, {"left": (0.0,)})
    with pytest.raises(InputError, match=r"\['middle'\] are not in the mesh"):
        dirichlet_bcs(V, macro, physics, {"middle": (0.0, 0.0)})
    # neither the DNS nor the macro problem builds its own
    for module in ("dns.py", "macro/problem.py"):
        source = (PACKAGE / module).read_text()
        assert "dirichlet_bcs(" in source and "fem.dirichletbc(" not in source, module


def test_dns_imports_no_private_names():
    tree = ast.parse((PACKAGE / "dns.py").read_text())
    private = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hmm_fenics")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert not private, private

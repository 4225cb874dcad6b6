"""``hmm-fenics rve``: the XDMF opens in DOLFINx, and a 3D cell with ``--png`` still gets its mesh."""

import logging

import numpy as np
import pytest
from test_cli import LAMINATE

from hmm_fenics.cli import main
from hmm_fenics.io import write_rve_preview
from hmm_fenics.rve.spec import RVESpec

LAMINATE_3D = LAMINATE.replace("dim = 2", "dim = 3").replace("mesh_size = 0.1", "mesh_size = 0.5")


@pytest.mark.parametrize("dim", [2, 3])
def test_rve_xdmf_opens_in_dolfinx(tmp_path, dim):
    from mpi4py import MPI

    import ufl
    from dolfinx import fem, io

    spec = RVESpec("laminate", dim, 0.3, 0.1 if dim == 2 else 0.5)
    written = write_rve_preview(spec, tmp_path / "cell.msh")
    with io.XDMFFile(MPI.COMM_SELF, str(tmp_path / "cell.xdmf"), "r") as xdmf:
        mesh = xdmf.read_mesh()
        phase = xdmf.read_meshtags(mesh, "mesh", attribute_name="phase")
    dx = ufl.Measure("dx", domain=mesh, subdomain_data=phase)
    one = fem.Constant(mesh, 1.0)
    # a laminate's layers are planar: the meshed volumes are exact (unit cell, fraction 0.3)
    volumes = [fem.assemble_scalar(fem.form(one * dx(tag))) for tag in (1, 2)]
    assert np.allclose(volumes, [0.7, 0.3], rtol=0, atol=1e-12)
    assert mesh.geometry.dim == dim
    assert tmp_path / "cell.h5" in written


def test_rve_3d_with_png_writes_the_mesh_and_warns(tmp_path, capsys, caplog):
    from mpi4py import MPI

    folder = MPI.COMM_WORLD.bcast(tmp_path, root=0)  # rank 0 writes
    cell = folder / "cell.toml"
    cell.write_text(LAMINATE_3D)
    with caplog.at_level(logging.WARNING, logger="hmm_fenics"):
        code = main(["rve", str(cell), "-o", str(folder / "c.msh"), "--png", str(folder / "c.png")])
    assert code == 0
    assert (folder / "c.msh").exists() and (folder / "c.xdmf").exists()
    assert not (folder / "c.png").exists()
    if MPI.COMM_WORLD.rank == 0:
        assert "--png pictures 2D cells only" in caplog.text


def test_rve_keeps_an_existing_h5_file(tmp_path, capsys):
    from mpi4py import MPI

    folder = MPI.COMM_WORLD.bcast(tmp_path, root=0)
    data = folder / "cell.h5"
    if MPI.COMM_WORLD.rank == 0:
        data.write_text("precious")
    MPI.COMM_WORLD.barrier()
    assert main(["rve", "-o", str(folder / "cell.msh")]) == 2
    assert data.read_text() == "precious"
    if MPI.COMM_WORLD.rank == 0:
        assert "cell.h5" in capsys.readouterr().err

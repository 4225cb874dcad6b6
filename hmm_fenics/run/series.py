"""Field time series of a run: one file per field, a time step per load step, continued on resume.

XDMF files are opened, appended to and closed at every step, so that a run killed between
steps leaves files that read (an HDF5 file that is open when the process is killed does
not). A resumed run first drops from each existing file the steps after its checkpoint's
time (rank 0: the XML time grids and their HDF5 datasets), then appends its own copy of the
mesh under a new name (another number of ranks numbers the nodes, and so the values,
differently) and the steps after the checkpoint, which refer to that mesh: one series per
field, as ParaView reads it. A file that no longer reads (killed while writing it) is
renamed ``<name>.broken<k>.xdmf`` and the series starts again in a new file, with a
warning. VTX (ADIOS2) files cannot be trimmed: a resumed run writes ``<name>.<k>.bp``.
"""

import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from hmm_fenics.parallel.collective import on_one_rank
from hmm_fenics.run.fields import viewable

log = logging.getLogger(__name__)

XINCLUDE = "https://www.w3.org/2001/XInclude"


class FieldWriter:
    """One file per field, XDMF or VTX (ADIOS2), written at each load step.

    Args:
        comm: The run's communicator.
        folder: The output folder.
        kind: ``xdmf``, ``vtx`` or ``none``.
        resume_time: The checkpoint's time when the run resumed (None: a new run).
    """

    def __init__(
        self, comm: Any, folder: Path, kind: str, resume_time: float | None = None
    ) -> None:
        self.comm, self.folder, self.kind = comm, folder, kind
        self.resume_time = resume_time
        self.files: dict[str, Any] = {}  # VTX writers (open for the run)
        self.targets: dict[str, Any] = {}  # what is written: P1 or DG0 copies
        self.meshes: dict[str, str] = {}  # XDMF: the mesh grid each field's steps refer to
        self.paths: list[Path] = []

    def write(self, name: str, function: Any, time: float) -> None:
        """Write ``function`` to ``<name>.xdmf`` / ``<name>.bp`` at ``time`` (collective)."""
        from dolfinx import fem, io

        if self.kind == "none":
            return
        if name not in self.targets:
            view = viewable(function)
            self.targets[name] = fem.Function(view.function_space, name=name)
            if self.kind == "xdmf":
                self._start_xdmf(name)
            else:
                self._start_vtx(name)
        target = self.targets[name]
        target.interpolate(function)
        if self.kind == "xdmf":
            path = self.folder / f"{name}.xdmf"
            with io.XDMFFile(self.comm, str(path), "a") as xdmf:
                xdmf.write_function(target, time, mesh_xpath=self.meshes[name])
        else:
            self.files[name].write(time)

    def _start_xdmf(self, name: str) -> None:
        """Create the file with its mesh, or trim a resumed one and append this run's mesh."""
        from dolfinx import io

        path = self.folder / f"{name}.xdmf"
        resume_time = self.resume_time
        mesh_name = (
            None
            if resume_time is None
            else on_one_rank(self.comm, lambda: _trim(path, resume_time))
        )
        mesh = self.targets[name].function_space.mesh
        if mesh_name is None:
            with io.XDMFFile(self.comm, str(path), "w") as xdmf:
                xdmf.write_mesh(mesh)
            self.meshes[name] = f"/Xdmf/Domain/Grid[@Name='{mesh.name}']"
        else:
            original, mesh.name = mesh.name, mesh_name
            try:
                with io.XDMFFile(self.comm, str(path), "a") as xdmf:
                    xdmf.write_mesh(mesh)
            finally:
                mesh.name = original
            self.meshes[name] = f"/Xdmf/Domain/Grid[@Name='{mesh_name}']"
        self.paths.append(path)

    def _start_vtx(self, name: str) -> None:
        from dolfinx import io

        path = self.folder / f"{name}.bp"
        if self.resume_time is not None:
            k = 1
            while self.comm.bcast((path.exists() if self.comm.rank == 0 else None), root=0):
                path, k = self.folder / f"{name}.{k}.bp", k + 1
        self.files[name] = io.VTXWriter(self.comm, str(path), [self.targets[name]], engine="BP4")
        self.paths.append(path)

    def close(self) -> None:
        """Close the files that stay open (VTX)."""
        for handle in self.files.values():
            handle.close()
        self.files.clear()


def _trim(path: Path, after: float) -> str | None:
    """Drop the steps after time ``after`` from an XDMF file; a new mesh name for it.

    None: there is no such file, or it does not read (then it is renamed aside).
    """
    import h5py

    if not path.exists():
        return None
    ET.register_namespace("xi", XINCLUDE)
    h5 = path.with_suffix(".h5")
    try:
        tree = ET.parse(path)
        domain = tree.getroot().find("Domain")
        assert domain is not None
        dropped: list[str] = []
        tolerance = 1e-12 * max(1.0, abs(after))
        for collection in domain.findall("Grid[@GridType='Collection']"):
            for grid in collection.findall("Grid"):
                stamp = grid.find("Time")
                if stamp is not None and float(stamp.get("Value", "0")) > after + tolerance:
                    dropped += [item.text or "" for item in grid.iter("DataItem")]
                    collection.remove(grid)
        with h5py.File(h5, "a") as data:
            for item in dropped:
                dataset = item.strip().split(":", 1)[-1]
                if dataset in data:
                    del data[dataset]
        names = {grid.get("Name") for grid in domain.findall("Grid")}
    except Exception as err:  # killed while writing: keep it aside, start a new series
        k = 1
        while path.with_suffix(f".broken{k}.xdmf").exists():
            k += 1
        path.rename(path.with_suffix(f".broken{k}.xdmf"))
        if h5.exists():
            h5.rename(h5.with_suffix(f".broken{k}.h5"))
        log.warning(
            "warning: %s does not read (%s); kept as %s, its series starts again at the checkpoint",
            path,
            err,
            path.with_suffix(f".broken{k}.xdmf").name,
        )
        return None
    tree.write(path, xml_declaration=True, encoding="utf-8")
    k = 1
    while f"mesh_{k}" in names:
        k += 1
    return f"mesh_{k}"

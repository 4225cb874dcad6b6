"""Checkpoint folders on disk: written atomically, checked by checksums (design.md §8).

Layout of ``DIR/checkpoint/``::

    step_000012/            the last complete checkpoint (after step 12)
        manifest.json       step, time, every file's size and SHA-256, metadata
        manifest.sha256     written last: the manifest's own SHA-256
        run.toml            the run file as given
        <name>.<rank>.npy   each rank's slice of each array (NumPy .npy, keyed by its own
                            key array: see ``hmm_fenics.run.restart``)
    .step_000015.tmp/       a checkpoint being written (or half-written by a killed run)
    complete.json           the run finished (written after results.json): a resume of it
                            has nothing to do (``hmm_fenics.run.restart.finished``)

Writing (collective): rank 0 makes a fresh temporary folder; every rank writes its arrays
there (hashing the bytes as they go), flushes and fsyncs them; rank 0 gathers the sizes
and checksums, writes the run file, the manifest and its checksum (fsync), fsyncs the folder, renames it
to ``step_<k>`` (atomic on POSIX) and fsyncs ``checkpoint/``. Only then are the older
checkpoints removed: until the rename, the previous one stays complete and valid. A run
killed at any moment leaves the last complete checkpoint plus at most a ``.tmp`` folder,
which :func:`latest` names and ignores.

Reading checks the manifest against its checksum, then every file's size and checksum
against the manifest before the bytes are used; a missing, truncated or changed file is a
:class:`CheckpointError` naming it.

A run checks at its start that every rank can write to ``checkpoint/`` (:func:`prepare`; a
node-local folder or a file in the way is refused before the solve); ``--overwrite`` first
removes the checkpoints of the run it replaces. A write that fails later (disk full, the
folder removed) raises :class:`WriteFailed` on every rank after the half-written folder is
removed: the previous checkpoint stays the valid one.
"""

import hashlib
import io
import json
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError
from hmm_fenics.parallel.collective import agree, on_one_rank
from hmm_fenics.strict_json import dumps

FORMAT = "hmm-fenics checkpoint"
VERSION = 3
CHANGES = {
    2: "whose history state rows held the committed fluctuation (version 3 derives it: "
    "gradient | internal variables, micro.state)",
}
"""Older versions that are still read, and what they differ in: only the state rows of a
history model, so a run without one (no states, or a nonlinear cell's warm starts) resumes
from them and a history run refuses them (:func:`outdated`, in ``run.restart``)."""
FOLDER = "checkpoint"
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.sha256"
RUN_FILE = "run.toml"
COMPLETE = "complete.json"
PROBE = ".probe"


class CheckpointError(InputError):
    """A checkpoint that cannot be used: missing, half-written, or a file that changed."""


class WriteFailed(RuntimeError):
    """A checkpoint could not be written (raised on every rank; the half-written folder is gone)."""


class Checkpoint(NamedTuple):
    """A complete checkpoint folder and its manifest (checked: every file is listed)."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def step(self) -> int:
        """The last step it holds."""
        return int(self.manifest["step"])

    def run_text(self) -> str:
        """The run file it was written from, as given (checksum verified)."""
        return read_verified(self, RUN_FILE).decode()

    def slices(self, name: str) -> list[str]:
        """The files of array ``name``, one per rank that wrote it."""
        return [f"{name}.{rank}.npy" for rank in range(int(self.manifest["ranks"]))]


def root(output: Path) -> Path:
    """Where the checkpoints of an output folder live."""
    return Path(output) / FOLDER


def write(
    comm: Any,
    output: Path,
    step: int,
    arrays: dict[str, npt.NDArray[Any]],
    run_text: str,
    meta: dict[str, Any],
) -> Path:
    """Write checkpoint ``step`` of this rank's ``arrays`` atomically (collective).

    Args:
        comm: The run's communicator; every rank calls this with the same array names.
        output: The run's output folder (the checkpoint goes to ``output/checkpoint``).
        step: The last completed step (names the folder).
        arrays: This rank's slices, by name.
        run_text: The run file as given (rank 0's is written).
        meta: JSON-ready metadata for the manifest (rank 0's is written).

    Returns:
        The complete checkpoint folder.

    Raises:
        WriteFailed: some rank could not write (disk full, the folder gone); the
            half-written folder is removed, the previous checkpoint stays (every rank).
    """
    base = root(output)
    final = base / f"step_{step:06d}"
    temporary = base / f".step_{step:06d}.tmp"

    def prepare_folder() -> None:
        base.mkdir(parents=True, exist_ok=True)
        for stale in base.glob(".step_*.tmp"):  # half-written by a killed run, or ours
            _remove(stale)
        temporary.mkdir()

    def write_slices() -> dict[str, dict[str, Any]]:
        return {
            f"{name}.{comm.rank}.npy": _write_array(temporary / f"{name}.{comm.rank}.npy", array)
            for name, array in arrays.items()
        }

    def publish(listed: list[dict[str, dict[str, Any]]]) -> None:
        files = {name: entry for part in listed for name, entry in part.items()}
        files[RUN_FILE] = _write_bytes(temporary / RUN_FILE, run_text.encode())
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "step": step,
            "ranks": comm.size,
            **meta,
            "files": files,
        }
        text = dumps(manifest).encode()
        _write_bytes(temporary / MANIFEST, text)
        _write_bytes(temporary / MANIFEST_SUM, hashlib.sha256(text).hexdigest().encode())
        _fsync_folder(temporary)
        if final.exists():  # the same step written again (a resumed run): replace it
            shutil.rmtree(final)
        os.rename(temporary, final)
        _fsync_folder(base)

    try:
        on_one_rank(comm, prepare_folder)
        listed = comm.gather(agree(comm, write_slices), root=0)
        on_one_rank(comm, lambda: publish(listed or []))
    except Exception as err:  # agreed: every rank is here with the same error
        on_one_rank(comm, lambda: _remove(temporary))
        raise WriteFailed(
            f"checkpoint of step {step} could not be written to {base}: {err}"
        ) from err

    def prune() -> None:  # the new one is complete: the old ones may go
        for older in base.glob("step_*"):
            if older != final:
                shutil.rmtree(older, ignore_errors=True)

    on_one_rank(comm, prune)
    return final


def _remove(path: Path) -> None:
    """Remove a folder tree or a file, if there (best effort: the folder may be unwritable)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError:
        pass


def prepare(comm: Any, output: Path, clear: bool) -> None:
    """Make ``output/checkpoint`` and check that every rank can write there (collective).

    ``clear``: first remove the checkpoints (and the completion mark) of the run this one
    replaces (``--overwrite``), so that a later ``--resume`` cannot pick them up. Rank 0
    writes a probe file, every rank must see it and write one of its own (a folder local to
    a node is not shared: the ranks' slices would not meet in one checkpoint).

    Raises:
        InputError: the folder cannot be made or written, or some rank does not see it
            (named), on every rank.
    """
    base = root(output)

    def make() -> str:
        if clear and base.is_dir() and not base.is_symlink():
            shutil.rmtree(base)
        base.mkdir(parents=True, exist_ok=True)
        token = os.urandom(8).hex()
        _write_bytes(base / PROBE, token.encode())
        return token

    def check(token: str) -> None:
        if (base / PROBE).read_text() != token:
            raise OSError(f"{base / PROBE} holds another run's probe (not the same folder)")
        _write_bytes(base / f"{PROBE}.{comm.rank}", token.encode())

    def clean() -> None:
        for name in [PROBE, *(f"{PROBE}.{rank}" for rank in range(comm.size))]:
            (base / name).unlink()

    try:
        token = on_one_rank(comm, make)
        agree(comm, partial(check, token))
        on_one_rank(comm, clean)
    except Exception as err:
        raise InputError(
            f"checkpoints cannot be written to {base} ({err}); every rank must be able to "
            "write there (a folder shared by all nodes; nothing else of that name in the way)."
            " Choose another --output."
        ) from err


BLOCK = 8 * 2**20
"""Bytes handed to the file at a time by :func:`_write_array` (from a view: no copy)."""


def _write_array(path: Path, array: npt.NDArray[Any]) -> dict[str, Any]:
    """Write one .npy file (flushed to disk); its size and SHA-256.

    The data go out from a view of ``array`` in slices of ``BLOCK`` bytes, never copied
    (NumPy's ``write_array`` would copy 16 MiB chunks for a file object that is not a real
    file, as this hashing one): writing the states needs no memory beyond them.
    """
    array = np.ascontiguousarray(array)
    if array.dtype.hasobject:
        raise ValueError(f"{path.name}: object arrays are not written to checkpoints.")
    digest = hashlib.sha256()
    with open(path, "wb") as raw:
        sink = _Hashing(raw, digest)
        header = np.lib.format.header_data_from_array_1_0(array)
        try:
            np.lib.format.write_array_header_1_0(sink, header)  # type: ignore[arg-type]
        except ValueError:  # a header over 64 KiB (raised before writing): version 2.0
            np.lib.format.write_array_header_2_0(sink, header)  # type: ignore[arg-type]
        data = memoryview(array.reshape(-1)).cast("B")
        for start in range(0, len(data), BLOCK):
            sink.write(data[start : start + BLOCK])
        raw.flush()
        os.fsync(raw.fileno())
        return {"bytes": sink.size, "sha256": digest.hexdigest()}


def _write_bytes(path: Path, data: bytes) -> dict[str, Any]:
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


class _Hashing:
    """A write-only file that hashes and counts what goes through it."""

    def __init__(self, file: Any, digest: Any) -> None:
        self.file, self.digest, self.size = file, digest, 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.size += len(view)
        return int(self.file.write(view))


def _fsync_folder(path: Path) -> None:
    """Make a folder's entries (new files, a rename) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mark_complete(output: Path, record: dict[str, Any]) -> None:
    """Mark the run in ``output`` finished (rank 0; after its results are written)."""
    base = root(output)
    base.mkdir(parents=True, exist_ok=True)
    temporary = base / f".{COMPLETE}.tmp"
    _write_bytes(temporary, dumps(record).encode())
    os.rename(temporary, base / COMPLETE)
    _fsync_folder(base)


def completion(output: Path) -> dict[str, Any] | None:
    """The completion mark of a finished run in ``output`` (None: not finished)."""
    try:
        record: dict[str, Any] = json.loads((root(output) / COMPLETE).read_text())
    except (OSError, ValueError):
        return None
    return record


def latest(output: Path) -> tuple[Checkpoint, list[str]]:
    """The last complete checkpoint of an output folder, and notes on what was skipped.

    Raises:
        CheckpointError: no complete checkpoint, or the newest one has no readable manifest
            or lists files that are missing (named).
    """
    base = root(output)
    notes = [
        f"ignoring the half-written checkpoint {path} (the run stopped while writing it)"
        for path in sorted(base.glob(".step_*.tmp"))
    ]
    complete = sorted(base.glob("step_*")) if base.is_dir() else []
    if not complete:
        raise CheckpointError(
            f"no complete checkpoint in {base}: nothing to resume"
            + (f" ({notes[0]})" if notes else "")
            + "; run without --resume (and with --overwrite) to start again."
        )
    folder = complete[-1]
    path = folder / MANIFEST
    try:
        text = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"checkpoint {folder}: {MANIFEST} is unreadable ({err}).") from err
    try:
        manifest = json.loads(text)
    except ValueError:
        manifest = None
    try:
        expected = (folder / MANIFEST_SUM).read_text().strip()
    except OSError as err:
        if not isinstance(manifest, dict) or manifest.get("version") in (VERSION, *CHANGES):
            raise CheckpointError(f"checkpoint {folder}: {MANIFEST_SUM} is missing.") from err
        expected = None  # an older format: named below
    if expected is not None and (
        hashlib.sha256(text).hexdigest() != expected or not isinstance(manifest, dict)
    ):
        raise CheckpointError(
            f"checkpoint {folder}: {MANIFEST} is corrupt: its SHA-256 differs from "
            f"{MANIFEST_SUM}'s."
        )
    assert isinstance(manifest, dict)
    version = manifest.get("version")
    if manifest.get("format") != FORMAT or version not in (VERSION, *CHANGES):
        raise outdated(folder, manifest)
    missing = sorted(name for name in manifest["files"] if not (folder / name).is_file())
    if missing:
        raise CheckpointError(f"checkpoint {folder}: file(s) {missing} are missing.")
    return Checkpoint(folder, manifest), notes


def outdated(folder: Path, manifest: dict[str, Any]) -> CheckpointError:
    """The refusal of a checkpoint of another format or version, naming what changed."""
    version, change = manifest.get("version"), ""
    if manifest.get("format") == FORMAT and isinstance(version, int):
        change = CHANGES.get(version, "")
    return CheckpointError(
        f"checkpoint {folder}: not a {FORMAT} of version {VERSION} "
        f"(format {manifest.get('format')!r}, version {version!r}"
        + (f": an older layout {change}" if change else "")
        + "); start the run again: without --resume, with --overwrite (or another --output)."
    )


def read_verified(checkpoint: Checkpoint, name: str) -> bytes:
    """The bytes of one listed file, after checking its size and SHA-256.

    Raises:
        CheckpointError: the file is not listed, missing, truncated or changed (named).
    """
    entry = checkpoint.manifest["files"].get(name)
    path = checkpoint.folder / name
    if entry is None:
        raise CheckpointError(f"checkpoint {checkpoint.folder}: {name} is not in its manifest.")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"checkpoint file {path} is unreadable: {err}.") from err
    if len(data) != entry["bytes"]:
        raise CheckpointError(
            f"checkpoint file {path} is corrupt: {len(data)} bytes, the manifest says "
            f"{entry['bytes']} (truncated or changed)."
        )
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise CheckpointError(
            f"checkpoint file {path} is corrupt: its SHA-256 differs from the manifest's."
        )
    return data


def read_array(checkpoint: Checkpoint, name: str) -> npt.NDArray[Any]:
    """One verified .npy file as an array (a read-only view of the bytes read)."""
    data = read_verified(checkpoint, name)
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    array = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=stream.tell())
    return array.reshape(shape, order="F" if fortran else "C")

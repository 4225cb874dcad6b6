"""Reading segmented images: the voxel counts from a file's header, the pixel values.

A 2D picture (PNG, TIFF) is read with Pillow, a 2D or 3D array of integer labels from a
NumPy ``.npy`` file. Orientation: a picture is shown upright, so its columns run along x1
and its rows from the bottom up along x2 (the top row of the file is the top of the cell).
An ``.npy`` array is indexed ``a[i1, i2(, i3)]`` along x1, x2 (, x3): ``a = picture[::-1].T``
describes the same cell as the picture.

Pixel values are what the file stores: grey levels (8 or 16 bit, 32-bit integer), palette
indices of an indexed PNG, 0/1 of a bilevel picture. A colour picture is accepted when it is
grey (equal channels); an opacity channel is ignored.
"""

from pathlib import Path

import numpy as np
import numpy.typing as npt

from hmm_fenics.errors import InputError

PICTURE_SUFFIXES = (".png", ".tif", ".tiff")
SPLIT = {"voxel": {2: 1, 3: 1}, "simplex": {2: 2, 3: 6}}
"""Mesh cells per pixel/voxel of each ``rve.mesh``."""


def image_shape(path: Path, dim: int) -> tuple[int, ...]:
    """Voxel counts along x1, x2 (, x3) read from the file's header, checked against ``dim``.

    Raises:
        InputError: missing or unreadable file, an unknown format, non-integer ``.npy``
            values, a floating-point picture, a picture of several frames, a wrong dimension
            (naming ``rve.path``).
    """
    if not path.is_file():
        raise InputError(f"rve.path: the image {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InputError(
                f"rve.path: {str(path)!r} is not a readable .npy array: {err}"
            ) from err
        shape = tuple(int(n) for n in array.shape)
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
            raise InputError(
                f"rve.path: {str(path)!r} holds {array.dtype} values; an image cell needs integer "
                "labels (e.g. np.save(path, labels.astype(np.int32)))."
            )
    elif suffix in PICTURE_SUFFIXES:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as picture:
                frames = int(getattr(picture, "n_frames", 1))
                width, height = picture.size
                mode = picture.mode
        except (OSError, UnidentifiedImageError) as err:
            raise InputError(f"rve.path: {str(path)!r} is not a readable image: {err}") from err
        if mode == "F":  # 32-bit float: grey levels, not labels (read as int, truncated)
            raise InputError(
                f"rve.path: {str(path)!r} is a floating-point picture (mode F); an image cell "
                "needs integer labels. Segment it first (threshold the grey levels into phase "
                "labels) and save an 8/16-bit or integer picture, or a .npy of integers."
            )
        if frames > 1:
            raise InputError(
                f"rve.path: {str(path)!r} holds {frames} frames; a picture is a 2D cell. Save a "
                "3D image as a .npy array of labels indexed [x1, x2, x3]."
            )
        shape = (width, height)
    else:
        raise InputError(
            f"rve.path: {str(path)!r} is no image cell format; use .png, .tif/.tiff (2D) or "
            ".npy (2D or 3D)."
        )
    if len(shape) != dim:
        raise InputError(
            f"rve.path: {str(path)!r} is a {len(shape)}D image (shape {list(shape)}) but "
            f"rve.dim = {dim}."
        )
    if min(shape) < 1:
        raise InputError(f"rve.path: {str(path)!r} is empty (shape {list(shape)}).")
    return shape


def read_pixels(path: Path) -> npt.NDArray[np.int64]:
    """The pixel values of ``path`` indexed ``[i1, i2(, i3)]`` along x1, x2 (, x3).

    Check the file with ``image_shape`` first (``RVESpec`` does).

    Raises:
        InputError: a picture that cannot be decoded, or a colour picture that is not grey.
    """
    if path.suffix.lower() == ".npy":
        return np.asarray(np.load(path, allow_pickle=False), dtype=np.int64)
    from PIL import Image

    try:
        with Image.open(path) as picture:
            pixels = np.asarray(picture)
            if picture.mode in ("LA", "RGBA", "PA"):  # the opacity is no label
                pixels = pixels[..., :-1]
    except OSError as err:
        raise InputError(f"rve.path: {str(path)!r} could not be decoded: {err}") from err
    if pixels.ndim == 3:  # colour channels: grey only
        if not (pixels == pixels[..., :1]).all():
            raise InputError(
                f"rve.path: {str(path)!r} is a colour picture; an image cell needs one value "
                "per pixel (a grey or indexed image of the phase labels)."
            )
        pixels = pixels[..., 0]
    return np.asarray(pixels[::-1].T, dtype=np.int64)

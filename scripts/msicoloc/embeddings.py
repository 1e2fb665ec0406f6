"""embeddings.h5 and embeddings_compare.h5: one feature matrix per representation of the
ion images, written by the embed and embed_compare steps and read by cluster, evaluate and
report (rows in the ion images' order)."""

from __future__ import annotations

import os

import h5py
import numpy as np

from msicoloc import InputError


def write_embeddings(
    path: str | os.PathLike[str], mz: np.ndarray, features: dict[str, np.ndarray], **attrs
) -> None:
    """Write ``mz`` and each ``features`` matrix (n, d) atomically, with file attributes."""
    from msicoloc.step import atomic_output

    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("mz", data=mz)
        for name, values in features.items():
            f.create_dataset(name, data=values)
        f.attrs.update(attrs)


def read_embeddings(
    path: str | os.PathLike[str], mz: np.ndarray | None = None, require: str = "features"
) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """The m/z, every feature matrix (as stored) and the attributes of an embeddings file
    that holds the matrix ``require``.

    With ``mz``, the file must describe exactly these ion images (same number and m/z).
    """
    try:
        with h5py.File(path, "r") as f:
            if require not in f or "mz" not in f:
                raise InputError(path, f"no dataset {require!r} or 'mz' (not the right file?)")
            stored_mz = f["mz"][()]
            features = {k: f[k][()] for k in f if k != "mz"}
            attrs = dict(f.attrs)
    except OSError as err:
        raise InputError(path, f"cannot read HDF5 ({err})") from None
    if mz is not None and (len(stored_mz) != len(mz) or not np.allclose(stored_mz, mz)):
        raise InputError(path, f"{len(stored_mz)} feature rows for {len(mz)} ion images (stale?)")
    return stored_mz, features, attrs

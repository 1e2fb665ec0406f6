"""Molecule names for the peaks: from a METASPACE annotation export or a plain m/z-name table.

A peak takes every name whose m/z lies within the tolerance. One name is shown as it is;
several different names are all shown, marked ambiguous, never silently picked.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from msicoloc import InputError
from msicoloc.images import check_ion_mz

#: Columns of a METASPACE annotation export (CSV, as downloaded) that this reader uses.
METASPACE_COLUMNS = ["formula", "adduct", "mz", "moleculeNames"]
#: Molecule names listed per METASPACE annotation before "..." (isomers can number dozens).
MAX_MOLECULES = 3


def read_names(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A name table as columns ``mz`` and ``name``.

    Two formats: a METASPACE annotation export (CSV with ``formula``, ``adduct``, ``mz``,
    ``fdr``, ``moleculeNames``; lines starting with ``#`` are skipped) names an ion
    ``formula+adduct: molecule, molecule, ...``; a plain table (TSV or CSV) with columns
    ``mz`` and ``name``. A malformed file stops with one line naming the file and the row.
    """
    path = Path(path)
    sep = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    try:
        table = pd.read_csv(path, sep=sep, comment="#", dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(path, "name table not found") from None
    except Exception as err:
        raise InputError(path, f"cannot read the name table ({type(err).__name__})") from None
    table.columns = [c.strip() for c in table.columns]
    if set(METASPACE_COLUMNS) <= set(table.columns):
        names = [_metaspace_name(row) for row in table.itertuples(index=False)]
    elif {"mz", "name"} <= set(table.columns):
        names = table["name"].str.strip().tolist()
    else:
        raise InputError(
            path,
            f"needs columns mz and name, or a METASPACE export ({', '.join(METASPACE_COLUMNS)}); "
            f"found {list(table.columns)}",
        )
    mz = pd.to_numeric(table["mz"].str.strip(), errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(mz) | (mz <= 0) | (np.array(names) == ""))
    if len(bad):
        i = int(bad[0])
        # +2: the header line, and rows counted from 1 (comment lines not counted)
        raise InputError(
            path, f"row {i + 2}: needs a positive m/z and a name, got {table['mz'].iloc[i]!r}"
        )
    # names go into TSV cells: no tabs or line breaks
    names = [" ".join(str(n).split()) for n in names]
    return pd.DataFrame({"mz": mz, "name": names}).sort_values("mz", ignore_index=True)


def _metaspace_name(row) -> str:
    molecules = [m.strip() for m in str(row.moleculeNames).split(",") if m.strip()]
    shown = ", ".join(molecules[:MAX_MOLECULES]) + (
        ", ..." if len(molecules) > MAX_MOLECULES else ""
    )
    ion = f"{str(row.formula).strip()}{str(row.adduct).strip()}"
    return f"{ion}: {shown}" if shown else ion


def match_names(peak_mz: np.ndarray, names: pd.DataFrame, tolerance_ppm: float) -> np.ndarray:
    """Name of each peak ('' for none): every name within ``tolerance_ppm`` of its m/z; several
    different names are joined with ' | ' and marked '(ambiguous)'."""
    table_mz = names["mz"].to_numpy(float)
    out = np.full(len(peak_mz), "", dtype=object)
    for i, m in enumerate(np.asarray(peak_mz, dtype=float)):
        lo = np.searchsorted(table_mz, m * (1 - tolerance_ppm * 1e-6), side="left")
        hi = np.searchsorted(table_mz, m * (1 + tolerance_ppm * 1e-6), side="right")
        found = list(dict.fromkeys(names["name"].iloc[lo:hi]))  # distinct, in m/z order
        if len(found) == 1:
            out[i] = found[0]
        elif found:
            out[i] = " | ".join(found) + " (ambiguous)"
    return out


def write_names(path: str | os.PathLike[str], peak_mz: np.ndarray, names: np.ndarray) -> None:
    """Write names.tsv (``mz``, ``name``; one row per peak, ascending m/z) atomically."""
    from msicoloc.step import atomic_output

    with atomic_output(path) as tmp:
        pd.DataFrame({"mz": peak_mz, "name": names}).to_csv(
            tmp, sep="\t", index=False, float_format="%.6f"
        )


def read_peak_names(path: str | os.PathLike[str], mz: np.ndarray) -> np.ndarray:
    """The names of a names.tsv, checked against the ion images' m/z ('' where unnamed)."""
    table = pd.read_csv(path, sep="\t", dtype={"name": str}, keep_default_na=False)
    check_ion_mz(path, table["mz"], mz)
    return table["name"].to_numpy(object)

"""Give the peaks molecule names from a name table (METASPACE export or m/z-name TSV)."""

import logging
from pathlib import Path

from msicoloc.names import match_names, read_names, write_names
from msicoloc.peaks import read_peaks
from msicoloc.settings import NameSettings
from msicoloc.step import run_step

log = logging.getLogger("names")


def main(
    peaks: Path,
    names: Path,
    *,
    settings: NameSettings,
    table: str | None = None,
    dataset: str = "cli",
) -> None:
    """Write names.tsv (mz, name) for the peaks; '' where the table (the sheet's ``names``
    column, else names.table) names nothing, and no names at all without a table."""
    peak_mz = read_peaks(peaks)
    table = table or settings.table
    if table:
        found = match_names(peak_mz, read_names(table), settings.tolerance_ppm)
        ambiguous = sum("(ambiguous)" in n for n in found)
        log.info(
            "%d of %d peaks named from %s (%d ambiguous, within %g ppm)",
            sum(n != "" for n in found),
            len(peak_mz),
            table,
            ambiguous,
            settings.tolerance_ppm,
        )
    else:
        found = [""] * len(peak_mz)
        log.info("no name table (sheet column names, config names.table): peaks stay unnamed")
    write_names(names, peak_mz, found)


if __name__ == "__main__":
    run_step(main, inputs=["peaks"], outputs=["names"])

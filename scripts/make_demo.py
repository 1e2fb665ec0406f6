"""Write the embedded demo data set: a small synthetic MSI run whose ion classes are known."""

from pathlib import Path

from msicoloc import synth
from msicoloc.step import run_step


def main(imzml: Path, annotations: Path, *, seed: int = 0) -> None:
    """Write the demo imzML/ibd pair and the annotations of its ions.

    Parameters
    ----------
    imzml:
        The .imzML file to write; its .ibd goes beside it with the same stem.
    annotations:
        TSV to write with the true ``mz`` and class ``label`` of every ion, isotopes
        included.
    seed:
        Seed of every random draw; the same seed gives byte-identical files.
    """
    synth.make_demo(imzml, annotations, seed=seed)


if __name__ == "__main__":
    run_step(main, inputs=[], outputs=["imzml", "annotations"])

"""Shared code of the MSI co-localization workflow.

The package is split by dependency so that each step's conda env stays small:

- ``settings`` one typed settings object per step, built from its config section (stdlib)
- ``step``     run a step from Snakemake or the command line (stdlib; yaml for the CLI)
- ``imzml``    imzML index, checks and chunked reading (numpy, pyimzml)
- ``spectra``  the HDF5 spectra file: :func:`convert` writes it, ``SpectraFile`` reads it
- ``peaks``    peak picking on a mean spectrum; peaks.tsv (numpy, scipy, pandas)
- ``images``   one-pass ion-image extraction, normalisation, masks; ion_images.h5 (h5py)
- ``synth``    synthetic imzML data sets for the demo, tests and benchmarks
- ``models``, ``augment``, ``cluster``   self-supervised learning (torch, timm, sklearn)
- ``metrics``, ``report``   evaluation and HTML reports
"""

#: 13C - 12C mass difference (Da): the spacing of an ion's isotope peaks at charge 1.
C13_SHIFT = 1.00336


class InputError(Exception):
    """Bad input that the user can fix: reported as one line, never as a traceback.

    Parameters
    ----------
    path:
        The offending file (or sheet), named in the message.
    message:
        What is wrong with it, phrased for a scientist.
    """

    def __init__(self, path: object, message: str) -> None:
        self.path = str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")

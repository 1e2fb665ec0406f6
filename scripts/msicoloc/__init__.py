"""Shared code of the MSI co-localization workflow.

The package is split by dependency so that each step's conda env stays small:

- ``step``     run a step from Snakemake or the command line (stdlib only)
- ``io``       imzML reading, HDF5 spectra files (numpy, h5py, pyimzml)
- ``peaks``    peak picking on a mean spectrum (numpy, scipy)
- ``images``   one-pass ion-image extraction, normalisation, masks (numpy, h5py)
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

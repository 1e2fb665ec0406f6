"""Embed ion images with the trained encoder (and, for comparison, the untrained one)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import logging

import h5py
import torch

from msicoloc.step import atomic_output, run_step
from msicoloc.train import embed, load_encoder, read_ion_images

log = logging.getLogger("msicoloc.embed")


def main(
    images: Path,
    model: Path,
    embeddings: Path,
    *,
    batch_size: int = 256,
    device: str = "auto",
    threads: int = 1,
    dataset: str = "?",
) -> None:
    """Compute encoder features of every ion image.

    Parameters
    ----------
    images
        Ion images (HDF5 with images, mz, mask).
    model
        SimCLR checkpoint from the training step.
    embeddings
        Output HDF5: features (trained encoder), features_untrained (the encoder's starting
        point: same seed's random weights, or the pretrained weights) and mz.
    batch_size
        Ion images per forward pass (memory only).
    device
        auto, cpu or cuda.
    threads
        CPU threads for torch.
    dataset
        Data set id used in messages.
    """
    stack, mz, mask = read_ion_images(images)
    trained, meta = load_encoder(model)
    untrained, _ = load_encoder(model, initial=True)
    kw = {
        "image_size": meta["image_size"],
        "batch_size": batch_size,
        "device": device,
        "threads": threads,
    }
    features = embed(trained, stack, mask, **kw)
    features_untrained = embed(untrained, stack, mask, **kw)
    log.info("embedded %d ion images into %d features", *features.shape)
    with atomic_output(embeddings) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("features", data=features)
            f.create_dataset("features_untrained", data=features_untrained)
            f.create_dataset("mz", data=mz)
            f.attrs["encoder"] = meta["encoder_name"]
            f.attrs["image_size"] = meta["image_size"]
            f.attrs["untrained"] = "pretrained" if meta["pretrained"] else "random init"
            f.attrs["torch"] = str(torch.__version__)


if __name__ == "__main__":
    run_step(main, inputs=["images", "model"], outputs=["embeddings"])

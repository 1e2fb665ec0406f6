"""Embed ion images with the trained encoder (the comparison representations are made by
embed_compare, so that changing a comparison setting reruns nothing downstream of this)."""

import logging
from pathlib import Path

import torch

from msicoloc.embeddings import write_embeddings
from msicoloc.images import read_ion_images
from msicoloc.step import run_step
from msicoloc.train import embed, load_encoder

log = logging.getLogger("msicoloc.embed")


def main(
    images: Path,
    model: Path,
    embeddings: Path,
    *,
    inference_batch: int,
    device: str,
    threads: int = 1,
    dataset: str = "?",
) -> None:
    """Write embeddings.h5: the trained encoder's features of every ion image."""
    stack, mz, mask = read_ion_images(images, "small")
    trained, meta = load_encoder(model)
    run = {"batch_size": inference_batch, "device": device, "threads": threads}
    features = embed(trained, stack, mask, image_size=meta["image_size"], **run)
    log.info("embedded %d ion images into %d features", *features.shape)
    write_embeddings(
        embeddings,
        mz,
        {"features": features},
        encoder=meta["encoder_name"],
        image_size=meta["image_size"],
        untrained="pretrained" if meta["pretrained"] else "random init",
        torch=str(torch.__version__),
    )


if __name__ == "__main__":
    run_step(main, inputs=["images", "model"], outputs=["embeddings"])

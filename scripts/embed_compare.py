"""Embed ion images for the comparison methods: the untrained encoder, a convolutional
autoencoder (msiPL-style) and an ImageNet-pretrained CNN (where its weights are installed)."""

import logging
from pathlib import Path

from msicoloc.embeddings import write_embeddings
from msicoloc.images import read_ion_images
from msicoloc.models import installed_imagenet_weights
from msicoloc.settings import CompareSettings
from msicoloc.step import run_step
from msicoloc.train import embed, imagenet_features, load_encoder, train_autoencoder

log = logging.getLogger("msicoloc.embed_compare")


def main(
    images: Path,
    model: Path,
    embeddings: Path,
    *,
    compare: CompareSettings,
    seed: int,
    inference_batch: int,
    device: str,
    threads: int = 1,
    dataset: str = "?",
) -> None:
    """Write embeddings_compare.h5: features_untrained (the trained encoder's network as
    initialised), features_autoencoder and, with weights, features_imagenet."""
    stack, mz, mask = read_ion_images(images, "small")
    untrained, meta = load_encoder(model, initial=True)
    run = {"batch_size": inference_batch, "device": device, "threads": threads}
    features = {
        "features_untrained": embed(untrained, stack, mask, image_size=meta["image_size"], **run)
    }
    features["features_autoencoder"] = train_autoencoder(
        stack, mask, compare.autoencoder, seed=seed, device=device, threads=threads
    )
    imagenet = compare.imagenet
    weights = installed_imagenet_weights() if imagenet.weights == "auto" else imagenet.weights
    if weights:
        features["features_imagenet"] = imagenet_features(
            stack,
            mask,
            encoder_name=imagenet.encoder,
            weights=weights,
            image_size=imagenet.image_size,
            **run,
        )
    else:
        log.info("no ImageNet weights (compare.imagenet.weights): that comparison is left out")
    log.info("comparison features: %s", ", ".join(features))
    write_embeddings(embeddings, mz, features)


if __name__ == "__main__":
    run_step(main, inputs=["images", "model"], outputs=["embeddings"])

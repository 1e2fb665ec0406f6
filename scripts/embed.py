"""Embed ion images: the trained encoder, and for comparison the untrained one, a
convolutional autoencoder and an ImageNet-pretrained CNN (where its weights are installed)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import logging

import h5py
import torch

from msicoloc.models import installed_imagenet_weights
from msicoloc.step import atomic_output, run_step
from msicoloc.train import (
    embed,
    imagenet_features,
    load_encoder,
    read_ion_images,
    train_autoencoder,
)

log = logging.getLogger("msicoloc.embed")


def main(
    images: Path,
    model: Path,
    embeddings: Path,
    *,
    autoencoder: dict,
    imagenet: dict,
    seed: int = 0,
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
        point: same seed's random weights, or the pretrained weights), features_autoencoder,
        features_imagenet (only where ImageNet weights are available) and mz.
    autoencoder
        The config's compare.autoencoder section (image_size, latent_dim, epochs, batch_size,
        lr).
    imagenet
        The config's compare.imagenet section (encoder, weights: auto, a file or null,
        image_size).
    seed
        Seed of the autoencoder's training.
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
    extra = {
        "features_autoencoder": train_autoencoder(
            stack, mask, **autoencoder, seed=seed, device=device, threads=threads
        )
    }
    weights = installed_imagenet_weights() if imagenet["weights"] == "auto" else imagenet["weights"]
    if weights:
        extra["features_imagenet"] = imagenet_features(
            stack,
            mask,
            encoder_name=imagenet["encoder"],
            weights=weights,
            image_size=imagenet["image_size"],
            batch_size=batch_size,
            device=device,
            threads=threads,
        )
    else:
        log.info("no ImageNet weights (compare.imagenet.weights): that comparison is left out")
    with atomic_output(embeddings) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("features", data=features)
            f.create_dataset("features_untrained", data=features_untrained)
            f.create_dataset("mz", data=mz)
            for name, values in extra.items():
                f.create_dataset(name, data=values)
            f.attrs["encoder"] = meta["encoder_name"]
            f.attrs["image_size"] = meta["image_size"]
            f.attrs["untrained"] = "pretrained" if meta["pretrained"] else "random init"
            f.attrs["torch"] = str(torch.__version__)


if __name__ == "__main__":
    run_step(
        main,
        inputs=["images", "model"],
        outputs=["embeddings"],
        execution={"batch_size": ("embed", "batch_size"), "device": ("device",)},
    )

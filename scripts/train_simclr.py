"""Train an ion-image encoder with SimCLR (contrastive self-supervised learning)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import logging

import torch

from msicoloc.augment import SIMCLR, augment_params
from msicoloc.step import atomic_output, run_step
from msicoloc.train import (
    check_images,
    encoder_checkpoint,
    read_ion_images,
    save_history,
    train_simclr,
)

log = logging.getLogger("msicoloc.train_simclr")


def main(
    images: Path,
    model: Path,
    history: Path,
    *,
    encoder: str = "mobilenetv3_small_100",
    in_chans: int = 1,
    pretrained: bool | str = False,
    coord_channels: bool = True,
    image_size: int = 32,
    batch_size: int = 64,
    epochs: int = 150,
    lr: float = 1e-3,
    weight_decay: float = 1e-6,
    temperature: float = 0.2,
    projection_dim: int = 128,
    augment: dict | None = None,
    seed: int = 0,
    device: str = "auto",
    channels_last: bool = True,
    threads: int = 1,
    dataset: str = "?",
) -> None:
    """Train an ion-image encoder with SimCLR.

    Parameters
    ----------
    images
        Ion images (HDF5 with images, mz, mask).
    model
        Output checkpoint: encoder weights and what is needed to rebuild the encoder.
    history
        Output TSV of per-epoch loss, learning rate and seconds.
    encoder
        timm model name.
    in_chans
        Encoder input channels: 1 (gray) or 3 (gray copied to RGB, as in the reference).
    pretrained
        Initial weights: false (random), true (timm hub, needs internet) or a weights file.
    coord_channels
        Add two channels with each pixel's row and column to the encoder's input, so that it
        can tell where signal is, not only what it looks like.
    image_size
        Images are fitted (aspect kept, zero-padded) into squares of this side.
    batch_size
        Ion images per training step (at most the number of ion images).
    epochs
        Passes over the ion images.
    lr
        Adam learning rate (cosine-annealed).
    weight_decay
        Adam weight decay.
    temperature
        NT-Xent temperature.
    projection_dim
        Width of the projection head output used by the loss.
    augment
        Augmentation strengths (blur_kernel, blur_sigma, brightness, contrast, noise_sigma,
        noise_threshold, noise_reference, rotation, zero_off_tissue); keys left out keep the
        reference's "medium" setting.
    seed
        Random seed (weights, augmentations, shuffling).
    device
        auto, cpu or cuda.
    channels_last
        Channels-last memory layout (faster on CPU).
    threads
        CPU threads for torch.
    dataset
        Data set id used in messages.
    """
    stack, _, mask = read_ion_images(images)
    check_images(stack, images, batch_size=batch_size, batch_key="simclr.batch_size")
    log.info(
        "SimCLR on %d ion images of %dx%d, encoder %s, %d px, %d epochs",
        stack.shape[0],
        *stack.shape[1:],
        encoder,
        image_size,
        epochs,
    )
    aug = augment_params(SIMCLR, augment)
    enc, records = train_simclr(
        stack,
        mask,
        encoder_name=encoder,
        in_chans=in_chans,
        pretrained=pretrained,
        coord_channels=coord_channels,
        image_size=image_size,
        batch_size=batch_size,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        temperature=temperature,
        projection_dim=projection_dim,
        augment_params=aug,
        seed=seed,
        device=device,
        threads=threads,
        channels_last=channels_last,
        log_epoch=lambda r: log.info(
            "epoch %d: loss %.4f, lr %.2e, %.1f s", r["epoch"], r["loss"], r["lr"], r["seconds"]
        ),
    )
    checkpoint = encoder_checkpoint(
        enc,
        encoder_name=encoder,
        in_chans=in_chans,
        image_size=image_size,
        pretrained=pretrained,
        seed=seed,
    )
    # Saved through a file object: torch then names the archive "archive" instead of
    # after the (random) temporary file, so the same weights give the same bytes.
    with atomic_output(model) as tmp, open(tmp, "wb") as f:
        torch.save(checkpoint, f)
    with atomic_output(history) as tmp:
        save_history(records, tmp, ["epoch", "loss", "lr", "seconds"])


if __name__ == "__main__":
    run_step(
        main,
        inputs=["images"],
        outputs=["model", "history"],
        execution={"device": ("device",)},
    )

"""Train an ion-image encoder with SimCLR (contrastive self-supervised learning)."""

import logging
from pathlib import Path

from msicoloc.images import read_ion_images
from msicoloc.settings import SimCLRSettings
from msicoloc.step import run_step
from msicoloc.train import (
    check_images,
    encoder_checkpoint,
    save_checkpoint,
    save_history,
    train_simclr,
)

log = logging.getLogger("msicoloc.train_simclr")


def main(
    images: Path,
    model: Path,
    history: Path,
    *,
    settings: SimCLRSettings,
    seed: int,
    device: str,
    threads: int = 1,
    dataset: str = "?",
) -> None:
    """Write the encoder checkpoint (model/simclr.pt) and its per-epoch loss history."""
    stack, _, mask = read_ion_images(images, "small")
    check_images(stack, images, batch_size=settings.batch_size, batch_key="simclr.batch_size")
    log.info(
        "SimCLR on %d ion images of %dx%d, encoder %s, %d px, %d epochs",
        stack.shape[0],
        *stack.shape[1:],
        settings.encoder,
        settings.image_size,
        settings.epochs,
    )
    encoder, records = train_simclr(
        stack,
        mask,
        settings,
        seed=seed,
        device=device,
        threads=threads,
        log_epoch=lambda r: log.info(
            "epoch %d: loss %.4f, lr %.2e, %.1f s", r["epoch"], r["loss"], r["lr"], r["seconds"]
        ),
    )
    checkpoint = encoder_checkpoint(
        encoder,
        encoder_name=settings.encoder,
        in_chans=settings.in_chans,
        image_size=settings.image_size,
        pretrained=settings.pretrained,
        seed=seed,
    )
    save_checkpoint(model, checkpoint)
    save_history(records, history, ["epoch", "loss", "lr", "seconds"])


if __name__ == "__main__":
    run_step(main, inputs=["images"], outputs=["model", "history"])

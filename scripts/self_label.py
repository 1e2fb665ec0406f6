"""Refine the spectral clusters by self-labeling (fine-tuning encoder and classifier)."""

import logging
from pathlib import Path

import numpy as np

from msicoloc.cluster import read_cluster_labels, write_clusters
from msicoloc.images import read_ion_images
from msicoloc.settings import SelfLabelSettings
from msicoloc.step import run_step
from msicoloc.train import (
    check_images,
    encoder_checkpoint,
    load_encoder,
    save_checkpoint,
    save_history,
    self_label,
)

log = logging.getLogger("msicoloc.self_label")


def main(
    images: Path,
    model: Path,
    sc_clusters: Path,
    clusters: Path,
    history: Path,
    finetuned_model: Path,
    *,
    settings: SelfLabelSettings,
    channels_last: bool,
    seed: int,
    device: str,
    threads: int = 1,
    dataset: str = "?",
) -> None:
    """Write clusters_selflabel.tsv, the fine-tuning history and the fine-tuned checkpoint.

    ``channels_last`` is simclr.channels_last: the network's memory layout, as in training.
    """
    stack, mz, mask = read_ion_images(images, "small")
    sc = read_cluster_labels(sc_clusters, mz)
    n_clusters = int(sc.max()) + 1
    check_images(
        stack,
        images,
        n_clusters=n_clusters,
        batch_size=settings.batch_size,
        batch_key="self_label.batch_size",
    )
    encoder, meta = load_encoder(model)
    labels, conf, records, net = self_label(
        encoder,
        stack,
        mask,
        sc,
        settings,
        n_clusters=n_clusters,
        image_size=meta["image_size"],
        seed=seed,
        device=device,
        threads=threads,
        channels_last=channels_last,
        log_epoch=lambda r: log.info(
            "epoch %d: loss %.4f, confident %.0f%%",
            r["epoch"],
            r["loss"],
            100 * r["confident_share"],
        ),
    )
    # Class k of the classifier started as spectral cluster k: ids stay comparable.
    log.info(
        "%d clusters used; %d of %d ion images moved from their spectral cluster",
        len(np.unique(labels)),
        int(np.sum(labels != sc)),
        len(labels),
    )
    write_clusters(clusters, mz, cluster=labels, confidence=conf, sc_cluster=sc)
    save_history(records, history, ["epoch", "loss", "confident_share"])
    checkpoint = encoder_checkpoint(
        net.encoder,
        encoder_name=meta["encoder_name"],
        in_chans=meta["in_chans"],
        image_size=meta["image_size"],
        pretrained=meta["pretrained"],
        seed=meta["seed"],
        head={k: v.detach().cpu() for k, v in net.head.state_dict().items()},
        n_clusters=n_clusters,
    )
    save_checkpoint(finetuned_model, checkpoint)


if __name__ == "__main__":
    run_step(
        main,
        inputs=["images", "model", "sc_clusters"],
        outputs=["clusters", "history", "finetuned_model"],
    )

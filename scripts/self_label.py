"""Refine the spectral clusters by self-labeling (fine-tuning encoder and classifier)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import logging
from typing import Literal

import numpy as np
import torch

from msicoloc import InputError
from msicoloc.augment import STRONG, WEAK, augment_params
from msicoloc.cluster import read_cluster_labels
from msicoloc.step import atomic_output, run_step
from msicoloc.train import (
    check_images,
    encoder_checkpoint,
    load_encoder,
    read_ion_images,
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
    batch_size: int = 64,
    init_epochs: int = 20,
    init_lr: float = 1e-3,
    epochs: int = 15,
    lr: float = 1e-4,
    weight_decay: float = 1e-6,
    confidence: float = 0.9,
    confidence_mode: Literal["quantile", "threshold"] = "threshold",
    reassign_confidence: float = 0.9,
    class_balanced: bool = True,
    freeze_bn: bool = True,
    weak: dict | None = None,
    strong: dict | None = None,
    seed: int = 0,
    device: str = "auto",
    channels_last: bool = True,
    threads: int = 1,
    dataset: str = "?",
) -> None:
    """Refine spectral-clustering labels by self-labeling.

    Parameters
    ----------
    images
        Ion images (HDF5 with images, mz, mask).
    model
        SimCLR checkpoint from the training step.
    sc_clusters
        Spectral clusters TSV (mz, cluster) from the clustering step.
    clusters
        Output TSV sorted by mz: mz, cluster (same ids as the spectral clusters, 0 = the
        largest of them), confidence (classifier probability of that cluster), sc_cluster
        (the spectral cluster it started from).
    history
        Output TSV of per-epoch loss and share of confident images.
    finetuned_model
        Output checkpoint of the fine-tuned encoder and classifier head.
    batch_size
        Ion images per step (at most the number of ion images).
    init_epochs
        Epochs of the linear classifier fitted on frozen features first.
    init_lr
        Learning rate of that classifier.
    epochs
        Self-labeling epochs of the whole network (0: keep the initial classifier's labels).
    lr
        Adam learning rate of self-labeling (cosine-annealed).
    weight_decay
        Adam weight decay.
    confidence
        Confidence cut on the weak view's max softmax: a quantile of each batch
        (confidence_mode quantile; 0.4 keeps the top 60 percent) or a fixed softmax
        value (confidence_mode threshold; the paper's 0.9).
    confidence_mode
        quantile or threshold.
    reassign_confidence
        An ion image leaves its spectral cluster only when the fine-tuned classifier gives
        its new cluster at least this probability (0 = always take the classifier's label).
    class_balanced
        Weight pseudo-classes by inverse frequency among confident images.
    freeze_bn
        Keep batch-norm statistics fixed while fine-tuning (scale and shift still learn).
    weak
        Strengths of the weak view (gives the pseudo-label), as in train_simclr's augment;
        keys left out keep the reference's weak setting.
    strong
        Strengths of the strong view (the loss is computed on it); keys left out keep the
        reference's strong setting.
    seed
        Random seed (classifier weights, augmentations, shuffling).
    device
        auto, cpu or cuda.
    channels_last
        Channels-last memory layout (faster on CPU).
    threads
        CPU threads for torch.
    dataset
        Data set id used in messages.
    """
    stack, mz, mask = read_ion_images(images)
    sc = read_cluster_labels(sc_clusters, mz)
    n_clusters = int(sc.max()) + 1
    check_images(
        stack,
        images,
        n_clusters=n_clusters,
        batch_size=batch_size,
        batch_key="self_label.batch_size",
    )
    encoder, meta = load_encoder(model)
    quantile = confidence if confidence_mode == "quantile" else None
    threshold = confidence if confidence_mode == "threshold" else None
    if not 0 <= confidence <= 1:
        raise InputError(f"confidence={confidence}", "must lie in [0, 1]")
    labels, conf, records, net = self_label(
        encoder,
        stack,
        mask,
        sc,
        n_clusters=n_clusters,
        image_size=meta["image_size"],
        batch_size=batch_size,
        init_epochs=init_epochs,
        init_lr=init_lr,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        confidence_threshold=threshold,
        confidence_quantile=quantile,
        reassign_confidence=reassign_confidence,
        class_balanced=class_balanced,
        freeze_bn=freeze_bn,
        weak=augment_params(WEAK, weak),
        strong=augment_params(STRONG, strong),
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
    order = np.argsort(mz, kind="stable")
    table = "".join(f"{mz[i]:.6f}\t{labels[i]}\t{conf[i]:.4f}\t{sc[i]}\n" for i in order)
    with atomic_output(clusters) as tmp:
        tmp.write_text("mz\tcluster\tconfidence\tsc_cluster\n" + table)
    with atomic_output(history) as tmp:
        save_history(records, tmp, ["epoch", "loss", "confident_share"])
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
    # Saved through a file object: torch then names the archive "archive" instead of
    # after the (random) temporary file, so the same weights give the same bytes.
    with atomic_output(finetuned_model) as tmp, open(tmp, "wb") as f:
        torch.save(checkpoint, f)


if __name__ == "__main__":
    run_step(
        main,
        inputs=["images", "model", "sc_clusters"],
        outputs=["clusters", "history", "finetuned_model"],
        execution={"device": ("device",)},
    )

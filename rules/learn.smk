# Self-supervised learning. train_simclr and self_label are GPU jobs: they carry the
# resources of config["resources"]["gpu"] so a SLURM profile sends them to a GPU partition and
# a workstation runs at most as many at once as it has GPUs. They also run on CPU only.


rule train_simclr:
    input:
        images="results/{dataset}/ion_images.h5",
    output:
        model="results/{dataset}/model/simclr.pt",
        history="results/{dataset}/model/simclr_history.tsv",
    log:
        "results/{dataset}/logs/train_simclr.log",
    benchmark:
        "results/{dataset}/benchmarks/train_simclr.tsv"
    conda:
        "../envs/learn.yaml"
    threads: config["resources"]["gpu"]["threads"]
    resources:
        **job_resources("gpu"),
    params:
        encoder=config["simclr"]["encoder"],
        in_chans=config["simclr"]["in_chans"],
        coord_channels=config["simclr"]["coord_channels"],
        pretrained=config["simclr"]["pretrained"],
        image_size=config["simclr"]["image_size"],
        batch_size=config["simclr"]["batch_size"],
        epochs=config["simclr"]["epochs"],
        lr=config["simclr"]["lr"],
        weight_decay=config["simclr"]["weight_decay"],
        temperature=config["simclr"]["temperature"],
        projection_dim=config["simclr"]["projection_dim"],
        augment=config["simclr"]["augment"],
        seed=config["seed"],
        channels_last=config["simclr"]["channels_last"],
    script:
        "../scripts/train_simclr.py"


rule embed:
    input:
        images="results/{dataset}/ion_images.h5",
        model="results/{dataset}/model/simclr.pt",
    output:
        embeddings="results/{dataset}/embeddings.h5",
    log:
        "results/{dataset}/logs/embed.log",
    benchmark:
        "results/{dataset}/benchmarks/embed.tsv"
    conda:
        "../envs/learn.yaml"
    threads: config["resources"]["gpu"]["threads"]
    resources:
        **job_resources("cpu"),
    params:
        autoencoder=config["compare"]["autoencoder"],
        imagenet=config["compare"]["imagenet"],
        seed=config["seed"],
    script:
        "../scripts/embed.py"


rule cluster:
    input:
        embeddings="results/{dataset}/embeddings.h5",
    output:
        clusters="results/{dataset}/clusters_sc.tsv",
    log:
        "results/{dataset}/logs/cluster.log",
    benchmark:
        "results/{dataset}/benchmarks/cluster.tsv"
    conda:
        "../envs/learn.yaml"
    threads: 2
    resources:
        **job_resources("cpu"),
    params:
        n_clusters=n_clusters,
        n_neighbors=config["cluster"]["n_neighbors"],
        affinity=config["cluster"]["affinity"],
        eigen_solver=config["cluster"]["eigen_solver"],
        assign_labels=config["cluster"]["assign_labels"],
        seed=config["seed"],
    script:
        "../scripts/cluster.py"


rule self_label:
    input:
        images="results/{dataset}/ion_images.h5",
        model="results/{dataset}/model/simclr.pt",
        sc_clusters="results/{dataset}/clusters_sc.tsv",
    output:
        clusters="results/{dataset}/clusters_selflabel.tsv",
        history="results/{dataset}/model/self_label_history.tsv",
        finetuned_model="results/{dataset}/model/self_label.pt",
    log:
        "results/{dataset}/logs/self_label.log",
    benchmark:
        "results/{dataset}/benchmarks/self_label.tsv"
    conda:
        "../envs/learn.yaml"
    threads: config["resources"]["gpu"]["threads"]
    resources:
        **job_resources("gpu"),
    params:
        batch_size=config["self_label"]["batch_size"],
        init_epochs=config["self_label"]["init_epochs"],
        init_lr=config["self_label"]["init_lr"],
        epochs=config["self_label"]["epochs"],
        lr=config["self_label"]["lr"],
        weight_decay=config["self_label"]["weight_decay"],
        confidence=config["self_label"]["confidence"],
        confidence_mode=config["self_label"]["confidence_mode"],
        reassign_confidence=config["self_label"]["reassign_confidence"],
        class_balanced=config["self_label"]["class_balanced"],
        freeze_bn=config["self_label"]["freeze_bn"],
        weak=config["self_label"]["weak"],
        strong=config["self_label"]["strong"],
        seed=config["seed"],
        channels_last=config["simclr"]["channels_last"],
    script:
        "../scripts/self_label.py"

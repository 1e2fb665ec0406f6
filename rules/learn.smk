# Self-supervised learning. train_simclr and self_label are GPU jobs: they carry the
# resources of config["resources"]["gpu"] so a SLURM profile sends them to a GPU partition and
# a workstation runs at most as many at once as it has GPUs. They also run on CPU only.


rule train_simclr:
    input:
        images=rules.ion_images.output.images,
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
        settings=settings("simclr"),
        seed=config["seed"],
    script:
        "../scripts/train_simclr.py"


rule embed:
    input:
        images=rules.ion_images.output.images,
        model=rules.train_simclr.output.model,
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
    script:
        "../scripts/embed.py"


rule embed_compare:
    input:
        images=rules.ion_images.output.images,
        model=rules.train_simclr.output.model,
    output:
        embeddings="results/{dataset}/embeddings_compare.h5",
    log:
        "results/{dataset}/logs/embed_compare.log",
    benchmark:
        "results/{dataset}/benchmarks/embed_compare.tsv"
    conda:
        "../envs/learn.yaml"
    threads: config["resources"]["gpu"]["threads"]
    resources:
        **job_resources("cpu"),
    params:
        compare=settings("compare"),
        seed=config["seed"],
    script:
        "../scripts/embed_compare.py"


rule cluster:
    input:
        embeddings=rules.embed.output.embeddings,
        n_clusters=rules.choose_k.output.n_clusters,
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
        settings=cluster_settings,
        seed=config["seed"],
    script:
        "../scripts/cluster.py"


rule self_label:
    input:
        images=rules.ion_images.output.images,
        model=rules.train_simclr.output.model,
        sc_clusters=rules.cluster.output.clusters,
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
        settings=settings("self_label"),
        channels_last=config["simclr"]["channels_last"],
        seed=config["seed"],
    script:
        "../scripts/self_label.py"

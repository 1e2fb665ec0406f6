rule answer:
    input:
        images=rules.ion_images.output.images,
        selflabel_clusters=rules.self_label.output.clusters,
        names=rules.names.output.names,
        n_clusters=rules.choose_k.output.n_clusters,
    output:
        clusters="results/{dataset}/clusters.tsv",
    log:
        "results/{dataset}/logs/answer.log",
    benchmark:
        "results/{dataset}/benchmarks/answer.tsv"
    conda:
        "../envs/report.yaml"
    threads: 2
    resources:
        **job_resources("cpu"),
    params:
        settings=settings("answer"),
        cluster=cluster_settings,
        smooth_sigma=config["compare"]["smooth_sigma"],
        seed=config["seed"],
    script:
        "../scripts/answer.py"


rule evaluate:
    input:
        images=rules.ion_images.output.images,
        embeddings=rules.embed.output.embeddings,
        compare_embeddings=rules.embed_compare.output.embeddings,
        sc_clusters=rules.cluster.output.clusters,
        n_clusters=rules.choose_k.output.n_clusters,
        selflabel_clusters=rules.self_label.output.clusters,
        clusters=rules.answer.output.clusters,
        annotations=lambda wc: dataset(wc)["annotations"] or [],
    output:
        metrics="results/{dataset}/metrics.json",
        isotopes="results/{dataset}/isotopes.tsv",
        colocalization="results/{dataset}/colocalization.tsv",
        methods_table="results/{dataset}/methods.tsv",
        network="results/{dataset}/network.graphml",
        members="results/{dataset}/cluster_members.tsv",
    log:
        "results/{dataset}/logs/evaluate.log",
    benchmark:
        "results/{dataset}/benchmarks/evaluate.tsv"
    conda:
        "../envs/report.yaml"
    threads: 2
    resources:
        **job_resources("cpu"),
    params:
        settings=settings("evaluate"),
        cluster=cluster_settings,
        compare=settings("compare"),
        answer=settings("answer"),
        seed=config["seed"],
        annotations=lambda wc: dataset(wc)["annotations"],
    script:
        "../scripts/evaluate.py"

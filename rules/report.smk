# Reports: one self-contained HTML page per data set, and the overview of all data sets.
# Both also appear in Snakemake's own report:  snakemake --report report.html


rule report:
    input:
        spectra="results/{dataset}/spectra.h5",
        images="results/{dataset}/ion_images.h5",
        embeddings="results/{dataset}/embeddings.h5",
        clusters="results/{dataset}/clusters.tsv",
        metrics="results/{dataset}/metrics.json",
        methods_table="results/{dataset}/methods.tsv",
        isotopes="results/{dataset}/isotopes.tsv",
        colocalization="results/{dataset}/colocalization.tsv",
        simclr_history="results/{dataset}/model/simclr_history.tsv",
        self_label_history="results/{dataset}/model/self_label_history.tsv",
    output:
        html=report(
            "results/{dataset}/report.html",
            caption="../resources/captions/report.rst",
            category="{dataset}",
            labels={"figure": "report"},
        ),
        cluster_means=report(
            directory("results/{dataset}/cluster_means"),
            patterns=["{name}.png"],
            caption="../resources/captions/cluster_means.rst",
            category="{dataset}",
            labels={"figure": "cluster mean {name}"},
        ),
    log:
        "results/{dataset}/logs/report.log",
    benchmark:
        "results/{dataset}/benchmarks/report.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        **job_resources("cpu"),
    params:
        benchmarks="results/{dataset}/benchmarks",
        parameters=science_parameters(),
        n_clusters=n_clusters,
        mz_list=mz_list,
        seed=config["seed"],
        percentile=config["report"]["percentile"],
        max_thumbnails=config["report"]["max_thumbnails"],
        umap_n_neighbors=config["report"]["umap_n_neighbors"],
        umap_min_dist=config["report"]["umap_min_dist"],
    script:
        "../scripts/report.py"


rule summary:
    input:
        metrics=expand("results/{dataset}/metrics.json", dataset=DATASETS),
        reports=expand("results/{dataset}/report.html", dataset=DATASETS),
    output:
        summary=report(
            "results/summary.html",
            caption="../resources/captions/summary.rst",
            category="summary",
        ),
    log:
        "logs/summary.log",
    conda:
        "../envs/report.yaml"
    resources:
        **job_resources("cpu"),
    params:
        datasets=list(DATASETS),
    script:
        "../scripts/summary.py"

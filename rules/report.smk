# Reports: one self-contained HTML page per data set, and the overview of all data sets.
# Both also appear in Snakemake's own report:  snakemake --report report.html


rule report:
    input:
        spectra=rules.convert.output.spectra,
        images=rules.ion_images.output.images,
        embeddings=rules.embed.output.embeddings,
        clusters=rules.answer.output.clusters,
        metrics=rules.evaluate.output.metrics,
        methods_table=rules.evaluate.output.methods_table,
        isotopes=rules.evaluate.output.isotopes,
        colocalization=rules.evaluate.output.colocalization,
        simclr_history=rules.train_simclr.output.history,
        self_label_history=rules.self_label.output.history,
        k_choice=rules.choose_k.output.n_clusters,
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
        steps=STEPS,
        parameters=science_parameters(),
        n_clusters=n_clusters,
        mz_list=mz_list,
        settings=settings("report"),
        seed=config["seed"],
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

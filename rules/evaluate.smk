rule answer:
    input:
        images="results/{dataset}/ion_images.h5",
        selflabel_clusters=rules.self_label.output.clusters,
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
        method=config["answer"]["method"],
        compare=config["compare"],
        n_clusters=n_clusters,
        cluster=config["cluster"],
        seed=config["seed"],
    script:
        "../scripts/answer.py"


rule evaluate:
    input:
        images="results/{dataset}/ion_images.h5",
        embeddings="results/{dataset}/embeddings.h5",
        sc_clusters="results/{dataset}/clusters_sc.tsv",
        selflabel_clusters=rules.self_label.output.clusters,
        clusters=rules.answer.output.clusters,
        annotations=lambda wc: dataset(wc)["annotations"] or [],
    output:
        metrics="results/{dataset}/metrics.json",
        isotopes="results/{dataset}/isotopes.tsv",
        colocalization="results/{dataset}/colocalization.tsv",
        methods_table="results/{dataset}/methods.tsv",
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
        annotations=lambda wc: dataset(wc)["annotations"],
        n_clusters=n_clusters,
        n_neighbors=config["cluster"]["n_neighbors"],
        affinity=config["cluster"]["affinity"],
        eigen_solver=config["cluster"]["eigen_solver"],
        assign_labels=config["cluster"]["assign_labels"],
        compare=config["compare"],
        answer_method=config["answer"]["method"],
        seed=config["seed"],
        annotation_tolerance_ppm=config["evaluate"]["annotation_tolerance_ppm"],
        isotope_tolerance_ppm=config["evaluate"]["isotope_tolerance_ppm"],
        isotope_charges=config["evaluate"]["isotope_charges"],
        isotope_min_correlation=config["evaluate"]["isotope_min_correlation"],
        isotope_max_order=config["evaluate"]["isotope_max_order"],
        top_n=config["evaluate"]["top_n"],
    script:
        "../scripts/evaluate.py"

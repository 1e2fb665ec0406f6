rule evaluate:
    input:
        images="results/{dataset}/ion_images.h5",
        embeddings="results/{dataset}/embeddings.h5",
        sc_clusters="results/{dataset}/clusters_sc.tsv",
        clusters="results/{dataset}/clusters.tsv",
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
        seed=config["seed"],
        annotation_tolerance_ppm=config["evaluate"]["annotation_tolerance_ppm"],
        isotope_tolerance_ppm=config["evaluate"]["isotope_tolerance_ppm"],
        isotope_charges=config["evaluate"]["isotope_charges"],
        isotope_min_correlation=config["evaluate"]["isotope_min_correlation"],
        isotope_max_order=config["evaluate"]["isotope_max_order"],
        top_n=config["evaluate"]["top_n"],
    script:
        "../scripts/evaluate.py"

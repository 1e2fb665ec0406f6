rule convert:
    input:
        imzml=lambda wc: dataset(wc)["imzml"],
        ibd=lambda wc: ibd_path(dataset(wc)["imzml"]),
    output:
        spectra="results/{dataset}/spectra.h5",
    log:
        "results/{dataset}/logs/convert.log",
    benchmark:
        "results/{dataset}/benchmarks/convert.tsv"
    conda:
        "../envs/preprocess.yaml"
    resources:
        **job_resources("cpu"),
    params:
        settings=settings("convert"),
    script:
        "../scripts/convert.py"


rule peaks:
    input:
        spectra=rules.convert.output.spectra,
        mz_list=lambda wc: mz_list(wc) or [],
    output:
        peaks="results/{dataset}/peaks.tsv",
    log:
        "results/{dataset}/logs/peaks.log",
    benchmark:
        "results/{dataset}/benchmarks/peaks.tsv"
    conda:
        "../envs/preprocess.yaml"
    resources:
        **job_resources("cpu"),
    params:
        settings=settings("peaks"),
        mz_list=mz_list,
        ion_images=settings("ion_images"),
    script:
        "../scripts/peaks.py"


rule names:
    input:
        peaks=rules.peaks.output.peaks,
        table=lambda wc: name_table(wc) or [],
    output:
        names="results/{dataset}/names.tsv",
    log:
        "results/{dataset}/logs/names.log",
    benchmark:
        "results/{dataset}/benchmarks/names.tsv"
    conda:
        "../envs/preprocess.yaml"
    resources:
        **job_resources("cpu"),
    params:
        settings=settings("names"),
        table=name_table,
    script:
        "../scripts/names.py"


rule ion_images:
    input:
        spectra=rules.convert.output.spectra,
        peaks=rules.peaks.output.peaks,
    output:
        images="results/{dataset}/ion_images.h5",
        montage_png=report(
            "results/{dataset}/ion_images.png",
            category="{dataset}",
            caption="../resources/captions/montage.rst",
        ),
    log:
        "results/{dataset}/logs/ion_images.log",
    benchmark:
        "results/{dataset}/benchmarks/ion_images.tsv"
    conda:
        "../envs/preprocess.yaml"
    resources:
        **job_resources("cpu"),
    params:
        settings=settings("ion_images"),
    script:
        "../scripts/ion_images.py"


rule choose_k:
    input:
        images=rules.ion_images.output.images,
    output:
        n_clusters="results/{dataset}/n_clusters.json",
    log:
        "results/{dataset}/logs/choose_k.log",
    benchmark:
        "results/{dataset}/benchmarks/choose_k.tsv"
    conda:
        "../envs/report.yaml"
    threads: 2
    resources:
        **job_resources("cpu"),
    params:
        cluster=cluster_settings,
        smooth_sigma=auto_k_smoothing,
        seed=config["seed"],
    script:
        "../scripts/choose_k.py"

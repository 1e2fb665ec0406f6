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
        mean_bin_ppm=config["convert"]["mean_bin_ppm"],
        verify_checksum=config["convert"]["verify_checksum"],
    script:
        "../scripts/convert.py"


rule peaks:
    input:
        spectra="results/{dataset}/spectra.h5",
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
        mz_list=mz_list,
        snr=config["peaks"]["snr"],
        min_separation_ppm=config["peaks"]["min_separation_ppm"],
        min_pixel_share=config["peaks"]["min_pixel_share"],
        smooth_ppm=config["peaks"]["smooth_ppm"],
        tolerance_ppm=config["ion_images"]["tolerance_ppm"],
        noise_window_mz=config["peaks"]["noise_window_mz"],
        mz_min=config["peaks"]["mz_min"],
        mz_max=config["peaks"]["mz_max"],
        max_peaks=config["peaks"]["max_peaks"],
    script:
        "../scripts/peaks.py"


rule ion_images:
    input:
        spectra="results/{dataset}/spectra.h5",
        peaks="results/{dataset}/peaks.tsv",
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
        tolerance_ppm=config["ion_images"]["tolerance_ppm"],
        normalisation=config["ion_images"]["normalisation"],
        hotspot_quantile=config["ion_images"]["hotspot_quantile"],
        mask=config["ion_images"]["mask"],
        montage_max=config["ion_images"]["montage_max"],
    script:
        "../scripts/ion_images.py"

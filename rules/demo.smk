rule make_demo:
    output:
        imzml="resources/demo/demo.imzML",
        ibd="resources/demo/demo.ibd",
        annotations="resources/demo/demo_annotations.tsv",
    log:
        "logs/make_demo.log",
    conda:
        "../envs/preprocess.yaml"
    resources:
        **job_resources("cpu"),
    params:
        seed=config["demo"]["seed"],
    script:
        "../scripts/make_demo.py"

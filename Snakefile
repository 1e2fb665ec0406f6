# Self-supervised co-localization of MSI ion images (after Hu, Bindu & Laskin, Chem. Sci. 2022).
# The pipeline, per data set in the sample sheet:
#   imzML -> convert -> peaks -> ion_images -> train_simclr -> embed -> cluster -> self_label
#         -> answer -> evaluate -> report (rules/common.smk: STEPS); summary.html over all;
#   embed_compare makes the comparison methods' features for evaluate
# Every output lives under results/{dataset}/; see README.md for the table of outputs.
import os

from snakemake.utils import min_version

min_version("9.0")

# Every step imports this workflow's own package (scripts/msicoloc), even where another copy
# is pip-installed: Snakemake only appends a script's folder to the module path, after
# site-packages, so an installed msicoloc of another checkout would silently win.
PACKAGE_PATH = [
    os.path.join(workflow.basedir, "scripts"),
    os.environ.get("PYTHONPATH", ""),
]
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in PACKAGE_PATH if p))


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/preprocess.smk"
include: "rules/learn.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


if workflow.is_main_process:  # not again in every job's own snakemake process
    warn_about_gaps()


rule all:
    default_target: True
    input:
        all_outputs(),

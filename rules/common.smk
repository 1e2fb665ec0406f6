# Sample sheet and config: read, validate, and the helpers the rules use.
import os
import sys
from pathlib import Path

import jsonschema
import pandas as pd
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, "../config/schemas/config.schema.yaml")

# Files the workflow makes itself, so the sheet may name them before they exist.
DEMO_FILES = {
    "resources/demo/demo.imzML",
    "resources/demo/demo.ibd",
    "resources/demo/demo_annotations.tsv",
}
SHEET_COLUMNS = ["dataset", "imzml", "annotations", "n_clusters", "mz_list", "names"]


def sheet_error(sheet, message):
    """Stop before any job starts, with one line naming the sheet and the problem."""
    return WorkflowError(f"sample sheet {sheet}: {message}")


def _exists_or_made(path):
    return path in DEMO_FILES or Path(path).is_file()


def read_sheet(sheet):
    """Read and validate the sample sheet; return {dataset: row dict}."""
    if not Path(sheet).is_file():
        raise sheet_error(sheet, "file not found (config key 'datasets')")
    table = pd.read_csv(sheet, sep="\t", dtype=str, comment="#", skip_blank_lines=True)
    table.columns = [c.strip() for c in table.columns]
    unknown = sorted(set(table.columns) - set(SHEET_COLUMNS))
    if unknown:
        raise sheet_error(
            sheet, f"unknown column(s) {unknown}; allowed: {SHEET_COLUMNS}"
        )
    for col in SHEET_COLUMNS:
        if col not in table.columns:
            table[col] = None
    table = table.map(lambda v: v.strip() if isinstance(v, str) else v)
    table = table.replace({"": None}).astype(object).where(table.notna(), None)
    if table.empty:
        raise sheet_error(sheet, "no data set rows")
    with open(workflow.source_path("../config/schemas/datasets.schema.yaml")) as f:
        validator = jsonschema.Draft202012Validator(yaml.safe_load(f))
    rows = {}
    for i, row in enumerate(table.to_dict("records"), start=2):
        name = row["dataset"]
        if row["n_clusters"] not in (None, "auto"):
            try:
                row["n_clusters"] = int(row["n_clusters"])
            except ValueError:
                raise sheet_error(
                    sheet,
                    f"line {i} ({name}): n_clusters '{row['n_clusters']}' is neither an "
                    "integer nor auto",
                )
        err = jsonschema.exceptions.best_match(validator.iter_errors(row))
        if err is not None:
            where = err.absolute_path[0] if err.absolute_path else "row"
            raise sheet_error(sheet, f"line {i} ({name}): {where}: {err.message}")
        if name in rows:
            raise sheet_error(sheet, f"line {i}: duplicate dataset id '{name}'")
        for col in ("imzml", "annotations", "mz_list", "names"):
            if row[col] is not None and not _exists_or_made(row[col]):
                raise sheet_error(
                    sheet, f"line {i} ({name}): {col} file not found: {row[col]}"
                )
        if ibd_path(row["imzml"]) is None:
            raise sheet_error(
                sheet, f"line {i} ({name}): no .ibd file beside {row['imzml']}"
            )
        rows[name] = row
    return rows


def ibd_path(imzml):
    """The .ibd beside an imzML (same stem, either case), None if there is none."""
    p = Path(imzml)
    if imzml in DEMO_FILES:
        return str(p.with_suffix(".ibd"))
    for suffix in (".ibd", ".IBD"):
        if p.with_suffix(suffix).is_file():
            return str(p.with_suffix(suffix))
    return None


DATASETS = read_sheet(config["datasets"])


wildcard_constraints:
    dataset="|".join(DATASETS),


def dataset(wildcards):
    return DATASETS[wildcards.dataset]


def mz_list(wildcards):
    """The data set's m/z list (sheet column, else config), or None to pick peaks."""
    return dataset(wildcards)["mz_list"] or config["peaks"]["mz_list"]


def name_table(wildcards):
    """The data set's name table (sheet column, else config), or None."""
    return dataset(wildcards)["names"] or config["names"]["table"]


def n_clusters(wildcards):
    """Clusters for a data set: the sheet's n_clusters, else the config default."""
    return dataset(wildcards)["n_clusters"] or config["cluster"]["n_clusters"]


def auto_k_smoothing(wildcards):
    """compare.smooth_sigma for choose_k where K is chosen from the data, else None: a given
    K depends on nothing else, so a changed smoothing reruns only what uses it."""
    auto = n_clusters(wildcards) == "auto"
    return config["compare"]["smooth_sigma"] if auto else None


def _slurm_setting(key, env_var):
    """A SLURM setting from config, else from the environment, else None (cluster default)."""
    return config["slurm"][key] or os.environ.get(env_var) or None


def job_resources(kind):
    """Scheduler resources of a rule: kind "gpu" (train_simclr, self_label) or "cpu".

    Local runs use mem_mb and gpu (profiles/default caps the GPUs in use); the SLURM executor
    also reads runtime, slurm_account, slurm_partition and gpu_model. Unset SLURM settings are
    left out so that the executor falls back to the cluster's defaults.
    """
    res = dict(config["resources"][kind])
    res.pop("threads", None)  # a rule's threads are its own directive
    if not res.get("gpu"):  # a CPU job, or GPU rules set to gpu: 0
        res.pop("gpu", None)
        res.pop("gpu_model", None)
    elif not res.get("gpu_model"):
        res.pop("gpu_model", None)
    slurm = {
        "slurm_account": _slurm_setting("account", "SBATCH_ACCOUNT"),
        "slurm_partition": (
            _slurm_setting("gpu_partition", "MSICOLOC_GPU_PARTITION")
            if kind == "gpu" and res.get("gpu")
            else _slurm_setting("cpu_partition", "SBATCH_PARTITION")
        ),
    }
    res.update({key: value for key, value in slurm.items() if value})
    return res


# Execution-only keys inside science sections (msicoloc.settings.EXECUTION): a rule passes
# its section without them, so that changing them reruns nothing.
EXECUTION_KEYS = {"convert": ["chunk_values"]}


def settings(section):
    """A config section as a rule's params: what the step's settings object is built from."""
    drop = EXECUTION_KEYS.get(section, [])
    return {key: value for key, value in config[section].items() if key not in drop}


def cluster_settings(wildcards):
    """The cluster section with the data set's number of clusters (the sheet's, if given)."""
    return {**config["cluster"], "n_clusters": n_clusters(wildcards)}


def science_parameters():
    """The settings that decide results, as the report shows them.

    Execution-only settings (device, convert.chunk_values, embed.batch_size) are left out:
    steps read those from the config directly (msicoloc.step.run_step), so that changing
    them reruns nothing, not even the report.
    """
    keys = [
        "seed",
        "convert",
        "peaks",
        "names",
        "ion_images",
        "simclr",
        "cluster",
        "compare",
    ]
    keys += ["self_label", "answer", "evaluate"]
    return {
        key: settings(key) if isinstance(config[key], dict) else config[key]
        for key in keys
    }


def all_outputs():
    outputs = []
    for name in DATASETS:
        outputs += [
            f"results/{name}/ion_images.png",
            f"results/{name}/clusters.tsv",
            f"results/{name}/metrics.json",
            f"results/{name}/report.html",
        ]
    outputs.append("results/summary.html")
    return outputs


# A data set's steps in pipeline order (the report lists their wall times in this order).
STEPS = ["convert", "peaks", "names", "ion_images", "choose_k", "train_simclr", "embed"]
STEPS += ["embed_compare", "cluster", "self_label", "answer", "evaluate", "report"]


def warn_about_gaps():
    """Warn where a step's output is missing but later outputs of an earlier run remain.

    This happens when a step fails after a parameter change (its outputs are removed, the
    later ones stay): Snakemake then sees the final outputs as up to date and does not
    recreate the missing file on its own. Called once the rules are defined.
    """
    for name in DATASETS:
        chain = [
            (str(getattr(rules, step).output[0]).format(dataset=name), step)
            for step in STEPS
        ]
        exists = [Path(path).exists() for path, _ in chain]
        if False not in exists:
            continue
        gap = exists.index(False)
        prefix = f"results/{name}/"
        later = [
            path.removeprefix(prefix)
            for (path, _), there in zip(chain[gap:], exists[gap:])
            if there
        ]
        if later:
            path, rule = chain[gap]
            logger.warning(
                f"dataset {name}: {path} is missing but later results of an earlier run "
                f"remain ({', '.join(later)}); to redo them: snakemake --forcerun {rule}"
            )

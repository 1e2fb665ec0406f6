"""Run a workflow step from Snakemake's ``script:`` directive or from the command line.

A step script defines ``main(...)`` with typed, documented keyword arguments and ends with::

    if __name__ == "__main__":
        run_step(main, inputs=["imzml"], outputs=["h5"])

Under Snakemake, file arguments come from the rule's named ``input:``/``output:``, every
other argument from ``params:`` (same names), ``dataset`` from the wildcard, ``threads`` from
the rule and logging goes to ``log[0]``. From a shell, the same arguments are ``--options``
built from ``main``'s signature, so ``python scripts/x.py --help`` documents the step.

Whatever the caller, bad input (:class:`msicoloc.InputError`) ends the step with one line
naming the data set, the file and the problem, and no output is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from msicoloc import InputError

log = logging.getLogger("msicoloc")

# Arguments filled from the execution context rather than from params.
_CONTEXT_ARGS = {"dataset", "threads"}


def run_step(
    main: Callable[..., object],
    *,
    inputs: Sequence[str],
    outputs: Sequence[str],
    execution: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Call ``main`` with arguments from Snakemake or ``sys.argv``; exit 1 on failure.

    ``execution`` names the arguments that only say *how* to compute (memory bounds, batch
    sizes, the device), each with its path in the config. Under Snakemake they are read from
    the config, not from ``params``, so changing them never reruns a step; and ``device``
    follows the rule's resources: a rule that asked for no GPU runs on the CPU.
    """
    smk = sys.modules["__main__"].__dict__.get("snakemake")
    if smk is not None:
        kwargs, log_file = _from_snakemake(smk, main, inputs, outputs, execution or {})
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


def _step_params(main: Callable[..., object]) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(main).parameters)


def _from_snakemake(smk, main, inputs, outputs, execution) -> tuple[dict, str | None]:
    kwargs: dict[str, object] = {}
    for name, path in execution.items():
        value = smk.config
        for key in path:
            value = value[key]
        kwargs[name] = value
    if "device" in kwargs and not int(getattr(smk.resources, "gpu", 0) or 0):
        kwargs["device"] = "cpu"  # the job holds no GPU: it must not take one
    for name in inputs:
        kwargs[name] = Path(smk.input[name])
    for name in outputs:
        kwargs[name] = Path(smk.output[name])
    for name, par in _step_params(main).items():
        if name in kwargs:
            continue
        if name == "dataset":
            kwargs[name] = smk.wildcards.get("dataset", "?")
        elif name == "threads":
            kwargs[name] = int(smk.threads)
        elif hasattr(smk.params, name):
            kwargs[name] = getattr(smk.params, name)
        elif par.default is inspect.Parameter.empty:
            raise TypeError(f"rule {smk.rule}: params has no '{name}' for {main.__module__}")
    log_file = str(smk.log[0]) if len(smk.log) else None
    return kwargs, log_file


def _from_argv(main, inputs, outputs) -> tuple[dict, str | None]:
    doc = inspect.getdoc(main) or ""
    helps = _param_help(doc)
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hints = typing.get_type_hints(main)
    for name, par in _step_params(main).items():
        flag = "--" + name.replace("_", "-")
        help_ = helps.get(name, " ")
        if name in inputs or name in outputs:
            parser.add_argument(
                flag, dest=name, type=Path, required=True, metavar="PATH", help=help_
            )
        elif name == "dataset":
            parser.add_argument(flag, dest=name, default="cli", help="data set id used in messages")
        elif name == "threads":
            parser.add_argument(flag, dest=name, type=int, default=os.cpu_count() or 1, help=help_)
        else:
            _add_typed(parser, flag, name, hints.get(name, str), par.default, help_)
    parser.add_argument("--log", default=None, metavar="PATH", help="also write the log here")
    ns = vars(parser.parse_args())
    log_file = ns.pop("log")
    return ns, log_file


def _add_typed(parser, flag, name, hint, default, help_) -> None:
    required = default is inspect.Parameter.empty
    kw: dict[str, object] = {"dest": name, "help": help_}
    if not required:
        kw["default"] = default
    else:
        kw["required"] = True
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        hint, origin, args = args[0], typing.get_origin(args[0]), typing.get_args(args[0])
    if hint is bool:
        kw["action"] = argparse.BooleanOptionalAction
    elif origin is typing.Literal:
        kw["choices"] = list(args)
    elif origin in (list, tuple):
        kw["nargs"] = "*"
        kw["type"] = args[0] if args else str
    elif origin in (typing.Union, types.UnionType):
        # e.g. ``bool | str``: accept the text and let main interpret it
        kw["type"] = _parse_scalar
    elif hint in (int, float, str, Path):
        kw["type"] = hint
    elif hint is dict or origin is dict:
        kw["type"] = json.loads  # e.g. --augment '{"brightness": 0.3}'
        kw["metavar"] = "JSON"
    parser.add_argument(flag, **kw)


def _parse_scalar(text: str) -> object:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _param_help(doc: str) -> dict[str, str]:
    """Map argument names to their one-paragraph descriptions in a numpydoc docstring."""
    helps: dict[str, str] = {}
    current = None
    in_params = False
    for line in doc.splitlines():
        if re.fullmatch(r"Parameters\s*", line):
            in_params = True
            continue
        if not in_params or re.fullmatch(r"-+\s*", line):
            continue
        if re.fullmatch(r"[A-Z][A-Za-z ]+", line.strip()) and not line.startswith(" "):
            break  # next section
        m = re.fullmatch(r"(\w+)\s*(:.*)?", line)
        if m:
            current = m.group(1)
            helps[current] = ""
        elif current and line.strip():
            helps[current] = (helps[current] + " " + line.strip()).strip()
    return helps

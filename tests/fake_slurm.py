"""Stand-ins for the SLURM commands the Snakemake SLURM executor calls, for tests.

Invoked as ``fake_slurm.py TOOL ARGS...`` through small wrappers named ``sbatch``, ``squeue``,
``sacct``, ``sacctmgr``, ``srun``, ``sinfo``, ``scontrol`` and ``scancel`` (see
:func:`install`). Every call is appended to ``$FAKE_SLURM_DIR/calls.jsonl``. ``sbatch`` runs
the job script right away on this machine, in the job's directory, with its output going to
the ``--output`` file, and records COMPLETED or FAILED for ``sacct``/``squeue`` to report.
The cluster has an account ``lab`` and partitions ``cpu`` (default) and ``gpu``.
"""

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

TOOLS = ("sbatch", "squeue", "sacct", "sacctmgr", "srun", "sinfo", "scontrol", "scancel")
ACCOUNT = "lab"
# sbatch options that take their value as the next argument
VALUED = {"--job-name", "--output", "--comment", "-A", "-p", "-t", "--mem", "--mem-per-cpu"}
VALUED |= {"-D", "-C", "--clusters", "--qos", "--nodes", "-J", "-o"}


def install(bin_dir: Path, state_dir: Path) -> dict:
    """Write the tool wrappers into ``bin_dir``; return the environment that puts them first."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    for tool in TOOLS:
        wrapper = bin_dir / tool
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{__file__}" {tool} "$@"\n')
        wrapper.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["FAKE_SLURM_DIR"] = str(state_dir)
    return env


def read_calls(state_dir: Path) -> list[dict]:
    """All recorded calls: dicts with ``tool`` and ``args`` (and ``job_id`` for sbatch)."""
    path = state_dir / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def sbatch_options(args: list[str]) -> dict[str, str]:
    """sbatch's options as a dict (``--gpus=1`` -> ``{"--gpus": "1"}``; flags map to "")."""
    opts, i = {}, 0
    while i < len(args):
        arg = args[i]
        if arg in VALUED:
            opts[arg] = args[i + 1]
            i += 2
            continue
        key, _, value = arg.partition("=")
        opts[key] = value
        i += 1
    return opts


def _state() -> Path:
    return Path(os.environ["FAKE_SLURM_DIR"])


def _record(entry: dict) -> None:
    with open(_state() / "calls.jsonl", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(entry) + "\n")


def _next_job_id() -> int:
    with open(_state() / "counter", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        job_id = int(f.read() or 1000) + 1
        f.seek(0)
        f.truncate()
        f.write(str(job_id))
    return job_id


def sbatch(args: list[str]) -> int:
    opts = sbatch_options(args)
    job_id = _next_job_id()
    _record({"tool": "sbatch", "args": args, "job_id": job_id})
    if "--wrap" in opts:
        script = opts["--wrap"]
    else:  # the script comes on stdin (the executor's pass-command-as-script mode)
        script = sys.stdin.read()
    env = dict(os.environ, SLURM_JOB_ID=str(job_id), SLURM_JOBID=str(job_id))
    if "--gpus" in opts:
        env["SLURM_GPUS"] = opts["--gpus"]
    log = Path(opts.get("--output", f"slurm-{job_id}.out").replace("%j", str(job_id)))
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        rc = subprocess.run(
            ["/bin/sh", "-c", script], cwd=opts.get("-D"), env=env, stdout=out, stderr=out
        ).returncode
    name = opts.get("--job-name", "")
    (_state() / f"{job_id}.job").write_text(f"{name}|{'COMPLETED' if rc == 0 else 'FAILED'}")
    print(job_id)
    return 0


def job_states(args: list[str]) -> int:
    """sacct/squeue status queries: ``ID|STATE`` for the jobs of the run named after --name."""
    name = args[args.index("--name") + 1] if "--name" in args else None
    for path in sorted(_state().glob("*.job")):
        job_name, state = path.read_text().split("|")
        if name is None or job_name == name:
            print(f"{path.stem}|{state}")
    return 0


def srun(args: list[str]) -> int:
    """Run the command after srun's options (all given as single ``-x``/``--x=y`` words)."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 1
    os.execvp(args[i], args[i:])


def main(tool: str, args: list[str]) -> int:
    if tool != "sbatch":
        _record({"tool": tool, "args": args})
    if tool == "sbatch":
        return sbatch(args)
    if tool == "srun":
        return srun(args)
    if tool in ("sacct", "squeue"):
        if any("Account" in a for a in args):  # the executor guessing an account
            print(ACCOUNT)
            return 0
        return job_states(args)
    if tool == "sacctmgr":
        print(ACCOUNT)
    elif tool == "sinfo":
        print("PARTITION\ncpu*\ngpu")
    elif tool == "scontrol":
        print("MinJobAge               = 300 sec")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))

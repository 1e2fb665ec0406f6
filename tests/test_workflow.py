"""End-to-end Snakemake runs on tiny synthetic imzML, in a copy of the workflow."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import browser
import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, workflow_settings

from msicoloc.evaluate import METHODS
from msicoloc.models import installed_imagenet_weights

pytestmark = pytest.mark.e2e

# Small and quick learning settings: the tests check the plumbing, not the quality.
FAST = """
simclr: {image_size: 32, epochs: 2, batch_size: 16}
self_label: {init_epochs: 2, epochs: 2, batch_size: 16}
compare: {autoencoder: {epochs: 2}, imagenet: {image_size: 32}}
"""
COPY = ["Snakefile", "rules", "scripts", "config", "envs", "profiles", "resources"]


def workflow_copy(dest):
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("demo", "__pycache__"))
        else:
            shutil.copy(src, dest / name)
    return dest


def snakemake(workdir, *args):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny processed data set run through the workflow once, shared by the tests."""
    from msicoloc.synth import make_dataset

    work = workflow_copy(tmp_path_factory.mktemp("wf"))
    data = work / "data"
    data.mkdir()
    make_dataset(
        data / "tiny.imzML",
        data / "tiny_ann.tsv",
        height=20,
        width=24,
        n_classes=3,
        n_ions=24,
        seed=1,
    )
    # molecule names for the annotated ions (a plain mz-name table)
    ann = pd.read_csv(data / "tiny_ann.tsv", sep="\t")
    ann.assign(name="molecule " + ann.index.astype(str))[["mz", "name"]].to_csv(
        data / "names.tsv", sep="\t", index=False
    )
    (work / "sheet.tsv").write_text(
        "dataset\timzml\tannotations\tn_clusters\tnames\n"
        "tiny\tdata/tiny.imzML\tdata/tiny_ann.tsv\t3\tdata/names.tsv\n"
    )
    (work / "test.yaml").write_text("datasets: sheet.tsv\n" + FAST)
    res = snakemake(work, "--configfile", "test.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    return work


def test_outputs_exist_and_agree(tiny_run):
    out = tiny_run / "results" / "tiny"
    peaks = pd.read_csv(out / "peaks.tsv", sep="\t")
    assert list(peaks.columns) == ["mz", "intensity", "snr", "pixel_share"]
    with h5py.File(out / "ion_images.h5") as h5:
        images, mz, mask = h5["images"][:], h5["mz"][:], h5["mask"][:]
        assert h5.attrs["normalisation"] == "tic"
    assert images.shape == (len(peaks), 20, 24) and images.dtype == np.float32
    np.testing.assert_allclose(mz, peaks.mz)
    assert mask.dtype == bool and 0 < mask.sum() < mask.size
    assert (images[:, ~mask] == 0).all()
    assert (out / "ion_images.png").stat().st_size > 10_000
    for step in ("convert", "peaks", "ion_images"):
        assert (out / "logs" / f"{step}.log").exists()
        assert (out / "benchmarks" / f"{step}.tsv").exists()


def test_learning_outputs(tiny_run):
    out = tiny_run / "results" / "tiny"
    clusters = pd.read_csv(out / "clusters.tsv", sep="\t")
    assert list(clusters.columns) == ["mz", "cluster", "confidence", "learned_cluster", "name"]
    assert clusters.cluster.between(0, 2).all() and clusters.confidence.between(0, 1).all()
    # names from the sheet's name table reach the answer, the neighbours, members, network
    named = clusters["name"].fillna("").str.startswith("molecule ")
    assert named.sum() >= len(clusters) // 2
    coloc = pd.read_csv(out / "colocalization.tsv", sep="\t")
    assert coloc["neighbour_name"].fillna("").str.startswith("molecule ").any()
    members = pd.read_csv(out / "cluster_members.tsv", sep="\t")
    assert set(members["name"].dropna()) == set(clusters["name"].dropna())
    assert "molecule " in (out / "network.graphml").read_text()
    learned = pd.read_csv(out / "clusters_selflabel.tsv", sep="\t")
    assert list(learned.columns) == ["mz", "cluster", "confidence", "sc_cluster"]
    assert np.array_equal(learned.cluster, clusters.learned_cluster)
    with h5py.File(out / "embeddings.h5") as h5, h5py.File(out / "embeddings_compare.h5") as cmp:
        assert h5["features"].shape == (len(clusters), cmp["features_untrained"].shape[1])
        assert cmp["features_autoencoder"].shape[0] == len(clusters)
    history = pd.read_csv(out / "model" / "simclr_history.tsv", sep="\t")
    assert list(history.epoch) == [1, 2] and np.isfinite(history.loss).all()
    metrics = json.loads((out / "metrics.json").read_text())
    expected = set(METHODS) - (set() if installed_imagenet_weights() else {"imagenet_sc"})
    assert set(metrics["methods"]) == expected
    assert metrics["answer_method"] == "pearson_smooth_sc"
    # the answer is that method's clustering, run in its own step
    assert metrics["agreement_ari"]["pearson_smooth_sc"] == 1.0
    for row in metrics["methods"].values():
        assert 0 <= row["hungarian_accuracy"] <= 1
    # silhouette and stability are the answer's, in the representation it was made from
    from sklearn.metrics import silhouette_score

    from msicoloc.baselines import representation_from_file

    compare = workflow_settings("compare")
    features = representation_from_file("pearson_smooth", out / "ion_images.h5", compare, 0)
    want = silhouette_score(features, clusters.cluster, metric="cosine")
    assert metrics["silhouette"] == pytest.approx(want, abs=1e-6)
    assert 0 <= metrics["stability_ari"] <= 1


def test_same_seed_gives_identical_clusters(tiny_run):
    """Same seed, same machine, CPU: retraining from scratch gives byte-identical results."""
    out = tiny_run / "results" / "tiny"
    names = ("clusters.tsv", "clusters_sc.tsv", "clusters_selflabel.tsv", "embeddings.h5")
    before = {p: (out / p).read_bytes() for p in names}
    res = snakemake(tiny_run, "--configfile", "test.yaml", "--forcerun", "train_simclr")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "train_simclr" in res.stdout + res.stderr  # it did retrain
    for name, data in before.items():
        assert (out / name).read_bytes() == data, name


def test_second_run_does_nothing(tiny_run):
    res = snakemake(tiny_run, "--configfile", "test.yaml", "--dry-run")
    assert res.returncode == 0
    assert "Nothing to be done" in res.stdout + res.stderr


def test_step_runs_from_the_command_line(tiny_run, tmp_path):
    out = tiny_run / "results" / "tiny"
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "peaks.py"),
            "--spectra",
            str(out / "spectra.h5"),
            "--peaks",
            str(tmp_path / "p.tsv"),
            "--peaks.max_peaks",
            "5",
            "--log",
            str(tmp_path / "l"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert len(pd.read_csv(tmp_path / "p.tsv", sep="\t")) == 5
    assert "5 peaks picked" in (tmp_path / "l").read_text()


def test_failed_step_leaves_no_output_and_one_line(tmp_path):
    """A corrupt .ibd stops the run with the data set, the file and the problem in one line."""
    from msicoloc.synth import make_dataset

    work = workflow_copy(tmp_path)
    make_dataset(work / "bad.imzML", work / "ann.tsv", height=16, width=16, n_classes=2, n_ions=6)
    ibd = work / "bad.ibd"
    ibd.write_bytes(ibd.read_bytes()[:-50])
    (work / "sheet.tsv").write_text("dataset\timzml\nbroken\tbad.imzML\n")
    (work / "test.yaml").write_text("datasets: sheet.tsv\n")
    res = snakemake(work, "--configfile", "test.yaml")
    assert res.returncode != 0
    text = res.stdout + res.stderr
    assert "ERROR dataset broken: bad.ibd: truncated" in text, text
    assert not (work / "results" / "broken" / "spectra.h5").exists()


def clone_inputs(run, dest):
    """A fresh workflow copy with the same data, sheet and config as a finished run."""
    work = workflow_copy(dest)
    shutil.copytree(run / "data", work / "data")
    for name in ("sheet.tsv", "test.yaml"):
        shutil.copy(run / name, work / name)
    return work


def test_slurm_profile_sends_gpu_rules_to_gpu_partition(tiny_run, tmp_path):
    """profiles/slurm against stand-in SLURM commands that run each job here."""
    from fake_slurm import install, read_calls, sbatch_options

    work = clone_inputs(tiny_run, tmp_path / "wf")
    (work / "slurm.yaml").write_text(
        "slurm: {account: lab, cpu_partition: cpu, gpu_partition: gpu}\n"
    )
    env = install(tmp_path / "bin", tmp_path / "slurm")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--workflow-profile",
            "profiles/slurm",
            # no conda on the test machine; env-modules is a no-op for rules without modules
            "--sdm",
            "env-modules",
            "--slurm-init-seconds-before-status-checks",
            "1",
            "--latency-wait",
            "1",
            "--configfile",
            "test.yaml",
            "slurm.yaml",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    submitted = {}
    for call in read_calls(tmp_path / "slurm"):
        if call["tool"] == "sbatch":
            opts = sbatch_options(call["args"])
            submitted[opts["--comment"].split("_wildcards_")[0].removeprefix("rule_")] = opts
    assert {"convert", "train_simclr", "self_label", "report", "summary"} <= set(submitted)
    for rule, opts in submitted.items():
        assert opts["-A"] == "lab"
        gpu_request = "--gpus" in opts or "--gres" in opts
        if rule in ("train_simclr", "self_label"):
            assert gpu_request and opts["-p"] == "gpu", (rule, opts)
            assert opts["--mem"] == "16000" and opts["-t"] == "240"
        else:
            assert not gpu_request and opts["-p"] == "cpu", (rule, opts)
    for name in ("peaks.tsv", "clusters_sc.tsv", "clusters.tsv", "model/simclr.pt"):
        local, remote = tiny_run / "results/tiny" / name, work / "results/tiny" / name
        assert remote.read_bytes() == local.read_bytes(), name
    assert (work / "results/summary.html").exists()


def dry_run_jobs(dry_run_output):
    """Every job of a dry run's output: (rule, {field: value}) with fields such as wildcards
    and resources as printed."""
    jobs = []
    for block in re.split(r"^(?=(?:local)?rule \w+:$)", dry_run_output, flags=re.M)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        fields = dict(re.findall(r"^\s+(\w+): (.*)$", block, flags=re.M))
        jobs.append((rule, fields))
    return jobs


def scheduled(dry_run_output):
    """(rule, dataset) of every job in a dry run's output (dataset None: no wildcard)."""
    return [
        (rule, fields["wildcards"].removeprefix("dataset=") if "wildcards" in fields else None)
        for rule, fields in dry_run_jobs(dry_run_output)
    ]


@pytest.fixture
def finished(tiny_run, tmp_path):
    """A private copy of the finished tiny run (outputs, metadata and mtimes kept)."""
    return shutil.copytree(tiny_run, tmp_path / "wf", symlinks=True)


def test_adding_a_data_set_schedules_only_its_jobs(finished):
    from msicoloc.synth import make_dataset

    make_dataset(
        finished / "data/new.imzML",
        finished / "data/new_ann.tsv",
        height=16,
        width=20,
        n_classes=3,
        n_ions=20,
        seed=5,
    )
    with open(finished / "sheet.tsv", "a") as f:
        f.write("new\tdata/new.imzML\tdata/new_ann.tsv\t3\t\n")
    res = snakemake(finished, "--configfile", "test.yaml", "--dry-run")
    assert res.returncode == 0, res.stdout + res.stderr
    jobs = scheduled(res.stdout)
    per_dataset = {"convert", "peaks", "names", "ion_images", "choose_k", "train_simclr", "embed"}
    per_dataset |= {"embed_compare"}
    per_dataset |= {"cluster"}
    per_dataset |= {"self_label", "answer", "evaluate", "report"}
    assert sorted(r for r, d in jobs if d == "new") == sorted(per_dataset)
    assert sorted(r for r, d in jobs if d is None) == ["all", "summary"]
    assert not [r for r, d in jobs if d == "tiny"]


def test_changing_n_clusters_reruns_clustering_not_training(finished):
    sheet = finished / "sheet.tsv"
    sheet.write_text(sheet.read_text().replace("tiny_ann.tsv\t3", "tiny_ann.tsv\t4"))
    res = snakemake(finished, "--configfile", "test.yaml", "--dry-run")
    assert res.returncode == 0, res.stdout + res.stderr
    rules = {r for r, _ in scheduled(res.stdout)}
    assert {"cluster", "self_label", "answer", "evaluate", "report", "summary"} <= rules
    assert not rules & {"convert", "peaks", "ion_images", "train_simclr", "embed"}


def test_auto_n_clusters_counts_the_classes_and_reclusters(finished):
    """n_clusters: auto in the sheet: choose_k counts the tiny set's 3 classes (within one),
    records how, and the clustering steps rerun with it; training does not."""
    sheet = finished / "sheet.tsv"
    sheet.write_text(sheet.read_text().replace("tiny_ann.tsv\t3", "tiny_ann.tsv\tauto"))
    res = snakemake(finished, "results/tiny/n_clusters.json", "--configfile", "test.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    record = json.loads((finished / "results/tiny/n_clusters.json").read_text())
    assert record["chosen_by"] == "parallel_analysis" and 2 <= record["n_clusters"] <= 4
    assert record["eigenvalues"][0] > record["null_eigenvalues"][0]
    res = snakemake(finished, "--configfile", "test.yaml", "--dry-run")
    rules = {r for r, _ in scheduled(res.stdout)}
    assert {"cluster", "answer", "evaluate", "report"} <= rules
    assert not rules & {"convert", "peaks", "ion_images", "train_simclr", "embed"}


def test_comparison_settings_rerun_only_the_comparison(finished):
    """A comparison method's setting (the autoencoder's epochs, NMF's components, the
    smoothing with a given K) reruns the comparison and what reports it, never the learned
    pipeline or the number of clusters."""
    reported = {"evaluate", "report", "summary", "all"}
    for change, plan in [
        ("{autoencoder: {epochs: 3}, nmf_components: 7}", {"embed_compare"} | reported),
        # the answer's blur too (embed_compare takes the compare section as one)
        ("{smooth_sigma: 1.5}", {"answer", "embed_compare"} | reported),
    ]:
        (finished / "cmp.yaml").write_text(f"compare: {change}\n")
        res = snakemake(finished, "--configfile", "test.yaml", "cmp.yaml", "--dry-run")
        assert res.returncode == 0, res.stdout + res.stderr
        assert {r for r, _ in scheduled(res.stdout)} == plan, change


def test_execution_settings_rerun_nothing(finished):
    """Memory bounds, inference batch and device change how, not what: nothing reruns."""
    (finished / "exec.yaml").write_text(
        "device: cpu\nembed: {batch_size: 7}\nconvert: {chunk_values: 5000}\n"
    )
    res = snakemake(finished, "--configfile", "test.yaml", "exec.yaml", "--dry-run")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Nothing to be done" in res.stdout + res.stderr, scheduled(res.stdout)


def test_touching_inputs_reruns_nothing(finished):
    for name in ("data/tiny.imzML", "data/tiny.ibd", "results/tiny/ion_images.h5"):
        (finished / name).touch()
    res = snakemake(finished, "--configfile", "test.yaml", "--dry-run")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Nothing to be done" in res.stdout + res.stderr, scheduled(res.stdout)


SLOW = "simclr: {epochs: 60}\n"  # a few seconds of training: long enough to interrupt
COMPARED = ["model/simclr.pt", "embeddings.h5", "clusters_sc.tsv", "clusters_selflabel.tsv"]
COMPARED += ["clusters.tsv"]


@pytest.fixture(scope="module")
def slow_reference(tiny_run, tmp_path_factory):
    """An uninterrupted run with the longer training."""
    work = clone_inputs(tiny_run, tmp_path_factory.mktemp("reference"))
    (work / "slow.yaml").write_text(SLOW)
    res = snakemake(work, "--configfile", "test.yaml", "slow.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    return work / "results/tiny"


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"]
)
def test_interrupted_training_reruns_to_identical_outputs(slow_reference, tiny_run, tmp_path, sig):
    """Interrupt a run mid-training, start it again: the same bytes as without interruption.

    The signal goes to snakemake's whole process group, the job included: SIGINT is Ctrl-C
    in a terminal, SIGTERM what SLURM or ``timeout`` send at the end of a job, SIGKILL a
    hard kill (no cleanup at all).
    """
    work = clone_inputs(tiny_run, tmp_path / "wf")
    (work / "slow.yaml").write_text(SLOW)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2"]
    cmd += ["--configfile", "test.yaml", "slow.yaml"]
    proc = subprocess.Popen(
        cmd,
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        # as in a terminal: a test run launched in the background inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    out = work / "results/tiny"
    log = out / "logs/train_simclr.log"
    deadline = time.monotonic() + 300
    while not (log.exists() and "epoch 3:" in log.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, "training never started"
        time.sleep(0.05)
    os.killpg(proc.pid, sig)
    proc.wait(timeout=120)
    assert "epoch 60:" not in log.read_text(), "training finished before the interruption"
    # nothing half-written is left to be taken as done
    assert not (out / "model/simclr.pt").exists()
    assert not (out / "clusters.tsv").exists()
    assert not list(out.rglob("*.tmp-*"))

    if sig == signal.SIGKILL:  # no cleanup ran: snakemake's lock stays, as after a power cut
        assert snakemake(work, "--unlock").returncode == 0
    res = snakemake(work, "--configfile", "test.yaml", "slow.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    for name in COMPARED:
        assert (out / name).read_bytes() == (slow_reference / name).read_bytes(), name
    history = [pd.read_csv(d / "model/simclr_history.tsv", sep="\t") for d in (out, slow_reference)]
    pd.testing.assert_frame_equal(*(h.drop(columns="seconds") for h in history))


def test_slurm_settings_fall_back_to_the_environment(tiny_run):
    """Unset slurm.* keys: $SBATCH_ACCOUNT, $SBATCH_PARTITION, $MSICOLOC_GPU_PARTITION."""
    env = dict(os.environ, SBATCH_ACCOUNT="lab", SBATCH_PARTITION="short")
    env["MSICOLOC_GPU_PARTITION"] = "gpu"
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "--configfile", "test.yaml", "-n", "--forceall"],
        cwd=tiny_run,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    resources = {
        rule: dict(kv.split("=", 1) for kv in fields["resources"].split(", "))
        for rule, fields in dry_run_jobs(res.stdout)
    }
    assert resources["train_simclr"]["slurm_partition"] == "gpu"
    assert resources["train_simclr"]["gpu"] == "1"
    assert resources["convert"]["slurm_partition"] == "short"
    assert "gpu" not in resources["convert"]
    del resources["all"]  # the target rule is not a job that gets submitted
    assert {r["slurm_account"] for r in resources.values()} == {"lab"}


def test_missing_step_output_under_later_results_is_reported(finished):
    """After a failed step its later outputs from an earlier run remain: say how to redo them."""
    (finished / "results/tiny/clusters_sc.tsv").unlink()
    res = snakemake(finished, "--configfile", "test.yaml", "--dry-run")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (
        "dataset tiny: results/tiny/clusters_sc.tsv is missing but later results of an earlier "
        "run remain (clusters_selflabel.tsv, clusters.tsv, metrics.json, report.html); to redo "
        "them: "
        "snakemake --forcerun cluster"
    ) in res.stdout + res.stderr
    res = snakemake(finished, "--configfile", "test.yaml", "--dry-run", "--forcerun", "cluster")
    rules = {r for r, _ in scheduled(res.stdout)}
    assert {"cluster", "self_label", "evaluate", "report"} <= rules


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo (config/datasets.tsv, made by the make_demo rule) through the whole workflow
    with the quick learning settings, molecule names given to its annotated ions."""
    work = workflow_copy(tmp_path_factory.mktemp("demo"))
    (work / "fast.yaml").write_text(FAST)
    res = snakemake(work, "resources/demo/demo.imzML", "--configfile", "fast.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    demo = work / "resources" / "demo"
    ann = pd.read_csv(demo / "demo_annotations.tsv", sep="\t")
    names = ann.assign(name="lipid " + ann["label"].astype(str) + "-" + ann.index.astype(str))
    names[["mz", "name"]].to_csv(demo / "names.tsv", sep="\t", index=False)
    sheet = pd.read_csv(work / "config" / "datasets.tsv", sep="\t")
    sheet.assign(names="resources/demo/names.tsv").to_csv(work / "demo.tsv", sep="\t", index=False)
    (work / "fast.yaml").write_text("datasets: demo.tsv\n" + FAST)
    res = snakemake(work, "--configfile", "fast.yaml")
    assert res.returncode == 0, res.stdout + res.stderr
    return work


@pytest.mark.skipif(
    not browser.available(),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium-driver)",
)
def test_explorer_finds_an_ion_its_partners_and_its_cluster_in_chromium(demo_run, tmp_path):
    """Drive the demo report's explorer in headless Chromium as a user would: search an m/z,
    click a partner, open a cluster; check what each view shows, screenshot it, and check that
    the page fetched nothing but itself and its inline images."""
    from PIL import Image
    from selenium.webdriver.common.by import By

    out = demo_run / "results" / "demo"
    clusters = pd.read_csv(out / "clusters.tsv", sep="\t", keep_default_na=False)
    coloc = pd.read_csv(out / "colocalization.tsv", sep="\t", keep_default_na=False)
    driver = browser.headless_chromium(1300, 1000, log=True)
    shots = {}

    def view():
        return driver.find_element(By.TAG_NAME, "body").get_attribute("data-view")

    def text(css):
        return driver.find_element(By.CSS_SELECTOR, css).text

    def shoot(name):
        driver.execute_script("document.getElementById('explore').scrollIntoView()")
        shots[name] = tmp_path / f"{name}.png"
        driver.save_screenshot(shots[name])

    def click(element):  # SVG shapes too: a real click event that bubbles
        driver.execute_script(
            "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", element
        )

    try:
        driver.get((out / "report.html").as_uri())
        load_ms = driver.execute_script(
            "const t = performance.timing; return t.loadEventEnd - t.navigationStart"
        )
        assert 0 < load_ms < 3000
        # the report opens on the answer: the explorer first, showing a cluster
        assert driver.find_element(By.TAG_NAME, "h2").text == "Explore the ions"
        assert view().startswith("cluster/")
        shoot("opening")

        # search an m/z (typed to 3 decimals): the nearest ion, its name, cluster, confidence
        def partners_of(i):
            return coloc[np.isclose(coloc.mz, clusters.mz[i])]

        def orders_differ(i):  # so that sorting by the other score shows
            mine = partners_of(i)
            return list(mine.learned.rank(ascending=False)) != list(
                mine.metaspace.rank(ascending=False)
            )

        named = np.flatnonzero(clusters["name"] != "")
        i = int(next(i for i in named if orders_differ(i)))
        search = driver.find_element(By.ID, "ex-search")
        search.send_keys(f"{clusters.mz[i]:.3f}\n")
        assert view() == f"ion/{i}"
        assert float(text("#ex-title").split()[1]) == pytest.approx(clusters.mz[i], abs=6e-5)
        head = text("#ex-view .ex-head")
        assert clusters.name[i] in head and f"cluster {clusters.cluster[i]}" in head
        shown_conf = float(re.search(r"confidence\s+([0-9.]+)", head).group(1))
        assert shown_conf == pytest.approx(clusters.confidence[i], abs=0.0051)
        # its partners: every pair of colocalization.tsv, learned first, both scores shown
        mine = partners_of(i).sort_values("learned", ascending=False)
        rows = driver.find_elements(By.CSS_SELECTOR, "#ex-partners tr")
        assert len(rows) == len(mine) > 0
        cells = rows[0].find_elements(By.TAG_NAME, "td")
        assert float(cells[1].text) == pytest.approx(mine.neighbour_mz.iloc[0], abs=6e-5)
        assert float(cells[3].text) == pytest.approx(mine.learned.iloc[0], abs=0.0011)
        assert float(cells[4].text) == pytest.approx(mine.metaspace.iloc[0], abs=0.0011)

        def column(n):
            cells = driver.find_elements(By.CSS_SELECTOR, f"#ex-partners td:nth-child({n})")
            return np.array([float(c.text) for c in cells])

        np.testing.assert_allclose(column(4), np.sort(mine.learned)[::-1], atol=0.0011)
        shoot("ion")
        # sorted by the METASPACE-style score instead
        driver.find_element(By.CSS_SELECTOR, "#ex-view th button[data-sort='2']").click()
        np.testing.assert_allclose(column(5), np.sort(mine.metaspace)[::-1], atol=0.0011)
        assert not np.allclose(column(4), np.sort(mine.learned)[::-1], atol=0.0011)

        # click a partner: its own view
        partner = driver.find_element(By.CSS_SELECTOR, "#ex-partners tr")
        j = int(partner.get_attribute("data-ion"))
        partner.click()
        assert view() == f"ion/{j}"
        assert float(text("#ex-title").split()[1]) == pytest.approx(clusters.mz[j], abs=6e-5)
        driver.back()  # the address holds the view: Back returns to the first ion
        assert view() == f"ion/{i}"

        # open its cluster: members by confidence, a filter and a sort
        k = int(clusters.cluster[i])
        driver.find_element(By.CSS_SELECTOR, "#ex-view .ex-head .ex-chip").click()
        assert view() == f"cluster/{k}"
        members = clusters[clusters.cluster == k].sort_values("confidence", ascending=False)
        assert text("#ex-count") == f"{len(members)} of {len(members)} shown"
        shown = [
            f.text.split(" · ")[0]
            for f in driver.find_elements(By.CSS_SELECTOR, "#ex-members figcaption")
        ]
        np.testing.assert_allclose(np.array(shown, float), members.mz, atol=6e-5)
        shoot("cluster")
        driver.find_element(By.ID, "ex-filter").send_keys(f"{members.mz.iloc[0]:.4f}")
        assert text("#ex-count") == f"1 of {len(members)} shown"

        # a UMAP point, a spectrum peak and a cluster tile lead there too
        click(driver.find_element(By.CSS_SELECTOR, "#ex-umap circle[data-ion='3']"))
        assert view() == "ion/3"
        click(driver.find_element(By.CSS_SELECTOR, "#ex-spectrum line[data-ion='5']"))
        assert view() == "ion/5"
        click(driver.find_element(By.CSS_SELECTOR, f".ex-tile[data-cluster='{k}']"))
        assert view() == f"cluster/{k}"
        # the cluster section's member grids are drawn from the same thumbnails and lead to
        # the explorer too
        grid = driver.find_elements(By.CSS_SELECTOR, f"#cluster-{k} + .ex-grid figure")
        assert len(grid) == min(len(members), workflow_settings("report").max_thumbnails)
        first = int(grid[0].get_attribute("data-ion"))  # the most confident member
        assert clusters.cluster[first] == k
        assert clusters.confidence[first] == members.confidence.max()
        click(grid[0])
        assert view() == f"ion/{first}"
        # a name search lists the named ions
        search.clear()
        search.send_keys("lipid")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#ex-results button")) > 0

        requests = [
            json.loads(entry["message"])["message"]["params"]["request"]["url"]
            for entry in driver.get_log("performance")
            if '"Network.requestWillBeSent"' in entry["message"]
        ]
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    assert errors == []
    # no network: the page itself, then only its inline (data:) images
    assert requests[0] == (out / "report.html").as_uri()
    assert all(url.startswith("data:") for url in requests[1:])
    # each view's screenshot shows ion images (viridis) and differs from the others
    pictures = {name: np.asarray(Image.open(path).convert("RGB")) for name, path in shots.items()}
    for name, rgb in pictures.items():
        assert rgb.shape[:2] == (1000, 1300) or rgb.shape[1] == 1300, name
        yellowish = (rgb[..., 0] > 200) & (rgb[..., 1] > 200) & (rgb[..., 2] < 80)
        purple = (rgb[..., 0] < 90) & (rgb[..., 1] < 40) & (rgb[..., 2] > 60)
        assert yellowish.sum() + purple.sum() > 2000, f"{name}: no ion image on screen"
    assert len({rgb.tobytes() for rgb in pictures.values()}) == len(pictures)

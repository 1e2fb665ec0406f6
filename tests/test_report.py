"""Report helpers, the report and summary steps on a small fake results folder, and the
report in a real (headless, offline) browser when Chromium is installed."""

import base64
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest
from conftest import CONVERT, ROOT, SCRIPTS, run_script, workflow_settings, write_small_imzml

from msicoloc import report as rp
from msicoloc.cluster import write_n_clusters
from msicoloc.spectra import convert

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_step(name: str):
    """Import scripts/<name>.py under a private module name (no clash with other modules)."""
    spec = importlib.util.spec_from_file_location(f"step_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- helpers ---------------------------------------------------------------------------------


def test_figure_to_data_uri_is_a_png():
    fig = rp.Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1], [0, 1])
    uri = rp.data_uri(rp.figure_png(fig))
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]).startswith(PNG_MAGIC)
    tag = rp.img_tag(b"x", 'a "quoted" alt')
    assert 'alt="a &quot;quoted&quot; alt"' in tag and 'src="data:image/png;base64,' in tag


def test_colour_limit_uses_tissue_pixels_only():
    image = np.zeros((10, 10))
    image[:, :5] = np.arange(50).reshape(10, 5)  # tissue: 0..49
    image[:, 5:] = 1000.0  # off tissue: must not set the scale
    mask = np.zeros((10, 10), bool)
    mask[:, :5] = True
    assert rp.colour_limit(image, mask, 100) == pytest.approx(49)
    assert rp.colour_limit(image, mask, 50) == pytest.approx(24.5)
    scaled = rp.scale_unit(image, mask, 50)
    assert scaled.max() == 1.0 and scaled.min() == 0.0  # saturates above the limit


def test_colour_limit_fallbacks():
    sparse = np.zeros((20, 20))
    sparse[0, 0] = 5.0  # in 0.25 % of the pixels: the 99th percentile is 0
    assert rp.colour_limit(sparse, np.ones((20, 20), bool), 99) == 5.0
    assert rp.colour_limit(np.zeros((4, 4)), np.ones((4, 4), bool), 99) == 1.0
    assert rp.colour_limit(np.full((2, 2), 3.0), np.zeros((2, 2), bool), 99) == 3.0  # no mask


def test_cluster_means_weigh_every_ion_equally():
    mask = np.ones((2, 2), bool)
    loud = np.array([[100.0, 0.0], [0.0, 0.0]])
    quiet = np.array([[0.0, 1.0], [0.0, 0.0]])
    stack = np.stack([loud, quiet, quiet])
    means, sizes = rp.cluster_means(stack, mask, np.array([0, 0, 2]), 3, percentile=100)
    np.testing.assert_allclose(means[0], [[0.5, 0.5], [0, 0]])
    assert sizes.tolist() == [2, 0, 1]
    assert not means[1].any()  # an empty cluster is all zero


def test_image_extent_and_scale_bar_length():
    assert rp.image_extent((4, 6), [10.0, 20.0]) == ([0, 60.0, 80.0, 0], "µm")
    assert rp.image_extent((4, 6), [np.nan, np.nan]) == ([0, 6, 4, 0], "px")
    assert [rp.nice_length(x) for x in (0.7, 3, 9.9, 140, 2500)] == [0.5, 2, 5, 100, 2000]


def test_decimate_max_keeps_every_peak_top():
    mz = np.linspace(100, 1000, 1_000_001)
    intensity = np.zeros_like(mz)
    tops = {150.0: 7.0, 500.5: 3.0, 999.0: 1.0}
    for where, height in tops.items():
        intensity[np.searchsorted(mz, where)] = height
    edges, top = rp.decimate_max(mz, intensity, n_bins=100)
    assert len(edges) == 101 and len(top) == 100
    for where, height in tops.items():
        assert top[np.searchsorted(edges, where) - 1] == height
    assert top.sum() == sum(tops.values())


def test_cluster_colours_are_distinct():
    for n in (1, 8, 10, 15, 30):
        assert len(set(rp.cluster_colours(n))) == n
        assert len(set(rp.annotation_colours(n))) == n
    assert not set(rp.cluster_colours(8)) & set(rp.annotation_colours(8))


def test_external_urls_finds_every_remote_reference():
    page = (
        '<img src="data:image/png;base64,AAAA"><a href="#run">x</a><a href="clusters.tsv">t</a>'
        f'<a href="{rp.PAPER_URL}">paper</a>'
        '<img src="https://cdn.example/x.png"><link href="//fonts.example/css">'
        "<a href=http://x.example/y>z</a><style>b { background: url('http://i.example/b') }"
        '@import "https://s.example/s.css";</style><script src="file:///etc/x.js"></script>'
    )
    assert rp.external_urls(page) == [
        "https://cdn.example/x.png",
        "//fonts.example/css",
        "http://x.example/y",
        "file:///etc/x.js",
        "http://i.example/b",
        "https://s.example/s.css",
    ]
    assert rp.external_urls(rp.page("t", "<p>local</p>")) == []


def test_best_flags_mark_ties_and_skip_nan():
    table = pd.DataFrame({"a": [0.5, 0.9, 0.9], "b": [np.nan, 0.1, 0.0], "c": [np.nan] * 3})
    flags = rp.best_flags(table, ["a", "b", "c"])
    assert flags["a"].tolist() == [False, True, True]
    assert flags["b"].tolist() == [False, True, False]
    assert not flags["c"].any()


def test_metrics_table_shows_annotation_scores_only_when_present():
    metrics = {
        "method_names": {"m1": "first", "answer": "final"},
        "methods": {
            "m1": {"isotopic_recall": 0.5, "cluster_sizes": [3, 0, 2]},
            "answer": {"isotopic_recall": float("nan"), "cluster_sizes": [1, 2, 2]},
        },
    }
    table = rp.metrics_table(metrics)
    assert list(table.columns) == ["key", "method", "clusters used", "isotopic_recall"]
    assert table["clusters used"].tolist() == [2, 3]
    metrics["methods"]["m1"].update(purity=1.0, hungarian_accuracy=1.0, ari=1.0, nmi=1.0)
    metrics["methods"]["answer"].update(purity=1, hungarian_accuracy=1, ari=1, nmi=1)
    assert "hungarian_accuracy" in rp.metrics_table(metrics)


def test_isotope_table_says_whether_pairs_stayed_together():
    iso = pd.DataFrame(
        {
            "mz": [101.0, 201.0],
            "mono_mz": [100.0, 200.0],
            "mono_index": [0, 2],
            "index": [1, 3],
            "order": [1, 1],
            "charge": [1, 1],
            "ppm_error": [0.1, -0.2],
            "correlation": [0.9, 0.8],
        }
    )
    table = rp.isotope_table(iso, np.array([4, 4, 1, 2]))
    assert table["together"].tolist() == [True, False]
    assert table[["mono_cluster", "cluster"]].values.tolist() == [[4, 4], [1, 2]]


def test_wall_times_in_pipeline_order(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for step, sec in (("zzz_custom", 1.0), ("evaluate", 2.0), ("convert", 3.0)):
        (tmp_path / f"{step}.tsv").write_text(
            header + f"{sec}\t0:00:01\t10\tNA\t1\t1\t1\t1\t1\t1\n"
        )
    (tmp_path / "broken.tsv").write_text("")
    (tmp_path / "report.tsv").write_text(header + "9\t0:00:09\t10\tNA\t1\t1\t1\t1\t1\t1\n")
    times = rp.wall_times(tmp_path, ["convert", "peaks", "evaluate", "report"])
    assert times["step"].tolist() == ["convert", "evaluate", "zzz_custom"]
    assert times["seconds"].tolist() == [3.0, 2.0, 1.0]
    assert rp.wall_times(tmp_path / "missing").empty and rp.wall_times(None).empty


def test_flatten_and_fmt():
    assert rp.flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
    assert [rp.fmt(v) for v in (None, float("nan"), 0.12345, 1234, True, "<b>")] == [
        "–",
        "–",
        "0.123",
        "1,234",
        "yes",
        "&lt;b&gt;",
    ]


def test_umap_embedding_is_seeded_and_handles_few_points():
    features = np.random.default_rng(0).normal(size=(12, 6))
    a = rp.umap_embedding(features, seed=3, n_neighbors=15)  # 15 > n - 1: capped
    b = rp.umap_embedding(features, seed=3, n_neighbors=15)
    assert a.shape == (12, 2)
    np.testing.assert_array_equal(a, b)


# --- the report step on a fake results folder -------------------------------------------------

N_IONS, SHAPE = 12, (12, 10)


def fake_results(root, *, annotated: bool = True) -> dict:
    """A small results/{dataset}/ folder as the upstream steps would leave it."""
    out = root / "results" / "fake"
    (out / "model").mkdir(parents=True)
    (out / "benchmarks").mkdir()
    write_small_imzml(root / "fake.imzML", shape=SHAPE)
    convert(root / "fake.imzML", out / "spectra.h5", CONVERT)
    rng = np.random.default_rng(0)
    labels = np.arange(N_IONS) % 3
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    patterns = [xx / SHAPE[1], yy / SHAPE[0], ((yy - 6) ** 2 + (xx - 5) ** 2 < 9) * 1.0]
    mask = np.ones(SHAPE, bool)
    mask[:2, :3] = False
    stack = np.stack(
        [patterns[k] * (1 + i) + 0.1 * rng.random(SHAPE) for i, k in enumerate(labels)]
    ).astype(np.float32)
    stack[:, ~mask] = 0
    mz = np.sort(rng.uniform(150, 850, N_IONS))
    with h5py.File(out / "ion_images.h5", "w") as f:
        f["images"], f["mz"], f["mask"] = stack, mz, mask
        f.attrs.update(normalisation="tic", mask_rule="measured")
    with h5py.File(out / "embeddings.h5", "w") as f:
        f["features"] = (np.eye(3)[labels] + 0.05 * rng.normal(size=(N_IONS, 3))).astype("f4")
        f["mz"] = mz
        f.attrs.update(torch="0.0-test", encoder="fake", image_size=64)
    pd.DataFrame(
        {"mz": mz, "cluster": labels, "confidence": rng.random(N_IONS), "sc_cluster": labels}
    ).to_csv(out / "clusters.tsv", sep="\t", index=False)
    methods = pd.DataFrame({"mz": mz, "pixel_cosine_sc": labels, "answer": labels})
    scores = {"isotopic_recall": 0.5}
    if annotated:
        methods["annotation"] = [f"class_{k}" for k in labels]
        methods.loc[0, "annotation"] = None
        scores.update(purity=1.0, hungarian_accuracy=1.0, ari=1.0, nmi=1.0)
    methods.to_csv(out / "methods.tsv", sep="\t", index=False)
    metrics = {
        "dataset": "fake",
        "n_ions": N_IONS,
        "n_pixels_tissue": int(mask.sum()),
        "n_clusters": 4,
        "n_isotope_pairs": 2,
        "n_annotated": 11 if annotated else 0,
        "n_annotation_rows": 11 if annotated else 0,
        "silhouette": 0.7,
        "stability_ari": 1.0,
        "method_names": {"pixel_cosine_sc": "pixel cosine", "answer": "final"},
        "methods": {
            "pixel_cosine_sc": {**scores, "cluster_sizes": [4, 4, 4, 0]},
            "answer": {**scores, "isotopic_recall": 0.4, "cluster_sizes": [4, 4, 4, 0]},
        },
    }
    (out / "metrics.json").write_text(json.dumps(metrics))
    pd.DataFrame(
        {
            "mz": mz[[3, 2]],
            "mono_mz": mz[[0, 1]],
            "mono_index": [0, 1],  # with index: clusters 0 and 0 (together), 1 and 2 (apart)
            "index": [3, 2],
            "order": [1, 1],
            "charge": [1, 1],
            "ppm_error": [0.1, -0.3],
            "correlation": [0.9, 0.7],
        }
    ).to_csv(out / "isotopes.tsv", sep="\t", index=False)
    sim = np.corrcoef(stack.reshape(N_IONS, -1))
    pairs = [(i, j) for i in range(N_IONS) for j in np.argsort(-sim[i])[1:3]]
    pd.DataFrame(
        {
            "mz": [mz[i] for i, _ in pairs],
            "neighbour_mz": [mz[j] for _, j in pairs],
            "learned": [sim[i, j] for i, j in pairs],
            "metaspace": [sim[i, j] ** 2 for i, j in pairs],
        }
    ).to_csv(out / "colocalization.tsv", sep="\t", index=False)
    (out / "model" / "simclr_history.tsv").write_text(
        "epoch\tloss\tlr\tseconds\n1\t5.0\t0.001\t1.5\n2\t4.5\t0.0005\t1.4\n"
    )
    (out / "model" / "self_label_history.tsv").write_text(
        "epoch\tloss\tconfident_share\n1\t1.2\t0.6\n2\t0.9\t0.65\n"
    )
    (out / "benchmarks" / "convert.tsv").write_text("s\th:m:s\tmax_rss\n1.25\t0:00:01\t120\n")
    eigenvalues = [9.0, 5.0, 3.0, 2.0, 1.1, 1.0, 0.9]  # 4 patterns above the null
    null = [1.9, 1.7, 1.6, 1.5, 1.4, 1.3, 1.2]
    chosen_by = "parallel_analysis" if annotated else "given"
    write_n_clusters(out / "n_clusters.json", 4, chosen_by, eigenvalues, null)
    return {
        "spectra": out / "spectra.h5",
        "images": out / "ion_images.h5",
        "embeddings": out / "embeddings.h5",
        "clusters": out / "clusters.tsv",
        "metrics": out / "metrics.json",
        "methods_table": out / "methods.tsv",
        "isotopes": out / "isotopes.tsv",
        "colocalization": out / "colocalization.tsv",
        "simclr_history": out / "model" / "simclr_history.tsv",
        "self_label_history": out / "model" / "self_label_history.tsv",
        "k_choice": out / "n_clusters.json",
        "html": out / "report.html",
        "cluster_means": out / "cluster_means",
    }


def pca_2d(features, **_):
    """Stand-in for UMAP in the step tests: numba's first compile alone takes ~10 s."""
    centred = features - features.mean(axis=0)
    return np.linalg.svd(centred, full_matrices=False)[0][:, :2]


def build_report(tmp_path, monkeypatch, annotated=True) -> dict:
    paths = fake_results(tmp_path, annotated=annotated)
    monkeypatch.setattr(rp, "umap_embedding", pca_2d)
    load_step("report").main(
        **paths,
        parameters={"seed": 0, "cluster": {"n_clusters": 4}},
        benchmarks=paths["html"].parent / "benchmarks",
        settings=workflow_settings("report", max_thumbnails=3),
        seed=0,
        dataset="fake",
    )
    return paths


@pytest.mark.parametrize("annotated", [True, False])
def test_report_is_self_contained(tmp_path, monkeypatch, annotated):
    paths = build_report(tmp_path, monkeypatch, annotated)
    text = paths["html"].read_text(encoding="utf-8")
    assert rp.external_urls(text) == []
    # the explorer's script and data are inline: no script is fetched
    assert re.findall(r"<script[^>]*>", text) == [
        '<script type="application/json" id="explorer-data">',
        "<script>",
    ]
    srcs = re.findall(r"<img[^>]*\ssrc=\"([^\"]*)\"", text)
    assert len(srcs) == len(re.findall(r"<img", text)) >= 1 + 3 + 1 + 1  # all <img> seen
    # member grids name their ions, most confident first, for the script to draw from the
    # explorer's thumbnails (each image is in the file once)
    clusters = pd.read_csv(paths["clusters"], sep="\t")
    grids = re.findall(r'<div class="ex-grid" data-members="([^"]*)"></div>', text)
    assert len(grids) == 3
    for k, grid in enumerate(grids):
        members = np.flatnonzero(clusters.cluster == k)
        members = members[np.argsort(-clusters.confidence[members].to_numpy(), kind="stable")]
        assert [int(i) for i in grid.split()] == members[:3].tolist()
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    anchors = re.findall(r'<(?:h2|section) id="([a-z]+)"', text)
    # the answer first (explorer, clusters); how it was made below
    assert anchors == [
        "explore",
        "clusters",
        "umap",
        "spectrum",
        "metrics",
        "isotopes",
        "training",
        "run",
        "exports",
    ]
    # the three non-empty clusters get a PNG; the empty fourth is named, not drawn
    files = sorted(p.name for p in paths["cluster_means"].iterdir())
    assert files == ["cluster_00.png", "cluster_01.png", "cluster_02.png"]
    assert "Empty clusters: 3" in text
    # how the number of clusters came: the parallel-analysis plot, or "as given"
    assert ("<b>n_clusters: auto</b> chose <b>4</b>" in text) == annotated
    assert ("4 clusters, as given" in text) == (not annotated)
    # fewer non-empty clusters than requested never passes silently
    assert "fewer non-empty clusters than the 4 requested" in text
    assert "final (3)" in text and "pixel cosine (3)" in text
    assert "Not shown (1)" in text  # 4 members per cluster, 3 thumbnails
    assert "1 of 2 isotope pairs (50 %)" in text
    assert ("Hungarian accuracy" in text) == annotated
    assert ("by the known annotation" in text) == annotated
    assert 'href="clusters.tsv"' in text and 'href="cluster_means"' in text
    assert "0.0-test" in text  # torch version from embeddings.h5


def test_report_refuses_mismatched_clusters(tmp_path, monkeypatch):
    paths = fake_results(tmp_path)
    table = pd.read_csv(paths["clusters"], sep="\t")
    table.iloc[:-1].to_csv(paths["clusters"], sep="\t", index=False)
    monkeypatch.setattr(rp, "umap_embedding", pca_2d)
    with pytest.raises(Exception, match=f"not those of the {N_IONS} ion images"):
        load_step("report").main(
            **paths, settings=workflow_settings("report"), seed=0, dataset="fake"
        )


def test_summary_links_every_report(tmp_path):
    results = tmp_path / "results"
    for name, annotated in (("a", True), ("b", False)):
        (results / name).mkdir(parents=True)
        final = {"isotopic_recall": 0.75, "cluster_sizes": [2, 0, 3]}
        if annotated:
            final.update(hungarian_accuracy=0.9, ari=0.8)
        (results / name / "metrics.json").write_text(
            json.dumps(
                {
                    "n_ions": 5,
                    "n_pixels_tissue": 100,
                    "n_clusters": 3,
                    "n_isotope_pairs": 4,
                    "silhouette": 0.5,
                    "stability_ari": 1.0,
                    "methods": {"answer": final},
                }
            )
        )
    load_step("summary").main(results / "summary.html", datasets=["a", "b"])
    text = (results / "summary.html").read_text()
    assert rp.external_urls(text) == []
    assert '<a href="a/report.html">a</a>' in text and '<a href="b/report.html">b</a>' in text
    rows = re.findall(r"<tr>(.*?)</tr>", text)[1:]
    assert "0.900" in rows[0] and "0.800" in rows[0] and "2 of 3" in rows[0]
    assert rows[1].count("–") == 2 and "0.750" in rows[1]


def test_steps_have_a_command_line():
    for name in ("report.py", "summary.py"):
        res = run_script(name, "--help")
        assert res.returncode == 0, res.stderr
        assert "--report.percentile" in res.stdout or "--datasets" in res.stdout


@pytest.mark.skipif(
    not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
    reason="Chromium is not installed (apt-get install chromium)",
)
def test_report_renders_offline_in_chromium(tmp_path, monkeypatch):
    paths = build_report(tmp_path, monkeypatch)
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "screenshot_report.py"),
            str(paths["html"]),
            "--out",
            str(tmp_path / "shots"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "shots" / "report.png").stat().st_size > 10_000


def test_shown_parameters_take_the_data_sets_values():
    from msicoloc.report_data import dataset_parameters

    config = {"seed": 0, "cluster": {"n_clusters": 10, "n_neighbors": 5}, "peaks": {"snr": 5}}
    shown = dataset_parameters(config, n_clusters=8, mz_list="my.tsv")
    assert shown["cluster"] == {"n_clusters": 8, "n_neighbors": 5}
    assert shown["peaks"] == {"snr": 5, "mz_list": "my.tsv"}
    assert config["cluster"]["n_clusters"] == 10  # the config itself is left alone
    as_json = dataset_parameters(json.dumps(config), n_clusters=None, mz_list=None)
    assert as_json == config


def test_explorer_data_holds_every_ion_its_partners_and_the_clusters(tmp_path, monkeypatch):
    paths = build_report(tmp_path, monkeypatch)
    text = paths["html"].read_text(encoding="utf-8")
    blob = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', text)
    data = json.loads(blob.group(1))
    clusters = pd.read_csv(paths["clusters"], sep="\t")
    coloc = pd.read_csv(paths["colocalization"], sep="\t")
    assert len(data["mz"]) == len(data["thumb"]) == len(data["partners"]) == N_IONS
    np.testing.assert_allclose(data["mz"], clusters.mz, atol=1e-5)
    assert data["cluster"] == clusters.cluster.tolist()
    for uri in data["thumb"]:
        assert base64.b64decode(uri.split(",", 1)[1]).startswith(PNG_MAGIC)
    # partners point at the right ions, with both scores of colocalization.tsv
    for i, rows in enumerate(data["partners"]):
        want = coloc[np.isclose(coloc.mz, clusters.mz[i])]
        assert [clusters.mz[j] for j, *_ in rows] == pytest.approx(want.neighbour_mz.tolist())
        assert [s for _, s, _ in rows] == pytest.approx(want.learned.round(4).tolist())
        assert [s for *_, s in rows] == pytest.approx(want.metaspace.round(4).tolist())
    assert [c["size"] for c in data["clusters"]] == [4, 4, 4, 0]
    assert data["clusters"][3]["mean"] == "" and data["clusters"][0]["mean"].startswith("data:")
    xy = np.array(data["umap"])
    assert xy.shape == (N_IONS, 2) and xy.min() == 0 and xy.max() == 1
    assert len(data["spectrum"]["peak"]) == N_IONS and max(data["spectrum"]["top"]) == 1


def test_palette_thumbnails_follow_the_tile_colour_rule():
    from PIL import Image

    from msicoloc.report_explorer import palette_png

    unit = np.linspace(0, 1, 12).reshape(3, 4)
    mask = np.ones((3, 4), bool)
    mask[0, 0] = False
    uri = palette_png(unit, mask)
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
    rgb = np.asarray(image)
    assert tuple(rgb[0, 0]) == (0xD9, 0xD9, 0xD9)  # off tissue: the report's grey
    viridis_top = np.round(np.array(rp.colormaps["viridis"](1.0)[:3]) * 255)
    np.testing.assert_array_equal(rgb[2, 3], viridis_top)  # 1.0: the top of viridis


def test_colocalization_table_is_checked_against_the_ion_images(tmp_path):
    """A pair whose m/z is no ion image's (a table of an earlier run) or a missing score
    column stops with one line naming the file and the row, instead of pairs left out."""
    from msicoloc import InputError
    from msicoloc.report_data import read_colocalization

    mz = np.array([300.1, 200.2, 400.123456])
    path = tmp_path / "colocalization.tsv"
    good = (
        "mz\tneighbour_mz\tlearned\tmetaspace\n"
        "200.2\t400.123456\t0.9\t0.5\n400.123456\t300.1\t0.8\t0.1\n"
    )
    path.write_text(good)
    table = read_colocalization(path, mz)
    assert table.ion.tolist() == [1, 2] and table.neighbour.tolist() == [2, 0]
    path.write_text(good + "300.1\t250.0\t0.7\t0.2\n")
    with pytest.raises(InputError, match=r"row 4: neighbour_mz 250.0 is not the m/z of an ion"):
        read_colocalization(path, mz)
    path.write_text("mz\tneighbour_mz\tcosine\n200.2\t300.1\t0.9\n")
    with pytest.raises(InputError, match="no column learned, metaspace") as err:
        read_colocalization(path, mz)
    assert "\n" not in str(err.value) and str(path) in str(err.value)

"""The report's explorer: find an ion, see its image, cluster and co-localized partners.

Everything the explorer shows is computed here and embedded in the page as one JSON block;
plain JavaScript (:data:`SCRIPT`) draws it, with no library, server or network. Images are
small palette PNGs (viridis on each image's own tile scale, grey off tissue, the report's
colour rule), so 2,000 ion images stay a few megabytes and the page opens at once: an image
element is only created when a view shows it.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import to_rgb

from msicoloc import report as rp
from msicoloc.images import block_reduce
from msicoloc.report_data import Run

#: Longest side of an explorer thumbnail, in image pixels (the small level is shrunk to it).
THUMB_SIDE = 96


def palette_png(unit: np.ndarray, mask: np.ndarray) -> str:
    """A data URI of ``unit`` (values 0..1) as an 8-bit palette PNG: viridis on tissue, the
    report's off-tissue grey elsewhere."""
    from PIL import Image

    index = np.round(np.clip(unit, 0.0, 1.0) * 254).astype(np.uint8)
    index[~mask] = 255
    palette = (colormaps["viridis"](np.linspace(0, 1, 255))[:, :3] * 255).round()
    palette = np.vstack([palette, np.array(to_rgb(rp.OFF_TISSUE)) * 255]).astype(np.uint8)
    image = Image.fromarray(index, mode="P")
    image.putpalette(palette.ravel().tolist())
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnails(stack: np.ndarray, mask: np.ndarray, percentile: float) -> list[str]:
    """One palette PNG per image, shrunk to :data:`THUMB_SIDE`, on the tile colour rule."""
    factor = max(1, -(-max(mask.shape) // THUMB_SIDE))
    small = block_reduce(mask.astype(float), factor) > 0.5 if factor > 1 else mask
    out = []
    for image in stack:
        unit = rp.scale_unit(image.astype(float), mask, percentile)
        out.append(palette_png(block_reduce(unit, factor) if factor > 1 else unit, small))
    return out


def partners(coloc: pd.DataFrame, n_ions: int) -> list[list[list[float]]]:
    """Per ion, its partners as [index, learned, METASPACE-style], from colocalization.tsv as
    :func:`msicoloc.report_data.read_colocalization` reads it."""
    out: list[list[list[float]]] = [[] for _ in range(n_ions)]
    for row in coloc.itertuples(index=False):
        out[row.ion].append([row.neighbour, round(row.learned, 4), round(row.metaspace, 4)])
    return out


def payload(
    run: Run,
    coloc: pd.DataFrame,
    xy: np.ndarray | None,
    means: tuple[np.ndarray, np.ndarray],
    colours: list[str],
    percentile: float,
) -> dict:
    """Everything the explorer shows, as plain lists for the page's JSON block; ``means``
    are the cluster mean images and sizes (:func:`msicoloc.report.cluster_means`)."""
    n = len(run.mz)
    names = run.clusters["name"].fillna("").astype(str).tolist() if "name" in run.clusters else []
    conf = run.clusters.get("confidence", pd.Series(np.full(n, np.nan))).to_numpy(float)
    means, sizes = means
    edges, top = rp.decimate_max(run.mean_mz, run.mean_intensity, 1000)
    top = top / max(float(top.max()), 1e-30)  # the spectrum's heights on 0..1
    if xy is not None and len(xy):
        span = np.ptp(xy, axis=0)
        xy = (xy - xy.min(axis=0)) / np.where(span > 0, span, 1.0)
    return {
        "dataset": run.dataset,
        "mz": [round(float(m), 6) for m in run.mz],  # as clusters.tsv
        "name": names or [""] * n,
        "cluster": run.labels.astype(int).tolist(),
        "confidence": [None if not np.isfinite(c) else round(float(c), 3) for c in conf],
        "thumb": thumbnails(run.stack, run.mask, percentile),
        "partners": partners(coloc, n),
        "umap": None if xy is None else np.round(xy, 4).tolist(),
        "clusters": [
            {
                "colour": colours[k],
                "size": int(sizes[k]),
                "mean": thumbnails(means[k : k + 1], run.mask, percentile)[0] if sizes[k] else "",
            }
            for k in range(run.n_clusters)
        ],
        "spectrum": {
            "lo": float(edges[0]),
            "hi": float(edges[-1]),
            "top": np.round(top, 4).tolist(),
            "peak": np.round(rp.bin_values(edges, top, run.mz), 4).tolist(),
        },
    }


def section(data: dict) -> str:
    """The explorer's HTML: the views' containers, the JSON block and the script."""
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    named = any(data["name"])
    hint = "m/z (e.g. {:.4f}){}".format(data["mz"][0] if data["mz"] else 0, " or name" * named)
    return f"""<section id="explore">
<h2>Explore the ions</h2>
<p class="note">Search an ion by m/z{" or molecule name" * named}; click any image, UMAP point,
spectrum peak or cluster tile to go there. Partners: the ions most similar by the learned
features and by the METASPACE-style score (colocalization.tsv), both scores side by side.</p>
<div class="ex-bar"><input id="ex-search" type="search" autocomplete="off"
placeholder="{rp.esc(hint)}" aria-label="search an ion">
<button id="ex-go" type="button">Show</button> <span id="ex-status" class="note"></span></div>
<div id="ex-results"></div>
<div id="ex-tiles" class="ex-tiles"></div>
<div class="ex-main"><div id="ex-view"></div><div class="ex-side"><svg id="ex-umap"
viewBox="0 0 300 300" role="img" aria-label="UMAP of the learned features"></svg>
<p class="note">UMAP of the learned features; colour: cluster.</p></div></div>
<svg id="ex-spectrum" viewBox="0 0 1000 160" preserveAspectRatio="none" role="img"
aria-label="mean spectrum with the picked peaks"></svg>
<p class="note">Mean spectrum (grey) and the picked peaks, coloured by cluster.</p>
</section>
<script type="application/json" id="explorer-data">{blob}</script>
<script>{SCRIPT}</script>"""


CSS = """
.ex-bar { margin: 8px 0; } .ex-bar input { font-size: 15px; padding: 4px 8px; width: 340px; }
.ex-bar button { font-size: 15px; padding: 4px 12px; }
#ex-results { display: flex; flex-wrap: wrap; gap: 6px; margin: 4px 0; }
#ex-results button, .ex-chip { border: 1px solid #ccc; background: #fafafa; border-radius: 12px;
  padding: 1px 10px; cursor: pointer; font-size: 13px; }
.ex-tiles { display: flex; flex-wrap: wrap; gap: 6px; margin: 10px 0; }
.ex-tile { border: 3px solid transparent; padding: 2px; cursor: pointer; text-align: center;
  font-size: 12px; background: #fff; }
.ex-tile img { width: 88px; image-rendering: pixelated; display: block; }
.ex-tile.on { outline: 2px solid #222; }
.ex-main { display: flex; gap: 18px; align-items: flex-start; flex-wrap: wrap; }
#ex-view { flex: 1 1 560px; min-height: 320px; } .ex-side { flex: 0 0 310px; }
#ex-umap { width: 300px; height: 300px; border: 1px solid #eee; }
#ex-umap circle, #ex-spectrum line { cursor: pointer; }
#ex-spectrum { width: 100%; height: 160px; border: 1px solid #eee; }
.ex-big { width: 256px; image-rendering: pixelated; border: 1px solid #ddd; }
.ex-head { display: flex; gap: 16px; align-items: flex-start; }
.ex-head h3 { margin-top: 0; } .ex-head dl { margin: 0; font-size: 14px; }
.ex-head dt { color: #666; float: left; clear: left; width: 110px; }
.ex-head dd { margin: 0 0 2px 110px; }
#ex-view table img { width: 40px; image-rendering: pixelated; display: block; }
#ex-view tbody tr { cursor: pointer; } #ex-view tbody tr:hover td { background: #f3f8ff; }
#ex-view th button { border: 0; background: none; font: inherit; cursor: pointer; padding: 0; }
.ex-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(104px, 1fr));
  gap: 6px; }
.ex-grid figure { margin: 0; cursor: pointer; font-size: 12px; border: 1px solid #eee;
  padding: 3px; }
.ex-grid img { width: 96px; image-rendering: pixelated; display: block; }
.ex-grid figcaption { margin: 0; font-size: 12px; }
.ex-controls { margin: 6px 0; font-size: 14px; } .ex-controls input { width: 200px; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("explorer-data").textContent);
  const n = D.mz.length, NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  const fmt = (v, d) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
  const label = (i) => D.mz[i].toFixed(4) + (D.name[i] ? " " + D.name[i] : "");
  let sortKey = 1;  // partners by learned (1) or METASPACE-style (2) score

  function img(uri, alt, cls) {
    const el = document.createElement("img");
    el.setAttribute("src", uri);
    el.alt = alt;
    if (cls) el.className = cls;
    return el;
  }
  function chip(k) {
    return '<button class="ex-chip" data-cluster="' + k + '" style="border-color:' +
      D.clusters[k].colour + '">cluster ' + k + "</button>";
  }

  // --- search: an m/z (nearest ion) or part of a name --------------------------------------
  function search(text) {
    text = text.trim();
    if (!text) return [];
    const value = Number(text.replace(",", "."));
    if (Number.isFinite(value) && /^[0-9.,]+$/.test(text)) {
      const order = [...Array(n).keys()].sort(
        (a, b) => Math.abs(D.mz[a] - value) - Math.abs(D.mz[b] - value));
      return order.slice(0, 8);
    }
    const low = text.toLowerCase();
    return [...Array(n).keys()].filter((i) => D.name[i].toLowerCase().includes(low)).slice(0, 20);
  }
  function runSearch(go) {
    const hits = search($("ex-search").value);
    $("ex-results").innerHTML = hits.map((i) =>
      '<button data-ion="' + i + '">' + esc(label(i)) + "</button>").join("");
    $("ex-status").textContent = $("ex-search").value.trim() ?
      (hits.length ? "" : "no ion matches") : "";
    if (go && hits.length) show("ion", hits[0]);
  }

  // --- views ---------------------------------------------------------------------------------
  function ionView(i) {
    const c = D.cluster[i], rows = D.partners[i].slice().sort((a, b) => b[sortKey] - a[sortKey]);
    const arrow = (k) => (sortKey === k ? " ▾" : "");
    const v = $("ex-view");
    v.innerHTML = '<div class="ex-head"><div id="ex-big"></div><div><h3 id="ex-title">m/z ' +
      D.mz[i].toFixed(4) + "</h3><dl>" +
      (D.name[i] ? "<dt>name</dt><dd>" + esc(D.name[i]) + "</dd>" : "") +
      "<dt>cluster</dt><dd>" + chip(c) + "</dd><dt>confidence</dt><dd>" +
      fmt(D.confidence[i], 2) + "</dd></dl></div></div>" +
      "<h3>Co-localized partners</h3><table><thead><tr><th>image</th><th>m/z</th>" +
      "<th>name</th><th class=num><button data-sort=1>learned cosine" + arrow(1) +
      "</button></th><th class=num><button data-sort=2>METASPACE-style" + arrow(2) +
      "</button></th><th>cluster</th></tr></thead><tbody id=ex-partners></tbody></table>";
    $("ex-big").appendChild(img(D.thumb[i], "ion image m/z " + D.mz[i].toFixed(4), "ex-big"));
    const body = $("ex-partners");
    for (const [j, learned, meta] of rows) {
      const tr = document.createElement("tr");
      tr.dataset.ion = j;
      tr.innerHTML = "<td></td><td>" + D.mz[j].toFixed(4) + "</td><td>" + esc(D.name[j]) +
        "</td><td class=num>" + fmt(learned, 3) + "</td><td class=num>" + fmt(meta, 3) +
        "</td><td>" + chip(D.cluster[j]) + "</td>";
      tr.firstChild.appendChild(img(D.thumb[j], "m/z " + D.mz[j].toFixed(4)));
      body.appendChild(tr);
    }
  }
  function memberFigure(i) {  // an ion's thumbnail with m/z, confidence and name
    const fig = document.createElement("figure");
    fig.dataset.ion = i;
    fig.appendChild(img(D.thumb[i], "m/z " + D.mz[i].toFixed(4)));
    const cap = document.createElement("figcaption");
    cap.textContent = D.mz[i].toFixed(4) + " · " + fmt(D.confidence[i], 2) +
      (D.name[i] ? " · " + D.name[i] : "");
    fig.appendChild(cap);
    return fig;
  }
  function clusterView(k) {
    const v = $("ex-view"), members = [...Array(n).keys()].filter((i) => D.cluster[i] === k);
    const conf = members.map((i) => D.confidence[i]).filter((x) => x !== null);
    const avg = conf.length ? conf.reduce((a, b) => a + b, 0) / conf.length : null;
    v.innerHTML = '<div class="ex-head"><div id="ex-big"></div><div><h3 id="ex-title">' +
      "cluster " + k + "</h3><dl><dt>ion images</dt><dd>" + members.length +
      "</dd><dt>confidence</dt><dd>mean " + fmt(avg, 2) + "</dd></dl></div></div>" +
      '<div class="ex-controls">filter <input id="ex-filter" type="search" ' +
      'placeholder="m/z or name"> sort <select id="ex-sort"><option value="confidence">' +
      'confidence</option><option value="mz">m/z</option><option value="name">name</option>' +
      '</select> <span id="ex-count" class="note"></span></div><div id="ex-members" ' +
      'class="ex-grid"></div>';
    const mean = D.clusters[k].mean;
    if (mean) $("ex-big").appendChild(img(mean, "cluster " + k + " mean image", "ex-big"));
    const draw = () => {
      const text = $("ex-filter").value.trim().toLowerCase(), by = $("ex-sort").value;
      const shown = members.filter((i) => !text || label(i).toLowerCase().includes(text));
      shown.sort(by === "mz" ? (a, b) => D.mz[a] - D.mz[b] :
        by === "name" ? (a, b) => D.name[a].localeCompare(D.name[b]) || D.mz[a] - D.mz[b] :
        (a, b) => (D.confidence[b] ?? -1) - (D.confidence[a] ?? -1));
      const grid = $("ex-members");
      grid.textContent = "";
      for (const i of shown) grid.appendChild(memberFigure(i));
      $("ex-count").textContent = shown.length + " of " + members.length + " shown";
    };
    $("ex-filter").addEventListener("input", draw);
    $("ex-sort").addEventListener("change", draw);
    draw();
  }

  // --- the UMAP, the spectrum and the cluster tiles point at what is shown --------------------
  function highlight(kind, x) {
    for (const el of document.querySelectorAll("#ex-umap circle")) {
      const i = Number(el.dataset.ion), on = kind === "ion" ? i === x : D.cluster[i] === x;
      el.setAttribute("r", kind === "ion" && on ? 6 : 3);
      el.setAttribute("opacity", on || kind === "ion" ? 1 : 0.25);
      el.setAttribute("stroke", kind === "ion" && on ? "#000" : "none");
    }
    for (const el of document.querySelectorAll(".ex-tile")) {
      const k = Number(el.dataset.cluster);
      el.classList.toggle("on", kind === "cluster" ? k === x : k === D.cluster[x]);
    }
    for (const el of document.querySelectorAll("#ex-spectrum line")) {
      const i = Number(el.dataset.ion);
      el.setAttribute("stroke-width", (kind === "ion" ? i === x : D.cluster[i] === x) ? 4 : 1.5);
    }
  }
  function drawOverview() {
    const tiles = $("ex-tiles");
    D.clusters.forEach((c, k) => {
      if (!c.size) return;
      const t = document.createElement("div");
      t.className = "ex-tile";
      t.dataset.cluster = k;
      t.style.borderColor = c.colour;
      t.appendChild(img(c.mean, "cluster " + k + " mean image"));
      t.appendChild(document.createTextNode("cluster " + k + " (" + c.size + ")"));
      tiles.appendChild(t);
    });
    const umap = $("ex-umap");
    if (D.umap) {
      D.umap.forEach(([x, y], i) => {
        const c = document.createElementNS(NS, "circle");
        c.setAttribute("cx", 10 + 280 * x);
        c.setAttribute("cy", 290 - 280 * y);
        c.setAttribute("r", 3);
        c.setAttribute("fill", D.clusters[D.cluster[i]].colour);
        c.dataset.ion = i;
        const t = document.createElementNS(NS, "title");
        t.textContent = label(i) + " (cluster " + D.cluster[i] + ")";
        c.appendChild(t);
        umap.appendChild(c);
      });
    }
    const sp = $("ex-spectrum"), S = D.spectrum, X = (m) => 1000 * (m - S.lo) / (S.hi - S.lo || 1);
    const path = document.createElementNS(NS, "path");
    path.setAttribute("d", "M0,155" + S.top.map((v, b) =>
      "L" + (b * 1000 / S.top.length).toFixed(1) + "," + (155 - 145 * v).toFixed(1)).join(""));
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "#999");
    sp.appendChild(path);
    D.mz.forEach((m, i) => {
      const l = document.createElementNS(NS, "line"), x = X(m).toFixed(1);
      l.setAttribute("x1", x);
      l.setAttribute("x2", x);
      l.setAttribute("y1", 155);
      l.setAttribute("y2", (150 - 140 * D.spectrum.peak[i]).toFixed(1));
      l.setAttribute("stroke", D.clusters[D.cluster[i]].colour);
      l.setAttribute("stroke-width", 1.5);
      l.dataset.ion = i;
      const t = document.createElementNS(NS, "title");
      t.textContent = label(i);
      l.appendChild(t);
      sp.appendChild(l);
    });
  }

  // --- one way to change the view: the address (#explore/ion/3), so Back works -------------
  function show(kind, x) { location.hash = "explore/" + kind + "/" + x; }
  function route() {
    const m = /^#explore\/(ion|cluster)\/(\d+)$/.exec(location.hash);
    let kind = "cluster", x = D.clusters.findIndex((c) => c.size > 0);  // opens on the clusters
    if (m) { kind = m[1]; x = Number(m[2]); }
    if ((kind === "ion" && x >= n) || (kind === "cluster" && !(D.clusters[x] || {}).size)) return;
    if (kind === "ion") ionView(x); else clusterView(x);
    highlight(kind, x);
    document.body.dataset.view = kind + "/" + x;  // for tests and bookmarks
  }
  document.getElementById("explore").addEventListener("click", (e) => {
    const t = e.target.closest("[data-ion],[data-cluster],[data-sort]");
    if (!t) return;
    if (t.dataset.sort) { sortKey = Number(t.dataset.sort); route(); return; }
    if (t.dataset.ion !== undefined) show("ion", t.dataset.ion);
    else show("cluster", t.dataset.cluster);
  });
  $("ex-search").addEventListener("input", () => runSearch(false));
  $("ex-search").addEventListener("keydown", (e) => { if (e.key === "Enter") runSearch(true); });
  $("ex-go").addEventListener("click", () => runSearch(true));
  window.addEventListener("hashchange", () => {
    if (location.hash.startsWith("#explore/")) route();
  });
  // the cluster section's member grids (below this script: drawn once the page is parsed)
  // show the same thumbnails, so the file holds each image once
  function drawMemberGrids() {
    for (const grid of document.querySelectorAll("[data-members]")) {
      for (const i of grid.dataset.members.split(" ").filter(Boolean)) {
        grid.appendChild(memberFigure(Number(i)));
      }
      grid.addEventListener("click", (e) => {
        const t = e.target.closest("[data-ion]");
        if (!t) return;
        show("ion", t.dataset.ion);
        $("explore").scrollIntoView();
      });
    }
  }
  document.addEventListener("DOMContentLoaded", drawMemberGrids);
  drawOverview();
  route();
})();
"""

"""Molecule names from METASPACE exports and plain tables, matched to peaks."""

import numpy as np
import pandas as pd
import pytest

from msicoloc import InputError
from msicoloc.names import match_names, read_names

# As METASPACE exports it: comment lines, then CSV with quoted molecule lists.
METASPACE_CSV = """\
# Generated at 12/4/2026 10:00:00 PM. For help see https://bit.ly/2HO2uz4
# URL: https://metaspace2020.eu/annotations?ds=2026-12-04_10h00m00s
"group","datasetName","datasetId","formula","adduct","mz","msm","fdr","rhoSpatial","rhoSpectral","rhoChaos","moleculeNames","moleculeIds"
"lab","brain","2026-12-04_10h00m00s","C42H82NO8P","+H",760.585083,0.95,0.05,0.9,0.95,0.99,"PC(34:1), PC(16:0/18:1), PC(18:1/16:0), PE(37:1)","HMDB1, HMDB2, HMDB3, HMDB4"
"lab","brain","2026-12-04_10h00m00s","C40H80NO8P","+Na",756.551331,0.9,0.1,0.8,0.9,0.98,"PC(32:0)","HMDB5"
"lab","brain","2026-12-04_10h00m00s","C39H76NO8P","+K",756.552000,0.8,0.2,0.7,0.8,0.97,"PE(34:1)","HMDB6"
"""


def test_metaspace_export_gives_ion_and_molecule_names(tmp_path):
    path = tmp_path / "brain_annotations.csv"
    path.write_text(METASPACE_CSV)
    table = read_names(path)
    assert table["mz"].tolist() == pytest.approx([756.551331, 756.552, 760.585083])
    assert table["name"].iloc[2] == "C42H82NO8P+H: PC(34:1), PC(16:0/18:1), PC(18:1/16:0), ..."
    assert table["name"].iloc[0] == "C40H80NO8P+Na: PC(32:0)"


def test_plain_table_and_ambiguous_matches(tmp_path):
    path = tmp_path / "names.tsv"
    path.write_text("mz\tname\n500.0\tlipid A\n500.001\tlipid B\n600.0\tlipid C\n")
    table = read_names(path)
    peaks = np.array([500.0004, 600.0012, 700.0])
    got = match_names(peaks, table, tolerance_ppm=3.0)
    # two names within 3 ppm of 500.0004 (0.8 and 1.2 ppm): both shown, marked, none picked
    assert got[0] == "lipid A | lipid B (ambiguous)"
    assert got[1] == "lipid C" and got[2] == ""
    assert match_names(peaks, table, tolerance_ppm=1.0)[0] == "lipid A"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mz\tname\n500.0\tlipid A\nabc\tlipid B\n", r"names\.tsv: row 3: needs a positive m/z"),
        ("mz\tname\n500.0\t\n", r"names\.tsv: row 2: needs a positive m/z and a name"),
        ("mass\tlabel\n500.0\tx\n", r"names\.tsv: needs columns mz and name, or a METASPACE"),
    ],
    ids=["bad-mz", "no-name", "columns"],
)
def test_malformed_tables_name_the_file_and_row(tmp_path, text, message):
    path = tmp_path / "names.tsv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_names(path)


def test_names_reach_clusters_colocalization_members_and_network(tmp_path):
    import networkx as nx

    from msicoloc.cluster import read_clusters, write_clusters
    from msicoloc.evaluate import cluster_members, colocalization_table, pair_scores, write_graphml

    mz = np.array([300.0, 400.0, 500.0, 600.0])
    names = np.array(["alpha", "", "NA", "beta | gamma (ambiguous)"], dtype=object)
    write_clusters(
        tmp_path / "clusters.tsv",
        mz,
        cluster=np.array([0, 0, 1, 1]),
        confidence=np.ones(4),
        name=names,
    )
    table = read_clusters(tmp_path / "clusters.tsv", mz)
    assert table["name"].tolist() == names.tolist()  # "" and "NA" stay text
    features = np.eye(4) + 0.5
    scores = pair_scores(features, features)
    coloc = colocalization_table(mz, scores, table, top_n=1)
    assert coloc["name"].tolist() == names.tolist()
    assert coloc["neighbour_name"].iloc[1] == "alpha"  # ion 1's nearest is ion 0
    assert cluster_members(table, scores["metaspace"])["name"].tolist() == [
        "alpha",
        "",
        "NA",
        names[3],
    ]
    write_graphml(
        tmp_path / "n.graphml",
        mz,
        table,
        pd.DataFrame(
            {"source": [0], "target": [1], "learned_cosine": [0.9], "metaspace_score": [0.8]}
        ),
    )
    graph = nx.read_graphml(tmp_path / "n.graphml")
    assert graph.nodes["ion3"]["name"] == names[3]

"""Exports for other tools: the raw votes in crowd-kit's layout, read by crowd-kit itself, and a release as a
Hugging Face `datasets` dataset (Parquet + dataset card), loaded by `datasets`."""

import pandas as pd
import pytest
from django.core.management import call_command

from labels.services.create import release_create
from labels.services.interop import release_hf_export, votes_crowdkit_csv


def test_votes_in_crowdkits_layout_feed_its_aggregators(crowd, tmp_path):
    from crowdkit.aggregation import MajorityVote

    ds, _clips, workers = crowd
    out = tmp_path / "votes.csv"
    n = votes_crowdkit_csv(ds, out)
    df = pd.read_csv(out)
    assert list(df.columns) == ["worker", "task", "label"] and len(df) == n
    assert set(df["label"]) == {0, 1}
    assert set(df["worker"]) == {f"simulated:{w.external_id}" for w in workers}  # approved work only
    # a_clip: the three best say "cow lowing" audible, not visible; the fourth says no
    cow = df[df["task"] == "a_clip|cow lowing|audible"]
    assert sorted(cow["label"]) == [0, 1, 1, 1]
    result = MajorityVote().fit_predict(df)
    assert result["a_clip|cow lowing|audible"] == 1 and result["a_clip|cow lowing|visible"] == 0
    assert result["a_clip|voice_over"] == 0  # 1 of 4
    assert result["b_clip|dog barking|visible"] == 1 and result["b_clip|dog barking|audible"] == 0
    c_votes = df[df["task"].str.startswith("c_clip|")]
    assert set(c_votes["worker"]) == {"simulated:w0", "simulated:w1"}  # w2's c_clip assignment was rejected


def test_release_as_a_hugging_face_dataset(crowd, tmp_path):
    ds, _clips, _w = crowd
    release = release_create(ds, "v1", params={"k": 3})
    files = release_hf_export(release, tmp_path / "hf")
    card = (tmp_path / "hf" / "README.md").read_text()
    assert card.startswith("---\n") and "configs:" in card and "path: data/test-00000-of-00001.parquet" in card
    assert "## Label schema" in card and "0. ambulance siren" in card and "`origin`" in card
    assert (
        "## Quality" in card
        and "Krippendorff's alpha, audible" in card
        and f"| clips | {release.stats['clips']} |" in card
    )
    assert "## Provenance" in card and "method: `majority`" in card and "crowd workers: 4" in card
    # the quality card, measured without the gold clip's own gold: the crowd's cello against gold violin scores 0
    assert "### F1 against the gold standard" in card and "on 1 gold clips, leave-one-out" in card
    assert "| all | 0.000 (0.000–0.000) | 0.000 (0.000–0.000) |" in card and "| audible |" in card
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is in requirements-dev.txt
        pytest.skip("datasets is not installed")
    loaded = datasets.load_dataset("parquet", data_files={"test": str(files[1])}, cache_dir=str(tmp_path / "cache"))[
        "test"
    ]
    assert loaded.num_rows == release.stats["clips"]
    row = next(r for r in loaded if r["video_id"] == "a_clip")
    assert {"label": "cow lowing", "modality": "A", "origin": "human"} in row["labels"]
    assert row["background_music"] is True
    # the folder itself loads too: the card's configs point at the data file
    again = datasets.load_dataset(str(tmp_path / "hf"), cache_dir=str(tmp_path / "cache2"))["test"]
    assert again.num_rows == loaded.num_rows


def test_commands(crowd, tmp_path, capsys):
    ds, _c, _w = crowd
    release_create(ds, "v1", params={"k": 3})
    call_command("export_votes", "--dataset", ds.name, "--out", str(tmp_path / "v.csv"))
    assert "votes to" in capsys.readouterr().err
    call_command(
        "export_labels", "--release", "v1", "--dataset", ds.name, "--format", "hf-dataset", "--out", str(tmp_path / "d")
    )
    assert (tmp_path / "d" / "README.md").is_file() and (tmp_path / "d" / "data").is_dir()

"""Long commands show a progress bar with the rate and the time left on a terminal, and stay quiet in logs."""

import io
import re

import pytest
from django.core.management import call_command

from catalog.models import Clip
from catalog.progress import NullBar, progress_bar, progress_enabled

BAR = re.compile(r"clips?: 100%\|.*\| 40/40 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+ ?clip/s\]")


def write_csv(tmp_path, n=40):
    path = tmp_path / "clips.csv"
    path.write_text("video_id,url\n" + "".join(f"v{i},https://cdn.example.org/v{i}.mp4\n" for i in range(n)))
    return path


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_bars_only_on_a_terminal_unless_forced(monkeypatch):
    monkeypatch.delenv("AVCROWD_PROGRESS", raising=False)
    assert progress_enabled(FakeTerminal()) and not progress_enabled(io.StringIO())
    assert isinstance(progress_bar(total=3, stream=io.StringIO()), NullBar)
    monkeypatch.setenv("AVCROWD_PROGRESS", "0")
    assert not progress_enabled(FakeTerminal())
    monkeypatch.setenv("AVCROWD_PROGRESS", "1")
    assert progress_enabled(io.StringIO())
    out = FakeTerminal()
    with progress_bar(total=4, desc="rows", unit="row", stream=out) as bar:
        bar.update(4)
    assert re.search(r"rows: 100%\|.*\| 4/4 \[\d\d:\d\d<\d\d:\d\d, +[\d.?]+ ?row/s\]", out.getvalue()), out.getvalue()


@pytest.mark.django_db
def test_import_clips_shows_rate_and_time_left_when_asked_and_nothing_in_a_log(taxonomy, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AVCROWD_PROGRESS", "1")
    call_command("import_clips", str(write_csv(tmp_path)), "--dataset", "bars")
    err = capsys.readouterr().err
    assert "checking clips" in err and "importing clips" in err
    assert BAR.search(err.replace("\r", "\n")), err
    assert Clip.objects.filter(dataset__name="bars").count() == 40

    monkeypatch.delenv("AVCROWD_PROGRESS")  # pytest's captured stderr is not a terminal: a log, quiet
    call_command("import_clips", str(write_csv(tmp_path)), "--dataset", "bars2")
    captured = capsys.readouterr()
    assert captured.err == "" and "imported 40 clips into dataset bars2" in captured.out


@pytest.mark.django_db
def test_import_labels_and_export_show_their_steps(taxonomy, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AVCROWD_PROGRESS", "1")
    csv = tmp_path / "published.csv"
    csv.write_text(
        "video_id,label,modality,background_music,static_image,voice_over\n"
        + "".join(f"c{i},dog barking,A,False,False,False\n" for i in range(30))
    )
    call_command("import_labels", str(csv), "--name", "pub", "--dataset", "bars3")
    err = capsys.readouterr().err.replace("\r", "\n")
    assert "storing 30 labels" in err and "3/3" in err
    out = tmp_path / "out.csv"
    call_command(
        "export_labels", "--release", "pub", "--dataset", "bars3", "--format", "vggsounder-csv", "--out", str(out)
    )
    err = capsys.readouterr().err.replace("\r", "\n")
    assert re.search(r"exporting vggsounder-csv: 100%\|.*\| 30/30 \[", err), err
    assert out.read_text().count("\n") == 31


@pytest.mark.django_db
def test_benchmark_counts_models_evaluated_on_a_terminal_and_is_quiet_in_a_log(taxonomy, tmp_path, capsys, monkeypatch):
    import pickle

    import pandas as pd

    from benchmark import LabelSet, default_class_names
    from benchmark.labels import default_labels_csv
    from benchmark.synthetic import synthetic_predictions

    df = pd.read_csv(default_labels_csv(), dtype=str, keep_default_na=False)
    ids = set(df.video_id.drop_duplicates().iloc[::500][:40])
    labels_csv = tmp_path / "labels.csv"
    df[df.video_id.isin(ids)].to_csv(labels_csv, index=False)
    labels = LabelSet.from_csv(labels_csv, default_class_names())
    preds = tmp_path / "preds"
    preds.mkdir()
    for seed, name in enumerate(("m1", "m2", "m3")):
        with open(preds / f"{name}.pkl", "wb") as fh:
            pickle.dump(synthetic_predictions(labels, seed=seed, kind="labels"), fh)
    args = ["--labels", str(labels_csv), "--predictions", str(preds), "--no-figures", "--no-meta"]

    monkeypatch.setenv("AVCROWD_PROGRESS", "1")
    call_command("benchmark", *args, "--out", str(tmp_path / "o1"))
    err = capsys.readouterr().err.replace("\r", "\n")
    assert re.search(r"evaluating models: 100%\|.*\| 3/3 \[\d\d:\d\d<\d\d:\d\d, +[\d.?]+ ?model/s\]", err), err

    monkeypatch.delenv("AVCROWD_PROGRESS")
    call_command("benchmark", *args, "--out", str(tmp_path / "o2"))
    captured = capsys.readouterr()
    assert captured.err == "" and "model m3: labels" in captured.out

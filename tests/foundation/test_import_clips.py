import pytest
from django.core.management import CommandError, call_command

from catalog.models import Clip, Dataset


def test_import_a_directory_of_media_files(taxonomy, clip_factory, tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    for i in range(2):
        (folder / f"--U7joUcTCo_00000{i}.mp4").write_bytes(clip_factory(f"dir{i}", seed=i).read_bytes())
    call_command("import_clips", str(folder), "--dataset", "vgg")
    clips = list(Clip.objects.filter(dataset__name="vgg").order_by("video_id"))
    assert [c.video_id for c in clips] == ["--U7joUcTCo_000000", "--U7joUcTCo_000001"]
    assert all(c.has_audio and c.has_video and abs(c.duration - 1.0) < 0.2 for c in clips)
    assert all(c.media.name.endswith(".mp4") for c in clips)


def test_import_a_csv_with_original_labels(taxonomy, clip_factory, tmp_path):
    path = tmp_path / "clips.csv"
    path.write_text(
        "video_id,url,original_label\n"
        f"a1,{clip_factory('c1')},dog barking\n"
        "a2,https://example.org/a2.mp4,cow lowing|cattle mooing\n"
    )
    call_command("import_clips", str(path), "--dataset", "csvset")
    a1 = Clip.objects.get(video_id="a1")
    a2 = Clip.objects.get(video_id="a2")
    assert [c.name for c in a1.original_labels.all()] == ["dog barking"]
    assert sorted(c.name for c in a2.original_labels.all()) == ["cattle mooing", "cow lowing"]
    assert a2.media_url == "https://example.org/a2.mp4" and not a2.media


def test_duplicate_ids_are_refused_with_the_offenders_and_nothing_is_imported(taxonomy, clip_factory, tmp_path):
    path = tmp_path / "clips.csv"
    media = clip_factory("dup")
    path.write_text(f"video_id,url\nx1,{media}\nx2,{media}\nx1,{media}\n")
    with pytest.raises(CommandError) as exc:
        call_command("import_clips", str(path), "--dataset", "dups")
    assert "duplicate clip ids" in str(exc.value) and "x1 (" in str(exc.value) and "x2 (" not in str(exc.value)
    assert not Dataset.objects.filter(name="dups").exists() and not Clip.objects.filter(video_id="x2").exists()


def test_ids_already_in_the_dataset_are_refused(taxonomy, clip_factory, tmp_path):
    path = tmp_path / "clips.csv"
    path.write_text(f"video_id,url\ny1,{clip_factory('y')}\n")
    call_command("import_clips", str(path), "--dataset", "again")
    with pytest.raises(CommandError, match="y1 \\(already in dataset again; --skip-existing imports the others\\)"):
        call_command("import_clips", str(path), "--dataset", "again")
    assert Clip.objects.filter(dataset__name="again").count() == 1


def test_unknown_classes_and_unreadable_media_are_reported_by_line_and_name(taxonomy, clip_factory, tmp_path):
    junk = tmp_path / "broken.mp4"
    junk.write_bytes(b"not a video")
    silent = clip_factory("silent", with_audio=False)
    path = tmp_path / "clips.csv"
    path.write_text(
        f"video_id,url,original_label\nok1,{clip_factory('ok')},dog barking\n"
        f"b1,{junk},dog barking\nb2,{silent},cow mooing\nb3,{tmp_path / 'missing.mp4'},\n"
    )
    with pytest.raises(CommandError) as exc:
        call_command("import_clips", str(path), "--dataset", "bad")
    text = str(exc.value)
    assert "clips.csv:3: broken.mp4: not decodable audio+video" in text
    assert "clips.csv:4: field 'original_label' names unknown class 'cow mooing'" in text
    assert "clips.csv:4: silent.mp4: no audio stream" in text
    assert "clips.csv:5: media file" in text and "does not exist" in text
    assert not Clip.objects.filter(video_id="ok1").exists()


def test_a_csv_without_the_required_columns_names_them(taxonomy, tmp_path):
    path = tmp_path / "clips.csv"
    path.write_text("id,link\n1,2\n")
    with pytest.raises(CommandError, match="missing column\\(s\\) video_id, url; expected video_id,url"):
        call_command("import_clips", str(path), "--dataset", "cols")

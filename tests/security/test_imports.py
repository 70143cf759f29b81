"""Imports read local files only under MEDIA_IMPORT_ROOTS (a path elsewhere, `..` or a symlink out of them is
refused by name and nothing is imported), and every import path applies the clip-id rule, so no clip id can start a
spreadsheet formula in an export."""

import os

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from catalog.models import Clip, Dataset
from catalog.selectors.clips import clip_media_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def roots(tmp_path, settings):
    media = tmp_path / "media-root"
    media.mkdir()
    settings.MEDIA_IMPORT_ROOTS = [str(media)]
    return media


def _csv(path, rows):
    path.write_text("video_id,url\n" + "".join(f"{vid},{url}\n" for vid, url in rows))
    return path


def test_path_traversal_is_refused_by_name_and_nothing_is_imported(taxonomy, roots, clip_factory):
    good = roots / "ok.mp4"
    good.write_bytes(clip_factory("ok").read_bytes())
    traversal = str(roots / ".." / ".." / ".." / ".." / "etc" / "passwd")
    csv = _csv(roots / "clips.csv", [("ok", str(good)), ("pw", "../../../../etc/passwd"), ("abs", traversal)])
    with pytest.raises(CommandError) as err:
        call_command("import_clips", str(csv), "--dataset", "evil", "--link", "--no-probe")
    text = str(err.value)
    assert "etc/passwd" in text  # names the refused path
    assert text.count("outside the allowed media directories") == 2 and "MEDIA_IMPORT_ROOTS" in text
    assert str(roots) in text  # names what is allowed
    assert not Clip.objects.exists() and not Dataset.objects.filter(name="evil").exists()


def test_a_symlink_escaping_the_roots_is_refused(taxonomy, roots, tmp_path):
    secret = tmp_path / "outside" / "secret.mp4"
    secret.parent.mkdir()
    secret.write_bytes(b"not for you")
    os.symlink(secret, roots / "link.mp4")
    with pytest.raises(CommandError, match="outside the allowed media directories"):
        call_command("import_clips", str(roots), "--dataset", "links", "--link", "--no-probe")
    assert not Clip.objects.exists()


def test_no_roots_configured_means_no_local_paths(taxonomy, settings, clip_factory):
    settings.MEDIA_IMPORT_ROOTS = []
    with pytest.raises(CommandError, match="MEDIA_IMPORT_ROOTS is empty"):
        call_command("import_clips", str(clip_factory("x").parent), "--dataset", "none", "--link", "--no-probe")


def test_a_clip_stored_with_a_path_outside_the_roots_is_not_served(taxonomy, roots, client):
    """A path stored before the rule existed (the issue's /etc/passwd) is not served by the media endpoint."""
    ds = Dataset.objects.create(name="old")
    clip = Clip.objects.create(dataset=ds, video_id="pw", media_url="/etc/passwd")
    url = clip_media_url(clip, None)
    response = Client().get(url)
    assert response.status_code == 404 and b"root:" not in b"".join(getattr(response, "streaming_content", [b""]))


def test_files_under_the_roots_import_and_play(taxonomy, roots, clip_factory):
    (roots / "fine_1.mp4").write_bytes(clip_factory("fine").read_bytes())
    call_command("import_clips", str(roots), "--dataset", "fine", "--link")
    clip = Clip.objects.get(video_id="fine_1")
    assert Client().get(clip_media_url(clip, None)).status_code == 200


@pytest.mark.parametrize("bad_id", ["=SUM(1+1)*cmd", "+1", "@SUM(A1)", "a b", "x|calc"])
def test_formula_like_clip_ids_are_refused_on_every_import_path(taxonomy, roots, clip_factory, bad_id):
    # CSV
    csv = _csv(roots / "c.csv", [(bad_id, "https://cdn.example.org/a.mp4")])
    with pytest.raises(CommandError, match="video_id"):
        call_command("import_clips", str(csv), "--dataset", "f1")
    # a folder whose file name is the id
    folder = roots / "folder"
    folder.mkdir()
    (folder / f"{bad_id}.mp4").write_bytes(clip_factory("f").read_bytes())
    with pytest.raises(CommandError, match="clip-id rule"):
        call_command("import_clips", str(folder), "--dataset", "f2", "--link", "--no-probe")
    assert not Clip.objects.exists()


def test_mturk_results_with_a_formula_in_the_clip_url_are_refused(taxonomy, tmp_path):
    """The requester's results file: clip ids are the file stems of Input.video_urls (VGGSounder layout)."""
    import csv as csvmod
    import json

    from crowd.services.mturk_import import mturk_results_import

    ds = Dataset.objects.create(name="mt")
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as fh:
        w = csvmod.writer(fh)
        w.writerow(
            [
                "HITId",
                "AssignmentId",
                "WorkerId",
                "AssignmentStatus",
                "WorkTimeInSeconds",
                "Input.video_urls",
                "Input.proposal_lists",
                "Answer.taskAnswers",
            ]
        )
        urls = ["https://cdn.example.org/=SUM(1+1)*cmd|x.mp4"]
        w.writerow(["H1", "A1", "W1", "Submitted", "60", json.dumps(urls), json.dumps([["dog barking"]]), "[{}]"])
    report = mturk_results_import(ds, [path])
    assert not Clip.objects.exists()
    assert any("clip-id rule" in line for line in report.lines())

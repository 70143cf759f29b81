"""One clip of a release, drilled down (mounted under /releases/<pk>/clips/<video_id>/): its video, the released
labels with their origin, the proposals the workers saw, and every vote side by side. Researchers and admins, like
the release pages."""

from django.shortcuts import get_object_or_404, render
from django.urls import path

from catalog.access import admin_page, researcher_page
from catalog.models import Clip
from catalog.selectors.clips import clip_media_url
from labels.models import Release
from labels.selectors.clip import clip_detail, release_clip_detail


@researcher_page
def release_clip(request, pk, video_id):
    release = get_object_or_404(Release.objects.select_related("dataset"), pk=pk)
    d = release_clip_detail(release, video_id, media_url=lambda clip: clip_media_url(clip, request))
    return render(request, "frontend/releases/clip.html", {"release": release, "dataset": release.dataset, "d": d})


@admin_page
def dataset_clip(request, name, video_id):
    """A dataset's clip for the operations pages: its video, proposals and every vote so far (no release yet)."""
    clip = get_object_or_404(Clip.objects.select_related("dataset"), dataset__name=name, video_id=video_id)
    d = clip_detail(clip, media_url=lambda c: clip_media_url(c, request))
    d["video_id"] = clip.video_id
    return render(request, "frontend/releases/clip.html", {"release": None, "dataset": clip.dataset, "d": d})


urlpatterns = [
    path("<int:pk>/clips/<str:video_id>/", release_clip, name="clip"),
]

# mounted under /ops/ (namespace clip_pages)
ops_urlpatterns = [
    path("<slug:name>/clips/<str:video_id>/", dataset_clip, name="dataset-clip"),
]

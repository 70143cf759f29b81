"""One clip of a release, drilled down (mounted under /releases/<pk>/clips/<video_id>/): its video, the released
labels with their origin, the proposals the workers saw, and every vote side by side. Researchers and admins, like
the release pages."""

from django.shortcuts import get_object_or_404, render
from django.urls import path

from catalog.access import researcher_page
from catalog.core.vocabulary import META_LABELS
from catalog.selectors.clips import clip_media_url
from labels.models import Release
from labels.selectors.clip import release_clip_detail


@researcher_page
def release_clip(request, pk, video_id):
    release = get_object_or_404(Release.objects.select_related("dataset"), pk=pk)
    d = release_clip_detail(release, video_id, media_url=lambda clip: clip_media_url(clip, request))
    return render(request, "frontend/releases/clip.html", {"release": release, "d": d, "meta_labels": META_LABELS})


urlpatterns = [
    path("<int:pk>/clips/<str:video_id>/", release_clip, name="clip"),
]

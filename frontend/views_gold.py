"""Expert (gold-standard) pages: a queue and coverage view per dataset, and full-class-list labelling of a clip.

In-house annotators and admins only (access rule `annotator`). Thin: reads through crowd.selectors.gold, writes
through crowd.services.gold.expert_annotation_save. A refused save re-shows the form with what the expert ticked
and the error (status 400), which is why gold_clip catches AvcrowdError itself instead of leaving it to the page
handler.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_http_methods

from catalog.access import annotator_page
from catalog.errors import AvcrowdError
from catalog.models import Clip, Dataset
from catalog.selectors.clips import clip_media_url
from catalog.selectors.taxonomy import class_names, meta_labels
from crowd.selectors.gold import expert_annotation_payload, expert_queue
from crowd.services.gold import ORIGINAL_KEYS, expert_annotation_save, gold_coverage, gold_min_experts

BOOL_CHOICES = {"yes": True, "no": False, "": None}


def _dataset_from_request(request) -> Dataset | None:
    name = request.GET.get("dataset", "")
    if name:
        dataset = Dataset.objects.filter(name=name).first()
        if dataset is None:
            raise Http404(f"no dataset named {name!r}")
        return dataset
    return Dataset.objects.order_by("name").first()


@annotator_page
def gold_home(request):
    dataset = _dataset_from_request(request)
    context = {"datasets": Dataset.objects.order_by("name"), "dataset": dataset, "min_experts": gold_min_experts()}
    if dataset is not None:
        coverage = gold_coverage(dataset)
        suggested = {
            c.pk: c for c in Clip.objects.filter(pk__in=coverage["suggested_clips"]).prefetch_related("original_labels")
        }
        context.update(
            coverage=coverage,
            coverage_pct=round(100 * coverage["covered"] / coverage["total"], 1) if coverage["total"] else 0,
            suggested=[suggested[pk] for pk in coverage["suggested_clips"] if pk in suggested],
            queue=expert_queue(
                dataset, request.user, min_experts=gold_min_experts(), extra_clip_ids=coverage["suggested_clips"]
            ),
        )
    return render(request, "frontend/gold/home.html", context)


def _parse_bool(request, key: str):
    raw = request.POST.get(key, "")
    if raw not in BOOL_CHOICES:
        raise AvcrowdError(f"field {key!r} is {raw!r}; allowed: yes, no or empty", field=key)
    return BOOL_CHOICES[raw]


def _bool_keys() -> list[str]:
    """The yes/no/empty questions of the expert form: the meta labels, then the original-label checks."""
    return [m["key"] for m in meta_labels()] + list(ORIGINAL_KEYS)


def _payload_from_form(request, names: list[str]) -> dict:
    known = set(names)
    audible = set(request.POST.getlist("audible"))
    visible = set(request.POST.getlist("visible"))
    unknown = sorted((audible | visible) - known)
    if unknown:
        raise AvcrowdError(
            f"unknown class(es) {', '.join(map(repr, unknown[:5]))}; pick classes from the list", field="labels"
        )
    payload = {key: _parse_bool(request, key) for key in _bool_keys()}
    payload["labels"] = [
        {"name": n, "audible": n in audible, "visible": n in visible} for n in names if n in audible or n in visible
    ]
    return payload


def _form_state(request) -> dict:
    """The posted form as a payload-like dict (for re-showing it after an error); unparseable values are None."""
    audible, visible = set(request.POST.getlist("audible")), set(request.POST.getlist("visible"))
    state = {key: BOOL_CHOICES.get(request.POST.get(key, "")) for key in _bool_keys()}
    state["labels"] = [{"name": n, "audible": n in audible, "visible": n in visible} for n in audible | visible]
    return state


@annotator_page
@require_http_methods(["GET", "POST"])
def gold_clip(request, clip_id: int):
    clip = Clip.objects.filter(pk=clip_id).select_related("dataset").prefetch_related("original_labels").first()
    if clip is None:
        raise Http404("no such clip")
    names = class_names()
    error = None
    if request.method == "POST":
        try:
            payload = _payload_from_form(request, names)
            expert_annotation_save(clip, request.user, payload)
        except AvcrowdError as exc:
            error = exc.message
            saved = _form_state(request)  # show what the expert ticked, with the error
        else:
            n = len(payload["labels"])
            messages.success(request, f"Saved clip {clip.video_id}: {n} class{'es' if n != 1 else ''} ticked.")
            if request.POST.get("then") == "next":
                queue = expert_queue(clip.dataset, request.user, min_experts=gold_min_experts(), limit=1)
                if queue:
                    return redirect("frontend:gold-clip", clip_id=queue[0]["clip_id"])
                return redirect(f"/gold/?dataset={clip.dataset.name}")
            return redirect("frontend:gold-clip", clip_id=clip.pk)
    else:
        saved = expert_annotation_payload(clip, request.user) or {"labels": []}
    ticks = {lab["name"]: lab for lab in saved.get("labels") or []}
    originals = [c.name for c in clip.original_labels.all()]
    if saved.get("original_present") is not None:  # the answers about the original label tick its row (as merged)
        for name in originals:
            present = bool(saved["original_present"])
            ticks[name] = {
                "audible": present and bool(saved.get("original_audible")),
                "visible": present and bool(saved.get("original_visible")),
            }
    rows = [
        {
            "name": n,
            "audible": bool(ticks.get(n, {}).get("audible")),
            "visible": bool(ticks.get(n, {}).get("visible")),
            "original": n in originals,
        }
        for n in names
    ]
    meta = [{**m, "value": saved.get(m["key"])} for m in meta_labels()]
    original = [
        {"key": key, "question": question, "value": saved.get(key)}
        for key, question in (
            ("original_present", "Is it present in the clip at all?"),
            ("original_audible", "Can you hear it?"),
            ("original_visible", "Can you see it?"),
        )
    ]
    return render(
        request,
        "frontend/gold/clip.html",
        {
            "clip": clip,
            "media_url": clip_media_url(clip, request),
            "rows": rows,
            "meta": meta,
            "originals": originals,
            "original": original,
            "error": error,
            "has_saved": bool(saved.get("updated_at")),
            "n_ticked": sum(1 for r in rows if r["audible"] or r["visible"]),
        },
        status=400 if error else 200,
    )


urlpatterns = [
    path("gold/", gold_home, name="gold"),
    path("gold/clip/<int:clip_id>/", gold_clip, name="gold-clip"),
]

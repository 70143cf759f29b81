"""The role matrix: every URL pattern of the site names its access rule (catalog.access), and every role gets what
the rule says, from the real views with real objects.

The walk starts at `get_resolver().url_patterns` and goes into every include (the REST routers, each app's
patterns, the Django admin), so a new endpoint without a rule fails here with its pattern named. The expected
outcomes below are the matrix of docs/architecture.md ("Where each kind of rule lives"), written out again rather
than read from catalog.access, so a rule whose predicate drifts fails too.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, path, resolve
from django.utils.regex_helper import normalize
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from catalog.access import DJANGO_ADMIN, view_rule
from catalog.models import ClassRelation, Operation, TaxonomyClass
from catalog.selectors.clips import clip_media_url
from catalog.services.users import user_create
from crowd.models import BatchItem
from crowd.services.assignments import assignment_start, hit_token
from crowd.services.batches import batches_create
from labels.models import ReleaseExport
from labels.services.imports import release_import
from proposals.models import ProposalSet
from reports.models import MetricReport

ROLES = ("anonymous", "crowd", "annotator", "researcher", "admin")
SIGNED_IN = {"annotator", "researcher", "admin"}
EVERYONE = set(ROLES)
# rule -> (roles that may read: GET/HEAD/OPTIONS, roles that may write: every other method)
MATRIX = {
    "public": (EVERYONE, EVERYONE),
    "public_hit": (EVERYONE, EVERYONE),  # and the HIT token, checked by the crowd services (below)
    "public_signed_link": (EVERYONE, EVERYONE),
    "public_token": (EVERYONE, EVERYONE),  # and the METRICS_TOKEN, checked by the view (tests/foundation/test_health_…)
    "signed_in": (SIGNED_IN, SIGNED_IN),
    "annotator": ({"annotator", "admin"}, {"annotator", "admin"}),
    "researcher_read": ({"researcher", "admin"}, {"admin"}),
    "researcher": ({"researcher", "admin"}, {"researcher", "admin"}),
    "admin": ({"admin"}, {"admin"}),
    "django_admin": ({"admin"}, {"admin"}),
}
WRITES = ("POST", "PUT", "PATCH", "DELETE")


# --- walking the URL map ----------------------------------------------------------------------------------------


@dataclass
class Endpoint:
    chain: tuple  # the resolvers down to the pattern, then the pattern
    name: str  # namespace:name, or the route when unnamed

    @property
    def pattern(self) -> URLPattern:
        return self.chain[-1]

    @property
    def route(self) -> str:
        return "".join(str(p.pattern) for p in self.chain)

    @property
    def in_django_admin(self) -> bool:
        return any(isinstance(p, URLResolver) and p.app_name == "admin" for p in self.chain)

    def rule(self):
        return DJANGO_ADMIN if self.in_django_admin else view_rule(self.pattern.callback)


def walk(patterns, chain=()):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from walk(p.url_patterns, (*chain, p))
        else:
            namespaces = [r.namespace for r in chain if isinstance(r, URLResolver) and r.namespace]
            full = (*chain, p)
            yield Endpoint(full, ":".join([*namespaces, p.name]) if p.name else "".join(str(x.pattern) for x in full))


def undeclared(patterns) -> list[str]:
    return [e.route for e in walk(patterns) if e.rule() is None]


def _regex(p) -> str:
    r = p.pattern.regex.pattern
    r = r[1:] if r.startswith("^") else r
    for end in (r"\Z", "$"):
        if r.endswith(end):
            r = r[: -len(end)]
    return r


def url_of(endpoint: Endpoint, values: dict) -> str:
    """The URL of a pattern with its parameters filled (as reverse() does it, for named and unnamed patterns)."""
    for fmt, params in normalize("".join(_regex(p) for p in endpoint.chain)):
        if set(params) <= set(values):
            return "/" + fmt % {k: values[k] for k in params}
    missing = sorted(set(normalize("".join(_regex(p) for p in endpoint.chain))[0][1]) - set(values))
    raise AssertionError(f"{endpoint.route}: give the role matrix fixture a value for {', '.join(missing)}")


# --- the world the requests see ---------------------------------------------------------------------------------


@pytest.fixture
def world(make_crowd_dataset, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    # room in the batch for everyone who opens its HIT session (each signed-in role starts an in-house assignment)
    ds = make_crowd_dataset("matrix", 6, 2, batch_size=4, gold_per_batch=1, annotations_per_clip=10)
    batch = batches_create(ds, rng=random.Random(1))[0]
    assignment = assignment_start(batch, backend="mturk", worker_external_id="W-CROWD", external_assignment_id="A1")
    item = BatchItem.objects.filter(batch=batch).select_related("clip").first()
    csv = "video_id,label,modality,background_music,static_image,voice_over\nr000,dog barking,A,False,False,False\n"
    release = release_import(ds, "v1", io.StringIO(csv), source_name="v1.csv")
    other = release_import(ds, "v2", io.StringIO(csv.replace(",A,", ",AV,")), source_name="v2.csv")
    export = ReleaseExport.objects.create(release=release, format="jsonl")
    report = MetricReport.objects.create(title="matrix", params={})
    pset = ProposalSet.objects.create(dataset=ds, strategy={})
    op = Operation.objects.create(kind=Operation.KINDS[0][0], dataset=ds)
    token = clip_media_url(item.clip).rstrip("/").rsplit("/", 1)[1]
    values = {
        "batch_uuid": str(batch.uuid),
        "assignment_uuid": str(assignment.uuid),
        "video_id": item.clip.video_id,
        "token": token,
        "clip_id": item.clip.pk,
        "name": ds.name,
        "other": other.pk,
        "model": "clip",
        "rest": "",
        # the Django admin's own parameters
        "app_label": "catalog",
        "object_id": "1",
        "id": "1",
        "content_type_id": "1",
        "url": "no-such-page/",
    }
    pk = {
        "api_marketplace:operation": op.pk,
        "ops:operation": op.pk,
        "api_releases:export-status": export.pk,
        "api_releases:export-download": export.pk,
        "releases:export-status": export.pk,
        "api_reports:detail": report.pk,
        "api_reports:file": report.pk,
        "reports:detail": report.pk,
        "reports:file": report.pk,
        "api_proposals:set-proposals": pset.pk,
        "proposals:set-detail": pset.pk,
        "class-detail": TaxonomyClass.objects.order_by("index").first().pk,
        "class-relation-detail": ClassRelation.objects.first().pk,
        "clip-detail": item.clip.pk,
        "dataset-detail": None,  # by name
    }
    names = {"api_reports:file": "report.json", "reports:file": "report.json"}
    users = {role: user_create(role, role)["user"] for role in ("annotator", "researcher", "admin")}
    return {"values": values, "pk": pk, "names": names, "users": users, "hit_token": hit_token(assignment)}


def fill(endpoint: Endpoint, world) -> str:
    values = dict(world["values"])
    release_pk = ReleaseExport.objects.first().release_id
    values["pk"] = world["pk"].get(endpoint.name, release_pk)
    values["name"] = world["names"].get(endpoint.name, values["name"])
    tried = []
    for fmt in ("json", ".json"):  # a router's regex suffix, or DRF's drf_format_suffix converter (with the dot)
        url = url_of(endpoint, {**values, "format": fmt})
        try:
            match = resolve(url)
        except Resolver404:
            match = None
        if match is not None and (endpoint.in_django_admin or match.func == endpoint.pattern.callback):
            return url
        tried.append(url)
    raise AssertionError(f"{endpoint.route}: the filled URL(s) {', '.join(tried)} do not reach the pattern")


def client_for(role: str, world) -> Client:
    client = Client()
    if role in world["users"]:
        client.force_login(world["users"][role])
    return client


def send(client: Client, role: str, method: str, url: str, world):
    headers = {"HTTP_X_HIT_TOKEN": world["hit_token"]} if role == "crowd" else {}
    return client.generic(method, url, b"", content_type="application/json", **headers)


def refused(response, *, login_url: str) -> bool:
    if response.status_code in (401, 403):
        return True
    return response.status_code == 302 and response["Location"].startswith(login_url)


# --- the tests --------------------------------------------------------------------------------------------------


def test_every_url_pattern_names_its_access_rule():
    missing = undeclared(get_resolver().url_patterns)
    assert not missing, "URL patterns whose view names no access rule (use catalog.access): " + ", ".join(missing)


def test_a_view_without_a_rule_is_named_and_closed_to_everyone(db):
    def plain(request):
        return HttpResponse("hello")

    class Bare(APIView):
        def get(self, request):
            return Response({"ok": True})

    patterns = [path("plain/", plain), path("api/bare/", Bare.as_view())]
    assert undeclared(patterns) == ["plain/", "api/bare/"]
    # a REST view that names no permission is refused even to an admin (REST_FRAMEWORK's default permission)
    request = APIRequestFactory().get("/api/bare/")
    force_authenticate(request, user=user_create("boss", "admin")["user"])
    response = Bare.as_view()(request)
    assert response.status_code == 403 and "declares no access rule" in str(response.data["detail"])


def test_each_role_gets_what_the_rule_of_each_endpoint_says(world):
    problems = []
    endpoints = [e for e in walk(get_resolver().url_patterns) if not e.in_django_admin]
    rules_seen = set()
    for endpoint in endpoints:
        rule = endpoint.rule()
        assert rule is not None, f"{endpoint.route} names no access rule"
        rules_seen.add(rule.name)
        readers, writers = MATRIX[rule.name]
        url = fill(endpoint, world)
        for role in ROLES:
            for method in ("GET", *WRITES):
                allowed = role in (readers if method == "GET" else writers)
                if allowed and method in ("PATCH", "DELETE"):
                    continue  # never delete or patch the fixture's objects; POST and PUT show the write rule
                # a fresh session for every request (a POST to the logout page ends the one it had)
                response = send(client_for(role, world), role, method, url, world)
                got_refused = refused(response, login_url=settings.LOGIN_URL)
                where = f"{method} {url} ({endpoint.route}, rule {rule.name}) as {role}: {response.status_code}"
                if rule.name == "public_hit" and "assignment_uuid" in endpoint.pattern.pattern.regex.groupindex:
                    # public, but the assignment endpoints need the HIT token (checked by the crowd services)
                    if method in ("POST", "PUT") and role != "crowd" and response.status_code != 405:
                        if response.status_code != 403 or "X-HIT-Token" not in response.json().get("error", ""):
                            problems.append(f"{where}: expected 403 naming X-HIT-Token")
                        continue
                if allowed and got_refused:
                    problems.append(f"{where}: refused, but the rule allows it")
                elif not allowed and not got_refused:
                    problems.append(f"{where}: allowed, but the rule refuses it")
                elif not allowed and role in ("anonymous", "crowd") and response.status_code == 403:
                    problems.append(f"{where}: anonymous visitors get the login page (pages) or 401 (API)")
                elif not allowed and role in SIGNED_IN and response.status_code != 403:
                    problems.append(f"{where}: a signed-in account without the role gets 403")
    assert not problems, f"{len(problems)} access problem(s):\n" + "\n".join(problems)
    assert set(MATRIX) - rules_seen == {"django_admin"}  # every rule of the matrix is used by some endpoint


def test_the_django_admin_is_for_staff_only(world):
    endpoints = [e for e in walk(get_resolver().url_patterns) if e.in_django_admin]
    assert len(endpoints) > 100  # every registered model's pages
    problems = []
    for endpoint in endpoints:
        url = fill(endpoint, world)
        for role in ROLES:
            response = send(client_for(role, world), role, "GET", url, world)
            at_login = response.status_code == 302 and response["Location"].startswith("/admin/login/")
            where = f"GET {url} ({endpoint.route}) as {role}: {response.status_code}"
            if endpoint.name in ("admin:login", "admin:logout"):
                continue  # the admin's own login page (and its POST-only logout)
            if role == "admin" and at_login:
                problems.append(f"{where}: staff are sent to the login page")
            elif role != "admin" and not (at_login or response.status_code == 404):
                problems.append(f"{where}: only staff may use the Django admin")
    assert not problems, "\n".join(problems)


# The rules the issue names for each role, pinned by endpoint: who reads gold, clips, releases, reports.
INTENT = {
    "clip-list": "researcher_read",  # shows is_gold and the original labels: never annotators
    "clip-detail": "researcher_read",
    "dataset-list": "researcher_read",
    "api_releases:list": "researcher_read",
    "api_releases:export": "researcher_read",  # exports hold the gold labels
    "api_releases:export-start": "researcher",
    "api_releases:export-download": "researcher_read",
    "api_releases:import": "admin",
    "releases:download": "researcher",
    "releases:new": "admin",
    "api_reports:list": "researcher",  # researchers create metric reports
    "reports:new": "researcher",
    "frontend:gold": "annotator",
    "frontend:gold-clip": "annotator",
    "ops:my-tasks": "signed_in",
    "ops:index": "admin",
    "quality:overlap": "admin",  # queues paid work
    "quality:worker-quality": "admin",
    "review:index": "admin",  # the review screen shows gold answers and catch-trial identities
    "review:assignment": "admin",
    "review:batch": "admin",
    "steps:index": "admin",  # every pipeline step (uploads, batches) is an admin's
    "steps:gold": "admin",
    "api_crowd_steps:step-gold": "admin",
    "api_crowd_steps:step-batches": "admin",
    "api_proposals_steps:step-predictions": "admin",
    "api_steps:step-clips": "admin",
    "api_marketplace:bonuses": "admin",
    "api_hit:session": "public_hit",
    "api_hit:answer": "public_hit",
    "api_hit:submit": "public_hit",
    "frontend:hit": "public",
    "frontend:clip-media": "public_signed_link",
    "healthz": "public",  # container healthchecks and load balancers have no account
    "readyz": "public",
    "metrics": "public_token",  # Prometheus sends METRICS_TOKEN, no login
}


def test_the_rules_the_roles_need_are_the_ones_declared():
    declared = {e.name: e.rule().name for e in walk(get_resolver().url_patterns) if not e.in_django_admin}
    assert {name: declared.get(name) for name in INTENT} == INTENT


def test_annotators_label_gold_but_never_read_gold_clips_or_exports(world):
    from crowd.models import ExpertAnnotation

    release = ReleaseExport.objects.first().release
    clip_id = world["values"]["clip_id"]
    annotator, researcher = client_for("annotator", world), client_for("researcher", world)
    assert annotator.get("/gold/?dataset=matrix").status_code == 200
    assert annotator.get("/ops/tasks/").status_code == 200
    for url in ("/api/clips/?dataset=matrix", f"/api/releases/{release.pk}/export/", "/api/reports/"):
        response = annotator.get(url)
        assert response.status_code == 403 and "researchers and admins" in response.json()["detail"], url
    page = annotator.get(f"/releases/{release.pk}/download/")
    assert page.status_code == 403 and "researchers and admins only" in page.content.decode()
    saved = annotator.post(f"/gold/clip/{clip_id}/", {"audible": ["dog barking"], "background_music": "no"})
    assert saved.status_code == 302 and ExpertAnnotation.objects.filter(user__username="annotator").count() == 1

    clips = researcher.get("/api/clips/?dataset=matrix").json()["results"]
    assert clips and {"is_gold", "original_labels"} <= set(clips[0])
    refused = researcher.post(f"/gold/clip/{clip_id}/", {"audible": ["dog barking"]})
    assert refused.status_code == 403 and "in-house annotators and admins only" in refused.content.decode()
    assert ExpertAnnotation.objects.filter(user__username="researcher").count() == 0
    assert researcher.post("/api/datasets/", {"name": "x"}).status_code == 403  # researchers read, admins write

    anonymous = Client()
    login = anonymous.get("/gold/")
    assert login.status_code == 302 and login["Location"] == "/accounts/login/?next=/gold/"
    assert anonymous.get("/api/clips/").status_code == 401


def test_hit_sessions_by_role_in_house_work_only_on_assigned_batches(world):
    """The HIT API is public, but a signed-in account labels a batch in-house only when it is an annotator the
    batch is assigned to (or an admin), and only from the HIT page itself (X-HIT-Page: a cross-site link cannot
    start it); crowd workers need the browser secret or their own marketplace assignment id to resume."""
    from crowd.models import Assignment, InhouseTask

    batch_uuid = world["values"]["batch_uuid"]
    url = f"/api/hit/{batch_uuid}/session"
    page = {"HTTP_X_HIT_PAGE": "1"}
    expected = {"annotator": 403, "researcher": 403, "admin": 200}
    got = {role: client_for(role, world).get(url, **page).status_code for role in expected}
    assert got == expected
    InhouseTask.objects.create(batch_id=Assignment.objects.first().batch_id, user=world["users"]["annotator"])
    assert client_for("annotator", world).get(url, **page).status_code == 200
    assert client_for("annotator", world).get(url).status_code == 400  # no X-HIT-Page: not from the HIT page
    # the crowd worker's assignment (W-CROWD, A1): a stranger with the worker id alone is refused
    crowd = {"workerId": "W-CROWD", "assignmentId": "A-OTHER", "hitId": "H", "turkSubmitTo": "https://www.mturk.com"}
    assert Client().get(url, crowd).status_code == 403
    assert Client().get(url, dict(crowd, assignmentId="A1")).status_code == 200

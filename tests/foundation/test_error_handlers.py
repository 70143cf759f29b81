"""The one mapping of AvcrowdError to HTTP: the REST handler (status + as_dict body), the HIT API's (404 reveals
nothing), and the page handler (a readable error page, or back to the form with a message)."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.management import CommandError
from django.test import RequestFactory
from django.utils.html import escape
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from catalog.access import AdminOnly
from catalog.errors import Forbidden, ImportFailed, NotFound, ValidationError
from catalog.http import command_errors
from catalog.models import Dataset, Operation
from catalog.services.users import user_create
from frontend.middleware import AvcrowdErrorMiddleware
from reports.models import MetricReport


class Refuses(APIView):
    permission_classes = [AdminOnly]

    def post(self, request):
        raise ImportFailed("the file was refused", details=["a.csv:2: field 'label' is empty"])


def test_the_rest_handler_answers_the_status_and_body_of_the_error(db):
    request = APIRequestFactory().post("/x/")
    force_authenticate(request, user=user_create("boss", "admin")["user"])
    response = Refuses.as_view()(request)
    response.render()
    assert response.status_code == 400
    assert response.content == b'{"error":"the file was refused","details":["a.csv:2: field \'label\' is empty"]}'


def test_the_hit_api_says_only_not_found(client, db):
    r = client.post("/api/hit/assignments/00000000-0000-0000-0000-000000000000/submit", b"{}", "application/json")
    assert r.status_code == 404 and r.json() == {"error": "not found"} and r["Cache-Control"] == "no-store"


def _page_request(method="get"):
    request = getattr(RequestFactory(), method)("/somewhere/")
    SessionMiddleware(lambda r: None).process_request(request)
    request._messages = FallbackStorage(request)
    request.user = AnonymousUser()
    return request


@pytest.mark.parametrize(
    "error", [ValidationError("k must be a positive integer; got 'x'"), Forbidden("no"), NotFound("gone")]
)
def test_a_page_shows_the_error_readably_with_its_status(db, error):
    response = AvcrowdErrorMiddleware(lambda r: None).process_exception(_page_request(), error)
    assert response.status_code == error.status_code
    page = response.content.decode()
    assert 'id="error-message">' + escape(error.message) + "</p>" in page


def test_a_refused_form_post_goes_back_to_its_page_with_the_message(db):
    request = _page_request("post")
    request.avcrowd_error_back = "/releases/"
    response = AvcrowdErrorMiddleware(lambda r: None).process_exception(request, ValidationError("name is taken"))
    assert response.status_code == 302 and response["Location"] == "/releases/"
    assert [str(m) for m in get_messages(request)] == ["name is taken"]


def test_pages_end_to_end(client, db):
    admin = user_create("boss", "admin")["user"]
    client.force_login(admin)
    # a form post refused by the rules goes back to the form's page, which shows why; nothing is started
    Dataset.objects.create(name="d")
    page = client.post("/releases/new/", {"dataset": "d", "name": "v1", "k": "x"}, follow=True)
    assert page.redirect_chain == [("/releases/", 302)] and "k must be a positive integer; got &#x27;x&#x27;" in (
        page.content.decode()
    )
    assert not Operation.objects.exists()
    # a page that cannot show what was asked for: the error page with the status
    report = MetricReport.objects.create(title="r", params={})
    missing = client.get(f"/reports/{report.pk}/files/nope.csv")
    assert missing.status_code == 404
    assert f"report {report.pk} has no file &#x27;nope.csv&#x27;" in missing.content.decode()


def test_commands_report_the_error_as_a_command_error():
    with pytest.raises(CommandError, match="the file was refused\n  a.csv:2"):
        with command_errors():
            raise ImportFailed("the file was refused", details=["a.csv:2: field 'label' is empty"])

"""The autosave's cost in SQL: the HIT page saves on every change (hundreds of saves a second at 200 workers), so a
save is one read of the assignment and one statement that locks it and upserts the answer (no BEGIN or COMMIT:
each is its own transaction), whatever the batch, the answer or how many came before."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from crowd.models import ClipAnswer
from tests.annotators.test_hit_api import MTURK, answer_url, put, session
from tests.crowd_helpers import complete_payload


def _statements(ctx):
    return [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]


def test_an_autosave_is_one_read_and_one_locking_upsert(client, batch, taxonomy):
    started = session(client, batch, **MTURK).json()
    vids = [c["video_id"] for c in started["clips"]]
    counts = []
    for i, vid in enumerate(vids[:6]):
        labels = [{"name": taxonomy[k], "audible": True, "visible": k % 2 == 0} for k in range(i * 5)]
        with CaptureQueriesContext(connection) as ctx:
            r = put(client, answer_url(started, vid), complete_payload(labels), started["token"])
        assert r.status_code == 200, r.content
        statements = _statements(ctx)
        counts.append(len(statements))
        assert statements[0].startswith("SELECT") and "FOR UPDATE" not in statements[0]
        assert statements[1].startswith("INSERT INTO")
        assert "FOR UPDATE" in statements[1] or connection.vendor == "sqlite"  # SQLite writes one at a time
    # the same clip saved again (an edit) costs the same
    with CaptureQueriesContext(connection) as ctx:
        put(client, answer_url(started, vids[0]), complete_payload(), started["token"])
    counts.append(len(_statements(ctx)))
    assert counts == [2] * 7
    assert ClipAnswer.objects.count() == 6

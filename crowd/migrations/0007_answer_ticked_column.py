"""PostgreSQL: a stored generated column `ticked` on the answers, the ticked entries of `labels` (~2.5 of the 30
proposals an answer lists), kept by the database on every insert and update, whoever writes the row (the autosave's
raw upsert, results-file imports, bulk loads). A release reads it instead of decompressing every answer's full label
list: at 150k clips that list is ~0.9 GB of JSON and took 10-13 s to read, the ticks alone a fraction of it (issue
18). The column is not in the Django model (nothing writes it); other databases do not get it and the release load
decodes the label lists there. Adding it rewrites the table once (every row computed)."""

from django.db import migrations

# the same filter as labels.services.load.TICKED_PATH (a migration keeps its own copy: it must not change later)
TICKED_PATH = '$[*] ? (@.type() == "object" && (@.audible == true || @.visible == true))'

ADD = (
    "ALTER TABLE annotation_clipanswer ADD COLUMN IF NOT EXISTS ticked jsonb GENERATED ALWAYS AS "
    f"(CASE WHEN jsonb_typeof(labels) = 'array' THEN jsonb_path_query_array(labels, '{TICKED_PATH}') "
    "ELSE '[]'::jsonb END) STORED"
)
DROP = "ALTER TABLE annotation_clipanswer DROP COLUMN IF EXISTS ticked"


def add(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ADD)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("crowd", "0006_answer_media_failed_index")]

    operations = [migrations.RunPython(add, drop)]

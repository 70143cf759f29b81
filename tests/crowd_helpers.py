"""Answering batches in tests, for datasets made by the `make_crowd_dataset` fixture (tests/conftest.py): gold clip
g<i> carries taxonomy[100+i] (AV) and taxonomy[200+i] (A)."""


def complete_payload(labels=()):
    """An answer that passes the completeness check: meta questions answered, clip played."""
    return {
        "background_music": False,
        "voice_over": False,
        "static_image": False,
        "played": True,
        "watch_seconds": 1.5,
        "labels": list(labels),
    }


def gold_perfect_labels(taxonomy, video_id):
    """The ticks that match gold clip `video_id` exactly (catch-trial F1 = 1)."""
    i = int(video_id[1:])
    return [
        {"name": taxonomy[100 + i], "audible": True, "visible": True},
        {"name": taxonomy[200 + i], "audible": True, "visible": False},
    ]


def fill_assignment(assignment, taxonomy, *, good=True):
    """Answer every clip of the assignment completely; gold clips right (good) or with nothing ticked."""
    from crowd.services.assignments import answer_save

    for item in assignment.batch.items.select_related("clip"):
        vid = item.clip.video_id
        labels = gold_perfect_labels(taxonomy, vid) if (item.is_gold and good) else []
        answer_save(assignment, vid, complete_payload(labels))

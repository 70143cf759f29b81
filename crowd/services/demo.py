"""The demo project: synthetic clips made locally with PyAV, a few gold clips, users, and open batches."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from catalog.access import ANNOTATOR_GROUP
from catalog.core.media import make_synthetic_clip
from catalog.models import Clip, Dataset, GoldLabel, TaxonomyClass
from catalog.selectors.taxonomy import class_pks
from catalog.services.clips import ClipSpec, clips_import
from catalog.services.taxonomy import taxonomy_load
from crowd.models import Batch
from crowd.services.batches import batches_create
from proposals.core.strategy import COMMON_CLASSES

DEMO_DATASET = "demo"
N_DEMO_CLIPS = 24
N_GOLD = 4
# (original label, tone Hz or None, noise amplitude, square colour): audio and video differ per clip.
DEMO_SOUNDS = [
    ("ambulance siren", 880, 0.0, (240, 240, 240)),
    ("playing electronic organ", 330, 0.0, (40, 90, 220)),
    ("wind noise", None, 0.4, (120, 200, 120)),
    ("sea waves", None, 0.25, (30, 120, 200)),
    ("church bell ringing", 523, 0.0, (200, 170, 60)),
    ("telephone bell ringing", 1200, 0.0, (220, 40, 40)),
    ("engine accelerating, revving, vroom", 110, 0.15, (60, 60, 60)),
    ("raining", None, 0.3, (90, 90, 200)),
]


def _admin_password_file() -> Path:
    return Path(settings.VAR_DIR) / "admin-password.txt"


def demo_admin() -> tuple[str, str]:
    """Create the demo admin (staff + superuser) once; its random password is kept under var/."""
    User = get_user_model()
    pw_file = _admin_password_file()
    user = User.objects.filter(username="admin").first()
    if user is None:
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "admin@example.org", password)
        pw_file.write_text(password + "\n")
    elif pw_file.exists():
        password = pw_file.read_text().strip()
    else:
        password = "(set before; reset with: python manage.py changepassword admin)"
    return "admin", password


def demo_experts(n: int = 3) -> list[tuple]:
    """The demo's in-house annotators (group `annotators`, so they may label gold at /gold/): (user, password)
    each, with a random password when the account is created now (None for an account that was there)."""
    User = get_user_model()
    group, _ = Group.objects.get_or_create(name=ANNOTATOR_GROUP)
    users = []
    for i in range(1, n + 1):
        user, created = User.objects.get_or_create(username=f"expert{i}", defaults={"email": f"expert{i}@example.org"})
        password = None
        if created:
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.save()
        user.groups.add(group)
        users.append((user, password))
    return users


def demo_seed(n_clips: int = N_DEMO_CLIPS, n_gold: int = N_GOLD) -> dict:
    """Create the demo dataset if absent (idempotent: a second run only reports what is there). A database
    without a class list gets the default one first (what `load_taxonomy` loads): the demo clips are labelled
    with its classes."""
    taxonomy_loaded = False
    if not TaxonomyClass.objects.exists():
        taxonomy_load()
        taxonomy_loaded = True
    admin_login = demo_admin()
    experts = demo_experts()
    dataset = Dataset.objects.filter(name=DEMO_DATASET).first()
    created = dataset is None
    if created:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                name=DEMO_DATASET,
                budget_usd=100,
                description="Synthetic demo clips: moving squares with tones and noise (audio and video differ).",
            )
            with tempfile.TemporaryDirectory() as tmp:
                specs = []
                for i in range(n_clips):
                    label, tone, noise, colour = DEMO_SOUNDS[i % len(DEMO_SOUNDS)]
                    path = make_synthetic_clip(
                        Path(tmp) / f"demo_{i:03d}.mp4",
                        seconds=3.0,
                        seed=i,
                        tone_hz=(tone * (1 + 0.1 * (i // len(DEMO_SOUNDS)))) if tone else None,
                        noise=noise,
                        shape_color=colour,
                    )
                    specs.append(ClipSpec(f"demo_{i:03d}", str(path), [label], f"demo clip {i}"))
                gold_ids = {spec.video_id for spec in specs[:n_gold]}
                clips = clips_import(dataset, specs, gold_ids=gold_ids, local_roots=[tmp])  # generated here
            classes = class_pks()
            for clip, spec in zip(clips, specs):
                if clip.is_gold:
                    GoldLabel.objects.create(
                        clip=clip, cls_id=classes[spec.original_labels[0]], modality="A", original=True, source="import"
                    )
    batches = _demo_batches(dataset)
    return {
        "dataset": dataset,
        "created": created,
        "admin": admin_login,
        "experts": [(user.username, password) for user, password in experts],
        "batches": batches,
        "n_clips": Clip.objects.filter(dataset=dataset).count(),
        "taxonomy_loaded": taxonomy_loaded,
    }


def demo_hit_url(base: str, batch, worker: str = "DEMO_WORKER") -> str:
    """An MTurk-style arrival for trying a batch locally; the hand-off goes to the local stand-in receiver."""
    query = urlencode(
        {
            "workerId": worker,
            "assignmentId": f"DEMO_{worker}_{str(batch.uuid)[:8]}",
            "hitId": f"DEMO_{str(batch.uuid)[:8]}",
            "turkSubmitTo": f"{base}/demo",
        }
    )
    return f"{base}/hit/{batch.uuid}/?{query}"


def demo_proposals(dataset) -> dict[str, list[str]]:
    """Proposal lists like the VGGSounder recipe would give: the original label, the always-proposed common
    classes, and the other demo sounds as distractors (the demo has no model predictions)."""
    demo_sounds = [label for label, *_ in DEMO_SOUNDS]
    out = {}
    for clip in Clip.objects.filter(dataset=dataset).prefetch_related("original_labels"):
        original = [c.name for c in clip.original_labels.all()]
        out[clip.video_id] = list(dict.fromkeys(original + list(COMMON_CLASSES) + demo_sounds))
    return out


def _demo_batches(dataset) -> list:
    existing = list(Batch.objects.filter(dataset=dataset).order_by("created_at"))
    if existing:
        return existing
    return batches_create(dataset, proposals=demo_proposals(dataset))

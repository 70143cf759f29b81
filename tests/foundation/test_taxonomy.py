import csv
from importlib import resources

import pytest

from catalog.core.taxonomy import closer, closure, implication_graph, merge_modalities
from catalog.errors import ImportFailed
from catalog.models import ClassRelation, MetaLabel, TaxonomyClass
from catalog.selectors.taxonomy import relations
from catalog.services.taxonomy import taxonomy_load


def reference_classes():
    with (resources.files("vggsounder") / "data" / "classes.csv").open(newline="") as fh:
        return [row["display_name"] for row in csv.DictReader(fh)]


def test_classes_are_the_309_vggsound_classes_in_logit_order(taxonomy):
    ref = reference_classes()
    assert len(ref) == 309
    assert taxonomy == ref
    assert list(TaxonomyClass.objects.order_by("index").values_list("index", flat=True)) == list(range(309))
    assert sorted(MetaLabel.objects.values_list("key", flat=True)) == ["background_music", "static_image", "voice_over"]


def test_seeded_relations_follow_the_vggsounder_rules(taxonomy):
    synonyms, superclasses = relations()
    assert {frozenset(p) for p in synonyms} == {
        frozenset({"playing timpani", "playing tympani"}),
        frozenset({"dog barking", "dog bow-wow"}),
    }
    assert ("cow lowing", "cattle mooing") in superclasses
    assert ("crow cawing", "bird squawking") in superclasses
    assert ("baltimore oriole calling", "bird chirping, tweeting") in superclasses
    assert len(superclasses) == 21


def test_reloading_is_idempotent(taxonomy):
    n_rel = ClassRelation.objects.count()
    result = taxonomy_load()
    assert result["created"] == 0 and result["relations_added"] == 0
    assert TaxonomyClass.objects.count() == 309 and ClassRelation.objects.count() == n_rel


def test_a_relation_with_a_misspelt_class_fails_loudly_and_changes_nothing(taxonomy, tmp_path):
    bad = tmp_path / "relations.csv"
    bad.write_text(
        "kind,source,target\nsuperclass,cow lowing,cattle mooing\nsuperclass,cow mooing,cattle mooing\n"
        "antonym,dog barking,dog bow-wow\n"
    )
    before = ClassRelation.objects.count()
    with pytest.raises(ImportFailed) as exc:
        taxonomy_load(relations_csv=bad)
    text = exc.value.as_text()
    assert "relations.csv:3" in text and "'cow mooing'" in text
    assert "relations.csv:4" in text and "allowed: synonym, superclass" in text
    assert ClassRelation.objects.count() == before


def test_a_reordered_class_list_is_refused(taxonomy, tmp_path):
    names = reference_classes()
    names[0], names[1] = names[1], names[0]
    path = tmp_path / "classes.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["index", "mid", "display_name"])
        for i, name in enumerate(names):
            writer.writerow([i, f"vgg_{i}", name])
    with pytest.raises(ImportFailed, match="differs from the one already loaded"):
        taxonomy_load(classes_csv=path)
    assert TaxonomyClass.objects.get(index=0).name == reference_classes()[0]


SYN = [("playing timpani", "playing tympani"), ("dog barking", "dog bow-wow")]
SUP = [("cow lowing", "cattle mooing"), ("bull bellowing", "cattle mooing"), ("crow cawing", "bird squawking")]


def test_closure_adds_superclasses_with_the_union_of_source_modalities():
    out = closure({"cow lowing": "A", "bull bellowing": "V"}, SYN, SUP)
    assert out["cattle mooing"] == ("AV", ["bull bellowing", "cow lowing"])
    assert out["cow lowing"] == ("A", []) and out["bull bellowing"] == ("V", [])


def test_closure_is_symmetric_for_synonyms_and_keeps_original_modalities():
    assert closure({"dog bow-wow": "V"}, SYN, SUP) == {"dog bow-wow": ("V", []), "dog barking": ("V", ["dog bow-wow"])}
    # both synonyms already present: nothing is added and neither modality changes
    both = closure({"playing timpani": "A", "playing tympani": "V"}, SYN, SUP)
    assert both == {"playing timpani": ("A", []), "playing tympani": ("V", [])}
    # a superclass already present keeps its own modality
    assert closure({"cow lowing": "AV", "cattle mooing": "A"}, SYN, SUP)["cattle mooing"] == ("A", [])


def test_closure_is_transitive():
    sup = [("a", "b"), ("b", "c")]
    assert closure({"a": "A"}, [("c", "d")], sup) == {
        "a": ("A", []),
        "b": ("A", ["a"]),
        "c": ("A", ["a"]),
        "d": ("A", ["a"]),
    }


def test_closure_of_unrelated_labels_is_the_identity():
    assert closure({"sea waves": "AV"}, SYN, SUP) == {"sea waves": ("AV", [])}


def _closure_by_search_per_clip(labels, syn, sup):
    """The definition, searched afresh for one clip: every class reachable from an original label is added
    with the union of the modalities of the labels it is reached from."""
    graph = implication_graph(syn, sup)
    reached = {}
    for origin in labels:
        seen, stack = {origin}, [origin]
        while stack:
            for nxt in graph.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
                    if nxt not in labels:
                        reached.setdefault(nxt, set()).add(origin)
    out = {name: (mod, []) for name, mod in labels.items()}
    out.update({n: (merge_modalities(*(labels[s] for s in src)), sorted(src)) for n, src in reached.items()})
    return out


@pytest.mark.django_db
def test_closing_many_clips_with_one_closer_equals_closing_each_afresh(taxonomy):
    """A release closes 150k clips with one `closer` (reachable classes found once): every clip gets the labels,
    modalities and sources a fresh search of the published relations gives it."""
    import random

    syn, sup = relations()
    related = sorted({n for pair in list(syn) + list(sup) for n in pair})
    assert len(related) > 20
    rng = random.Random(5)
    close = closer(syn, sup)
    added = 0
    for _ in range(400):
        labels = {n: rng.choice(["A", "V", "AV"]) for n in rng.sample(related, rng.randint(1, 4))}
        expected = _closure_by_search_per_clip(labels, syn, sup)
        assert close(labels) == expected
        added += len(expected) - len(labels)
    assert added > 100  # the relations did add labels

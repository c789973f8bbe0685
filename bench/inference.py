"""Inference speed of a saved model: texts/s at batch 256, p50/p95 latency at batch 1, per precision.

A 1-layer BiLSTM with the default sizes (embedding 100, hidden 128, max
pooling) is trained for ``--epochs`` (default 1) by textclf's Trainer on
review-length texts (``--data``, through textclf's prepare + tokenize stages),
saved as a model folder in a temporary directory and loaded back with
``textclf.serving.classifier.Classifier.from_folder`` (what ``textclf.load_model`` does
for a folder). Every figure goes through ``Classifier.predict_proba`` on raw
text: tokenizer, CSR encoding, length-sorted batching, model, softmax.

Precisions (``clf.model`` is swapped; textclf's code is not changed):

* ``fp32``: the model as loaded.
* ``bf16``: ``--bf16 cast`` (default) converts the weights with
  ``model.to(torch.bfloat16)``; ``--bf16 autocast`` wraps the calls in
  ``torch.autocast("cpu", dtype=torch.bfloat16)`` instead.
* ``int8``: ``torch.ao.quantization.quantize_dynamic`` on ``nn.LSTM`` and
  ``nn.Linear`` (int8 weights, activations quantized on the fly). The API is
  deprecated in favour of torchao; the warning is recorded in the JSON.

Per precision: accuracy on the held-out test split (and agreement with fp32);
``texts_per_s_b256``: median over ``--reps`` timed passes of ``--texts`` texts
in ``predict_proba`` calls of 256; ``latency_p50_ms`` / ``latency_p95_ms``:
``--latency-samples`` timed single-text calls after a warm-up. The FLOP-bound
limit is this machine's measured fp32 sgemm GFLOP/s divided by the forward
FLOPs per text (8·H·(I+H) per token per layer-direction × the mean tokens per
text of the timed texts); the same limit is used for every precision. A
precision that fails is recorded with an ``error`` string.

``--profile`` adds a cProfile of fp32 ``predict_proba`` (batch 1 and batch 256)
and a timing breakdown of a batch-1 call to the JSON.

    python -m bench.inference [--smoke] [--threads N] [--precisions fp32 bf16 int8] [--profile] [--json PATH]
"""

from __future__ import annotations

if not __package__:  # run as a file (python bench/x.py): import the bench package from the repository root
    import os
    import sys

    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    sys.path.insert(0, os.path.dirname(_here))

import contextlib
import copy
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from bench import _common as C

EMBEDDING, HIDDEN, LAYERS = 100, 128, 1
PRECISIONS = ("fp32", "bf16", "int8")
KEYS = (
    "texts_per_s_b256",
    "flop_bound_texts_per_s",
    "fraction_of_flop_bound",
    "latency_p50_ms",
    "latency_p95_ms",
    "accuracy",
)


def parse_args(argv=None):
    p = C.base_parser(__doc__, "inference")
    p.add_argument(
        "--data", default=C.default_data(), help="Training / test data: a file or builtin:NAME (default: %(default)s)."
    )
    p.add_argument("--epochs", type=int, default=1, help="Training epochs before measuring (default: %(default)s).")
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    p.add_argument(
        "--bf16", choices=("cast", "autocast"), default="cast", help="How bf16 is applied (default: %(default)s)."
    )
    p.add_argument(
        "--batch-size", type=int, default=256, help="Batch of the throughput measurement (default: %(default)s)."
    )
    p.add_argument(
        "--texts",
        type=int,
        default=4096,
        help="Texts per timed throughput pass (test texts, cycled) (default: %(default)s).",
    )
    p.add_argument(
        "--reps", type=int, default=3, help="Timed throughput passes; the median is reported (default: %(default)s)."
    )
    p.add_argument("--latency-samples", type=int, default=300, help="Timed batch-1 calls (default: %(default)s).")
    p.add_argument("--sgemm-size", type=int, default=4096, help="Square matrix size of the sgemm peak measurement.")
    p.add_argument(
        "--profile", action="store_true", help="Add a cProfile of fp32 predict_proba and a batch-1 breakdown."
    )
    p.add_argument(
        "--cache-dir", default=None, help="textclf stage cache for prepare/tokenize (default: a temporary directory)."
    )
    C.add_device(p)
    args = p.parse_args(argv)
    args.threads = C.default_threads(args.threads, args.smoke)
    args.precisions = [x for x in PRECISIONS if x in args.precisions]  # fp32 first: the others compare with it
    if args.smoke:
        args.texts, args.reps, args.latency_samples, args.sgemm_size, args.profile = 256, 1, 10, 512, True
    return args


# --------------------------------------------------------------------------- model


def train_and_save(cfg, prepared, tokenized, folder: Path) -> None:
    """Train the BiLSTM with textclf's Trainer and save it as a textclf model folder."""
    from textclf.models import folder as artifacts
    from textclf.models.classifier import TextClassifier
    from textclf.training.device import seed_everything
    from textclf.training.trainer import Trainer

    seed_everything(cfg.train.seed)
    e = cfg.encoder
    model = TextClassifier(
        vocab_size=tokenized.value.tokenizer.get_vocab_size(),
        embedding_dim=cfg.embedding.dim,
        num_classes=len(prepared.value.label_names),
        padding_idx=0,
        cell=e.cell,
        hidden_size=e.hidden_size,
        layers=e.layers,
        bidirectional=e.bidirectional,
        dropout=0.0,
        embedding_dropout=cfg.embedding.dropout,
        output_dropout=e.output_dropout,
        pooling=e.pooling,
    )
    splits = tokenized.value.splits
    t0 = time.perf_counter()
    result = Trainer(model, cfg.train).fit(splits["train"], splits["validation"])
    print(
        f"trained {cfg.train.epochs} epoch(s) in {time.perf_counter() - t0:.1f}s: "
        f"val accuracy {result.best_metric:.4f}",
        file=sys.stderr,
    )
    artifacts.save_neural(
        folder,
        model=model,
        tokenizer=tokenized.value.tokenizer,
        label_names=prepared.value.label_names,
        config=cfg.to_dict(),
    )


def variant_model(base, precision: str, bf16_mode: str, device: str = "cpu"):
    """(model, context factory, notes) for a precision; the fp32 ``base`` is left untouched."""
    import torch
    from torch import nn

    notes: list[str] = []
    if precision == "fp32":
        return base, contextlib.nullcontext, notes
    if precision == "bf16":
        if bf16_mode == "autocast":
            return base, lambda: torch.autocast(device, dtype=torch.bfloat16), [f"torch.autocast({device!r}, bfloat16)"]
        return copy.deepcopy(base).to(torch.bfloat16), contextlib.nullcontext, ["model.to(torch.bfloat16)"]
    if device != "cpu":
        raise RuntimeError("int8 dynamic quantization (torch.ao quantize_dynamic) runs on the CPU only")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from torch.ao.quantization import quantize_dynamic

        model = quantize_dynamic(copy.deepcopy(base), {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    notes.append("torch.ao.quantization.quantize_dynamic({nn.LSTM, nn.Linear}, qint8)")
    notes += sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}" for w in caught})
    return model, contextlib.nullcontext, notes


# --------------------------------------------------------------------------- measurements


def throughput(clf, texts: list[str], batch_size: int, reps: int, ctx) -> tuple[float, list[float]]:
    """Median texts/s over ``reps`` passes of ``predict_proba`` in chunks of ``batch_size``."""
    with ctx():
        clf.predict_proba(texts[:batch_size], batch_size=batch_size)  # warm-up
        rates = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for lo in range(0, len(texts), batch_size):
                clf.predict_proba(texts[lo : lo + batch_size], batch_size=batch_size)
            rates.append(len(texts) / (time.perf_counter() - t0))
    return C.median(rates), rates


def latency(clf, texts: list[str], n: int, ctx, warmup: int = 10) -> tuple[float, float]:
    """p50, p95 milliseconds of single-text ``predict_proba`` calls."""
    times = np.empty(n)
    with ctx():
        for i in range(warmup):
            clf.predict_proba([texts[i % len(texts)]])
        for i in range(n):
            t0 = time.perf_counter()
            clf.predict_proba([texts[i % len(texts)]])
            times[i] = (time.perf_counter() - t0) * 1e3
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def profile(clf, texts: list[str], batch_size: int, n_single: int) -> dict:
    """cProfile of fp32 ``predict_proba`` (top functions by own time) and a batch-1 timing breakdown."""
    import cProfile
    import pstats

    import torch

    from textclf.models.predict import predict_proba
    from textclf.serving.classifier import encode_texts
    from textclf.text.batching import collate

    out = {}
    for label, calls in (
        ("batch_1", [[t] for t in texts[:n_single]]),
        (f"batch_{batch_size}", [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]),
    ):
        prof = cProfile.Profile()
        prof.enable()
        for call in calls:
            clf.predict_proba(call, batch_size=batch_size)
        prof.disable()
        st = pstats.Stats(prof)
        total = st.total_tt
        rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:15]  # by own (total) time
        out[label] = {
            "calls": len(calls),
            "profiled_s": round(total, 4),
            "top_by_own_time": [
                {
                    "function": f"{Path(fn[0]).name}:{fn[1]}({fn[2]})",
                    "ncalls": v[1],
                    "own_s": round(v[2], 4),
                    "cum_s": round(v[3], 4),
                    "own_share": round(v[2] / total, 3) if total else 0.0,
                }
                for fn, v in rows
            ],
        }

    # Batch-1 breakdown (no profiler): where a single call's time goes.
    sample = [[t] for t in texts[:n_single]]
    model, device = clf.model, clf.device

    def per_call_ms(fn) -> float:
        for call in sample[:5]:
            fn(call)
        t0 = time.perf_counter()
        for call in sample:
            fn(call)
        return (time.perf_counter() - t0) * 1e3 / len(sample)

    encoded = [encode_texts(clf.tokenizer, c, clf.max_length) for c in sample]
    it = iter(range(10**9))

    def forward_only(_):
        split = encoded[next(it) % len(encoded)]
        with torch.inference_mode():
            tokens, lengths, _ = collate(split, np.arange(len(split)), 0, None)
            model(tokens, lengths)[0].softmax(-1)

    model.eval()
    out["batch_1_breakdown_ms"] = {
        "predict_proba": round(per_call_ms(lambda c: clf.predict_proba(c)), 4),
        "encode_texts": round(per_call_ms(lambda c: encode_texts(clf.tokenizer, c, clf.max_length)), 4),
        "train.predict_proba_on_encoded": round(
            per_call_ms(lambda c: predict_proba(model, encoded[next(it) % len(encoded)], device=device)), 4
        ),
        "collate_forward_softmax": round(per_call_ms(forward_only), 4),
        "model.to(device)": round(per_call_ms(lambda c: model.to(device)), 4),
    }
    return out


# --------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    args = parse_args(argv)
    threads, machine, sgemm = C.start(args)
    sets = C.data_overrides(args.data, smoke=args.smoke) + [
        f"embedding.dim={EMBEDDING}",
        f"encoder.hidden_size={HIDDEN}",
        f"encoder.layers={LAYERS}",
        "encoder.cell=lstm",
        "encoder.bidirectional=true",
        f"train.epochs={args.epochs}",
        f"train.device={args.device}",
        f"train.num_threads={threads}",
    ]
    cfg = C.load_config(sets)
    with tempfile.TemporaryDirectory(prefix="textclf-bench-") as tmp:
        prepared, tokenized = C.prepare_and_tokenize(cfg, args.cache_dir or tmp)
        folder = Path(tmp) / "model"
        train_and_save(cfg, prepared, tokenized, folder)
        result = measure(args, folder, prepared, sgemm)
    result["machine"] = machine
    result["setup"]["data"] = args.data
    C.write_json(args.json, result)
    return result


def measure(args, folder: Path, prepared, sgemm: float) -> dict:
    from textclf.serving.classifier import Classifier, encode_texts

    clf = Classifier.from_folder(folder, device=args.device)
    base = clf.model
    test_texts = list(prepared.value.texts("test"))
    test_labels = prepared.value.labels("test")
    texts = [test_texts[i % len(test_texts)] for i in range(max(args.texts, args.batch_size))]
    mean_tokens = float(encode_texts(clf.tokenizer, texts, clf.max_length).lengths.mean())
    fwd_per_token = C.flops_per_token("lstm", EMBEDDING, HIDDEN, LAYERS, True, training=False)
    flop_bound = sgemm * 1e9 / (fwd_per_token * mean_tokens)
    print(
        f"{len(test_texts)} held-out texts; timed texts: {len(texts)}, {mean_tokens:.1f} tokens each on average; "
        f"FLOP-bound limit {flop_bound:.0f} texts/s",
        file=sys.stderr,
    )

    precisions, details = {}, {}
    fp32_pred = None
    for precision in args.precisions:
        try:
            model, ctx, notes = variant_model(base, precision, args.bf16, args.device)
            clf.model = model
            with ctx():
                proba = clf.predict_proba(test_texts, batch_size=args.batch_size)
            pred = proba.argmax(1)
            accuracy = float((pred == test_labels).mean())
            rate, rates = throughput(clf, texts, args.batch_size, args.reps, ctx)
            p50, p95 = latency(clf, texts, args.latency_samples, ctx)
        except Exception as exc:  # record, don't drop: e.g. an unsupported kernel on this CPU
            precisions[precision] = {
                "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            }
            print(f"{precision:<5} failed: {precisions[precision]['error']}", file=sys.stderr)
            continue
        finally:
            clf.model = base
        if precision == "fp32":
            fp32_pred = pred
        precisions[precision] = dict(
            zip(
                KEYS,
                (
                    round(rate, 1),
                    round(flop_bound, 1),
                    round(rate / flop_bound, 4),
                    round(p50, 4),
                    round(p95, 4),
                    round(accuracy, 4),
                ),
            )
        )
        details[precision] = {
            "method": notes[0] if notes else "model as loaded (float32)",
            "notes": notes[1:],
            "texts_per_s_runs": [round(r, 1) for r in rates],
            "agreement_with_fp32": None if fp32_pred is None else round(float((pred == fp32_pred).mean()), 4),
            "accuracy_change_vs_fp32": None
            if "fp32" not in precisions or "error" in precisions["fp32"]
            else round(accuracy - precisions["fp32"]["accuracy"], 4),
        }
        print(
            f"{precision:<5} {C.fmt_rate(rate):>7} texts/s at batch {args.batch_size} "
            f"({rate / flop_bound:.1%} of the FLOP bound) | batch 1: p50 {p50:.3f} ms, p95 {p95:.3f} ms | "
            f"accuracy {accuracy:.4f}",
            flush=True,
        )

    result = {
        "precisions": precisions,
        "machine": None,  # filled in by main
        "setup": {
            "smoke": args.smoke,
            "device": args.device,
            "model": f"1-layer BiLSTM, embedding {EMBEDDING}, hidden {HIDDEN}, max pooling",
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "timed_texts": len(texts),
            "reps": args.reps,
            "latency_samples": args.latency_samples,
            "held_out_texts": len(test_texts),
            "mean_tokens_per_text": round(mean_tokens, 2),
            "forward_flops_per_token": fwd_per_token,
            "forward_flops_per_text": round(fwd_per_token * mean_tokens),
            "sgemm_gflops": round(sgemm, 1),
            "sgemm_size": args.sgemm_size,
            "flop_bound": "fp32 sgemm GFLOP/s / forward FLOPs per text (the same limit for every precision)",
            "flops_formula": C.FLOP_FORMULA,
        },
        "details": details,
    }
    if args.profile:
        clf.model = base
        result["profile"] = profile(clf, texts, args.batch_size, min(args.latency_samples, 200))
        b = result["profile"]["batch_1_breakdown_ms"]
        print("batch-1 breakdown (ms per call): " + ", ".join(f"{k} {v:.3f}" for k, v in b.items()), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()

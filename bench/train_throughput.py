"""Training throughput: real tokens/s of textclf's Trainer vs a naive PyTorch loop, and useful GFLOP/s.

For each variant (rnn, lstm, lstm-x2, bilstm, bilstm-x2; embedding 100,
hidden 128, batch 64) on the same pre-tokenized training split (textclf's own
prepare + tokenize stages):

* textclf: ``textclf.training.trainer.Trainer.fit`` with ``epochs=1`` on the training
  split (or on ``--steps`` random batches of it). Its ``tokens_per_second``
  counts real tokens only and times the training steps only (batching,
  forward, backward, clipping, optimizer, schedule; not the validation pass,
  which runs on 64 texts).
* unbucketed: the same ``Trainer`` with ``train.bucket_chunk=1``: random
  batches, each padded to its own longest text. textclf ÷ unbucketed is what
  length bucketing alone buys, everything else equal.
* naive: what a typical tutorial writes. Every text padded to the *dataset's*
  maximum length once up front, ``DataLoader(TensorDataset, shuffle=True)``,
  ``nn.Embedding`` → ``nn.RNN``/``nn.LSTM`` (stacked / bidirectional as the
  variant, run on the padded batch) → max-pool over the real steps →
  ``nn.Linear``, ``Adam``, ``loss.item()`` every step. Same sizes and dropouts
  as textclf's model, same texts, same real-token count.

The sides are run alternately (textclf, unbucketed, naive, textclf, ...) after
``--warmup`` untimed rounds, ``--reps`` times each; medians are reported.
Useful GFLOP/s = real tokens/s × training FLOPs per token (formula in
``bench/_common.py`` and the JSON), compared with this machine's sgemm
GFLOP/s (best of several ``torch.mm`` of ``--sgemm-size`` square fp32
matrices) at the same thread count.

    python -m bench.train_throughput [--smoke] [--threads N] [--steps N] [--reps N] [--json PATH]
"""

from __future__ import annotations

if not __package__:  # run as a file (python bench/x.py): import the bench package from the repository root
    import os
    import sys

    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    sys.path.insert(0, os.path.dirname(_here))

import sys
import tempfile
import time

import numpy as np

from bench import _common as C

# name -> encoder settings; the default set is the issue's, gru is available on request.
VARIANTS = {
    "rnn": {"cell": "rnn", "layers": 1, "bidirectional": False},
    "gru": {"cell": "gru", "layers": 1, "bidirectional": False},
    "lstm": {"cell": "lstm", "layers": 1, "bidirectional": False},
    "lstm-x2": {"cell": "lstm", "layers": 2, "bidirectional": False},
    "bilstm": {"cell": "lstm", "layers": 1, "bidirectional": True},
    "bilstm-x2": {"cell": "lstm", "layers": 2, "bidirectional": True},
}
DEFAULT_VARIANTS = ["rnn", "lstm", "lstm-x2", "bilstm", "bilstm-x2"]
EMBEDDING, HIDDEN, BATCH = 100, 128, 64


def parse_args(argv=None):
    p = C.base_parser(__doc__, "train_throughput")
    p.add_argument(
        "--data", default=C.default_data(), help="Training data: a file or builtin:NAME (default: %(default)s)."
    )
    p.add_argument(
        "--variants", nargs="+", default=DEFAULT_VARIANTS, choices=sorted(VARIANTS), help="Variants to measure."
    )
    p.add_argument(
        "--steps",
        type=int,
        default=0,
        help="Batches per timed run; 0 = one full epoch of the training split (default).",
    )
    p.add_argument("--reps", type=int, default=3, help="Timed runs per side and variant (default: %(default)s).")
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="Untimed rounds per side first (oneDNN builds a kernel per shape) (default: %(default)s).",
    )
    p.add_argument("--sgemm-size", type=int, default=4096, help="Square matrix size of the sgemm peak measurement.")
    p.add_argument(
        "--cache-dir", default=None, help="textclf stage cache for prepare/tokenize (default: a temporary directory)."
    )
    C.add_device(p)
    args = p.parse_args(argv)
    args.threads = C.default_threads(args.threads, args.smoke)
    if args.smoke:
        args.steps, args.reps, args.warmup, args.sgemm_size = 2, 1, 0, 512
    if args.reps < 1:
        p.error("--reps must be >= 1")
    return args


# --------------------------------------------------------------------------- textclf side


def textclf_model(cfg, vocab_size: int, num_classes: int):
    """The model ``textclf run`` builds for ``cfg`` (seeded)."""
    from textclf.models.classifier import TextClassifier
    from textclf.training.device import seed_everything

    seed_everything(cfg.train.seed)
    e = cfg.encoder
    return TextClassifier(
        vocab_size=vocab_size,
        embedding_dim=cfg.embedding.dim,
        num_classes=num_classes,
        padding_idx=0,
        cell=e.cell,
        hidden_size=e.hidden_size,
        layers=e.layers,
        bidirectional=e.bidirectional,
        dropout=e.dropout if e.layers > 1 else 0.0,
        embedding_dropout=cfg.embedding.dropout,
        output_dropout=e.output_dropout,
        pooling=e.pooling,
    )


def run_textclf(cfg, train, val, vocab_size: int, num_classes: int) -> float:
    """Real tokens/s of one ``Trainer.fit`` epoch (training steps only)."""
    from textclf.training.trainer import Trainer

    model = textclf_model(cfg, vocab_size, num_classes)
    result = Trainer(model, cfg.train, eval_batch_size=256).fit(train, val)
    return float(result.tokens_per_second)


# --------------------------------------------------------------------------- naive side


def naive_model(spec: dict, vocab_size: int, num_classes: int, cfg):
    import torch
    from torch import nn

    class NaiveClassifier(nn.Module):
        """nn.Embedding -> nn.RNN/nn.LSTM on the padded batch -> max over real steps -> nn.Linear."""

        def __init__(self):
            super().__init__()
            rnn = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[spec["cell"]]
            self.embedding = nn.Embedding(vocab_size, EMBEDDING, padding_idx=0)
            self.embedding_dropout = nn.Dropout(cfg.embedding.dropout)
            self.rnn = rnn(
                EMBEDDING,
                HIDDEN,
                num_layers=spec["layers"],
                bidirectional=spec["bidirectional"],
                batch_first=True,
                dropout=cfg.encoder.dropout if spec["layers"] > 1 else 0.0,
            )
            self.dropout = nn.Dropout(cfg.encoder.output_dropout)
            self.fc = nn.Linear(HIDDEN * (2 if spec["bidirectional"] else 1), num_classes)

        def forward(self, tokens, lengths):
            out, _ = self.rnn(self.embedding_dropout(self.embedding(tokens)))  # (B, T_max, D)
            mask = torch.arange(tokens.size(1), device=tokens.device) < lengths[:, None]
            pooled = out.masked_fill(~mask[..., None], float("-inf")).max(dim=1).values
            return self.fc(self.dropout(pooled))

    torch.manual_seed(cfg.train.seed)
    return NaiveClassifier()


def padded_dataset(split, max_len: int):
    """(tokens (N, max_len), lengths (N,), labels (N,)) tensors: every text padded to ``max_len`` up front."""
    import torch

    n = len(split)
    tokens = np.zeros((n, max_len), dtype=np.int64)
    lengths = split.lengths
    for i in range(n):
        tokens[i, : lengths[i]] = split[i]
    return torch.from_numpy(tokens), torch.from_numpy(lengths.copy()), torch.from_numpy(split.labels.copy())


def run_naive(spec: dict, data, vocab_size: int, num_classes: int, cfg) -> float:
    """Real tokens/s of one epoch of the tutorial loop over ``data`` (pre-padded tensors), on ``cfg.train.device``."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    tokens, lengths, labels = data
    device = torch.device(cfg.train.device)
    model = naive_model(spec, vocab_size, num_classes, cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    loader = DataLoader(
        TensorDataset(tokens, lengths, labels),
        batch_size=BATCH,
        shuffle=True,
        generator=torch.Generator().manual_seed(cfg.train.seed),
    )
    model.train()
    total_loss = 0.0
    t0 = time.perf_counter()
    for x, n, y in loader:
        x, n, y = x.to(device), n.to(device), y.to(device)  # as a tutorial does; loss.item() below syncs each step
        opt.zero_grad()
        loss = F.cross_entropy(model(x, n), y)
        loss.backward()
        opt.step()
        total_loss += loss.item()
    seconds = time.perf_counter() - t0
    return int(lengths.sum()) / seconds


# --------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    args = parse_args(argv)
    threads, machine, sgemm = C.start(args)

    fixed = [
        f"embedding.dim={EMBEDDING}",
        f"encoder.hidden_size={HIDDEN}",
        f"train.batch_size={BATCH}",
        "train.epochs=1",
        f"train.device={args.device}",
        f"train.num_threads={threads}",
    ]
    data_sets = C.data_overrides(args.data, smoke=args.smoke)
    with tempfile.TemporaryDirectory(prefix="textclf-bench-") as tmp:
        base = C.load_config(data_sets + fixed)
        prepared, tokenized = C.prepare_and_tokenize(base, args.cache_dir or tmp)
        result = measure(args, threads, sgemm, data_sets, fixed, prepared, tokenized)
    result["machine"] = machine
    C.write_json(args.json, result)
    return result


def measure(args, threads, sgemm, data_sets, fixed, prepared, tokenized) -> dict:
    train_full = tokenized.value.splits["train"]
    val = tokenized.value.splits["validation"]
    vocab_size = tokenized.value.tokenizer.get_vocab_size()
    num_classes = len(prepared.value.label_names)
    dataset_max = int(train_full.lengths.max())

    train = train_full
    if args.steps > 0 and args.steps * BATCH < len(train_full):
        pick = np.random.default_rng(0).choice(len(train_full), size=args.steps * BATCH, replace=False)
        train = train_full.subset(np.sort(pick))
    val = val.subset(np.arange(min(len(val), 64)))
    padded = padded_dataset(train, dataset_max)
    real = train.num_tokens
    print(
        f"data {args.data}: {len(train)} training texts, {real} real tokens, mean length "
        f"{real / len(train):.1f}, dataset max {dataset_max} (naive pads to it: "
        f"{real / (len(train) * dataset_max):.0%} of its cells are real)",
        file=sys.stderr,
    )

    variants, details = {}, {}
    for name in args.variants:
        spec = VARIANTS[name]
        cfg = C.load_config(data_sets + fixed + [f"encoder.{k}={str(v).lower()}" for k, v in spec.items()])
        unbucketed = cfg.model_copy(update={"train": cfg.train.model_copy(update={"bucket_chunk": 1})})
        runs = {"textclf": [], "unbucketed": [], "naive": []}
        sides = {  # each runs within this iteration, with this iteration's values
            "textclf": lambda cfg=cfg: run_textclf(cfg, train, val, vocab_size, num_classes),
            "unbucketed": lambda unbucketed=unbucketed: run_textclf(unbucketed, train, val, vocab_size, num_classes),
            "naive": lambda spec=spec, cfg=cfg: run_naive(spec, padded, vocab_size, num_classes, cfg),
        }
        for rnd in range(args.warmup + args.reps):
            for side, fn in sides.items():  # alternate: textclf, naive, textclf, naive, ...
                rate = fn()
                if rnd >= args.warmup:
                    runs[side].append(rate)
        tps, naive, flat = C.median(runs["textclf"]), C.median(runs["naive"]), C.median(runs["unbucketed"])
        fpt = C.flops_per_token(spec["cell"], EMBEDDING, HIDDEN, spec["layers"], spec["bidirectional"], training=True)
        useful = tps * fpt / 1e9
        variants[name] = {
            "tokens_per_s": round(tps, 1),
            "naive_tokens_per_s": round(naive, 1),
            "speedup_vs_naive": round(tps / naive, 3),
            "unbucketed_tokens_per_s": round(flat, 1),
            "speedup_vs_unbucketed": round(tps / flat, 3),
            "useful_gflops": round(useful, 3),
            "sgemm_gflops": round(sgemm, 1),
            "fraction_of_sgemm": round(useful / sgemm, 4),
        }
        details[name] = {
            **spec,
            "training_flops_per_token": fpt,
            "textclf_tokens_per_s_runs": [round(r, 1) for r in runs["textclf"]],
            "naive_tokens_per_s_runs": [round(r, 1) for r in runs["naive"]],
            "unbucketed_tokens_per_s_runs": [round(r, 1) for r in runs["unbucketed"]],
        }
        print(
            f"{name:<10} textclf {C.fmt_rate(tps):>7} tok/s | unbucketed {C.fmt_rate(flat):>7} (x{tps / flat:.2f}) | "
            f"naive {C.fmt_rate(naive):>7} (x{tps / naive:.2f}) | useful {useful:.1f} GFLOP/s = {useful / sgemm:.1%} of sgemm {sgemm:.0f}",
            flush=True,
        )

    result = {
        "variants": variants,
        "machine": None,  # filled in by main
        "flops_formula": C.FLOP_FORMULA,
        "setup": {
            "data": args.data,
            "smoke": args.smoke,
            "device": args.device,
            "embedding": EMBEDDING,
            "hidden": HIDDEN,
            "batch_size": BATCH,
            "steps": args.steps or "epoch",
            "reps": args.reps,
            "warmup_rounds": args.warmup,
            "sgemm_size": args.sgemm_size,
            "train": C.split_summary(train),
            "dataset_max_length": dataset_max,
            "naive_real_fraction": round(real / (len(train) * dataset_max), 4),
            "statistic": "median over reps; textclf and naive runs alternate",
        },
        "details": details,
    }
    return result


if __name__ == "__main__":
    main()

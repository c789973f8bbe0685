"""Tokenize-stage speed: tokens/s of textclf's encode path vs a pure-Python regex tokenizer.

On the prepared data (textclf's prepare stage on ``--data``), with the
project's tokenizer config (``word`` by default: NFKC + lower-case,
whitespace/punctuation pieces, WordLevel vocabulary):

* ``vocab_train_s``: training the tokenizer on the training split
  (``textclf.text.tokenize.train_tokenizer``), timed apart from encoding.
* ``tokens_per_s``: the stage's encode path for all three splits, as
  ``textclf.text.tokenize.tokenize`` runs it on a cache miss:
  ``encode_dataset`` (``Dataset.map(batched=True)`` over the HF tokenizer's
  ``encode_batch_fast``, written to a fresh Arrow cache file) followed by
  ``to_encoded_split`` (Arrow → CSR arrays). Tokens = real token ids produced.
* ``raw_encode_tokens_per_s``: ``encode_batch_fast`` alone on the same texts
  (Python lists), i.e. the path without ``datasets``.
* ``regex_tokens_per_s``: ``re.findall(r"\\w+|[^\\w\\s]", text.lower())`` + a
  dict lookup to ids (vocabulary built from the training split the same way,
  ``min_frequency`` and ``vocab_size`` as configured; building it is timed
  apart as ``regex_vocab_s``), on the same texts, single-threaded Python.

Each figure is the median of ``--reps`` runs. The HF tokenizer uses
``--threads`` rayon threads (``RAYON_NUM_THREADS``).

    python -m bench.tokenize [--smoke] [--threads N] [--reps N] [--json PATH]
"""

from __future__ import annotations

if not __package__:  # run as a file: this file's name shadows the stdlib `tokenize`, so drop bench/ from sys.path
    import os
    import sys

    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    sys.path.insert(0, os.path.dirname(_here))

import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench import _common as C

SPLITS = ("train", "validation", "test")
REGEX = re.compile(r"\w+|[^\w\s]")


def parse_args(argv=None):
    p = C.base_parser(__doc__, "tokenize")
    p.add_argument("--data", default=C.default_data(), help="Data: a file or builtin:NAME (default: %(default)s).")
    p.add_argument(
        "--reps", type=int, default=3, help="Runs per measurement; medians are reported (default: %(default)s)."
    )
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="textclf config override, e.g. --set tokenizer.kind=bpe (repeatable).",
    )
    p.add_argument(
        "--cache-dir", default=None, help="textclf stage cache for the prepare stage (default: a temporary directory)."
    )
    args = p.parse_args(argv)
    args.threads = C.default_threads(args.threads, args.smoke)
    if args.smoke:
        args.reps = 1
    if args.reps < 1:
        p.error("--reps must be >= 1")
    return args


def regex_vocab(texts: list[str], min_frequency: int, vocab_size: int) -> dict[str, int]:
    """Words by frequency (ties: first seen), ids from 2 (0 = pad, 1 = unk), like textclf's specials."""
    counts = Counter(w for t in texts for w in REGEX.findall(t.lower()))
    words = [w for w, c in counts.most_common() if c >= min_frequency][: vocab_size - 2]
    return {w: i + 2 for i, w in enumerate(words)}


def regex_encode(texts: list[str], vocab: dict[str, int]) -> list[list[int]]:
    get = vocab.get
    return [[get(w, 1) for w in REGEX.findall(t.lower())] for t in texts]


def main(argv=None) -> dict:
    args = parse_args(argv)
    threads = C.setup_threads(args.threads)
    machine = C.machine_info(threads)
    cfg = C.load_config(C.data_overrides(args.data, smoke=args.smoke) + args.sets)
    with tempfile.TemporaryDirectory(prefix="textclf-bench-") as tmp:
        result = measure(args, cfg, Path(args.cache_dir or tmp), Path(tmp))
    result["machine"] = machine
    C.write_json(args.json, result)
    return result


def measure(args, cfg, cache_dir: Path, scratch: Path) -> dict:
    import datasets

    from textclf.core.cache import StageCache
    from textclf.pipeline.data_stages import prepare_spec, prepare_stage
    from textclf.text.tokenize import encode_dataset, to_encoded_split, train_tokenizer

    datasets.disable_progress_bars()
    cache = StageCache(cache_dir)
    data = prepare_stage(prepare_spec(cfg.data, cache.root), cache).value
    tcfg = cfg.tokenizer
    texts = {s: list(data.texts(s)) for s in SPLITS}
    all_texts = [t for s in SPLITS for t in texts[s]]
    n_texts = len(all_texts)

    # -- textclf: train the vocabulary (apart), then the stage's encode path
    train_ds = data.splits["train"]
    train_times, tok = [], None
    for _ in range(args.reps):
        batches = (b["text"] for b in train_ds.select_columns(["text"]).iter(batch_size=2000))
        seconds, tok = C.timed(lambda: train_tokenizer(tcfg, batches, length=len(train_ds)))  # noqa: B023 (called at once)
        train_times.append(seconds)

    stage_times, tokens = [], 0
    for rep in range(args.reps):
        t0 = time.perf_counter()
        tokens = 0
        for s in SPLITS:  # a fresh cache file each time: always a miss, as on a first run
            enc = encode_dataset(data.splits[s], tok, tcfg.max_length, str(scratch / f"enc-{rep}-{s}.arrow"), desc=s)
            tokens += to_encoded_split(enc).num_tokens
        stage_times.append(time.perf_counter() - t0)

    raw_times, raw_tokens = [], 0
    for _ in range(args.reps):
        seconds, encs = C.timed(lambda: tok.encode_batch_fast(all_texts))
        raw_times.append(seconds)
        raw_tokens = sum(min(len(e.ids), tcfg.max_length) for e in encs)

    # -- regex baseline
    vocab_times, vocab = [], {}
    for _ in range(args.reps):
        seconds, vocab = C.timed(lambda: regex_vocab(texts["train"], tcfg.min_frequency, tcfg.vocab_size))
        vocab_times.append(seconds)
    regex_times, regex_tokens = [], 0
    for _ in range(args.reps):
        seconds, ids = C.timed(lambda: regex_encode(all_texts, vocab))
        regex_times.append(seconds)
        regex_tokens = sum(len(x) for x in ids)

    stage_s, raw_s, regex_s = C.median(stage_times), C.median(raw_times), C.median(regex_times)
    result = {
        "tokens_per_s": round(tokens / stage_s, 1),
        "regex_tokens_per_s": round(regex_tokens / regex_s, 1),
        "raw_encode_tokens_per_s": round(raw_tokens / raw_s, 1),
        "texts_per_s": round(n_texts / stage_s, 1),
        "regex_texts_per_s": round(n_texts / regex_s, 1),
        "vocab_train_s": round(C.median(train_times), 4),
        "regex_vocab_s": round(C.median(vocab_times), 4),
        "machine": None,  # filled in by main
        "setup": {
            "data": args.data,
            "smoke": args.smoke,
            "tokenizer": tcfg.model_dump(mode="json"),
            "reps": args.reps,
            "texts": n_texts,
            "tokens": tokens,
            "regex_tokens": regex_tokens,
            "vocab_size": tok.get_vocab_size(),
            "regex_vocab_size": len(vocab) + 2,
            "stage_encode_s_runs": [round(x, 4) for x in stage_times],
            "regex_encode_s_runs": [round(x, 4) for x in regex_times],
            "statistic": "median over reps",
        },
    }
    print(
        f"textclf stage encode {C.fmt_rate(result['tokens_per_s'])} tok/s "
        f"(raw encode_batch_fast {C.fmt_rate(result['raw_encode_tokens_per_s'])}) | regex "
        f"{C.fmt_rate(result['regex_tokens_per_s'])} tok/s | vocab training {result['vocab_train_s']:.3f}s "
        f"(regex vocab {result['regex_vocab_s']:.3f}s) | {n_texts} texts",
        flush=True,
    )
    return result


if __name__ == "__main__":
    main()

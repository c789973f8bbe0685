"""Scale of data: textclf's prepare + tokenize stages on 1,000,000 short texts, time and peak RSS.

The corpus (``--rows`` short review-like texts, two labels, a CSV file) is
generated in this process, in chunks. Each measurement then runs in a fresh
child process whose peak resident set size is read from ``wait4`` (the
kernel's ``ru_maxrss``), so nothing this process holds is counted:

* ``imports``: a child that only imports textclf, torch, datasets and
  tokenizers: the floor every run pays (``baseline_rss_mb``).
* ``textclf``: the prepare stage (read → validate → label-encode → stratified
  split → fingerprint → leakage check → save) and the tokenize stage (train
  the word tokenizer on train → encode every split → CSR arrays) with a fresh
  stage cache: ``prepare_s``, ``tokenize_s``, ``peak_rss_mb``.
* ``python_list``: a child that reads the same CSV into a plain Python list
  of (text, label) tuples with the ``csv`` module, the memory of *holding
  the corpus as Python objects*, for contrast (``python_list_rss_mb``).

``stage_rss_mb`` (peak minus the imports' floor) is what the stages need for
the data: Arrow tables (the CSV is converted to a memory-mapped Arrow cache
file, validation, label encoding and the leakage check are Arrow compute
kernels), batched ``Dataset.map`` encoding and the CSR token arrays. No step
turns the corpus into one Python object per row; the fingerprint and the
encoder see one batch of rows at a time.

    python -m bench.scale [--rows N] [--smoke] [--threads N] [--json PATH] [--workdir DIR]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import _common as C

WORDS_POS = ["good", "great", "superb", "lovely", "fun", "moving", "sharp", "warm"]
WORDS_NEG = ["bad", "awful", "dull", "boring", "weak", "flat", "messy", "cold"]

STAGES = """
import json, os, sys, time
import datasets
from bench import _common as C
from textclf.core.cache import StageCache
from textclf.pipeline.data_stages import prepare_stage, tokenize_stage
from textclf.pipeline.variant import plan

datasets.disable_progress_bars()
C.setup_threads(int(sys.argv[3]))
cfg = C.load_config([f"data.source={sys.argv[1]}", "tokenizer.kind=word"])
cache = StageCache(sys.argv[2])
p = plan(cfg, cache)  # the stage specs the pipeline derives from a config
t0 = time.perf_counter()
data = prepare_stage(p.prepare, cache)
t1 = time.perf_counter()
tok = tokenize_stage(p.tokenize, data, cache)
t2 = time.perf_counter()
rows = {s: len(data.value.splits[s]) for s in ("train", "validation", "test")}
tokens = {s: int(tok.value.splits[s].num_tokens) for s in rows}
print(json.dumps({"prepare_s": t1 - t0, "tokenize_s": t2 - t1, "rows": rows, "tokens": tokens,
                  "vocab_size": tok.value.tokenizer.get_vocab_size()}))
"""

IMPORTS = "import torch, datasets, tokenizers, pyarrow, textclf.pipeline.data_stages, textclf.data.prepare, textclf.text.tokenize; print('{}')"

PY_LIST = """
import csv, sys
with open(sys.argv[1], newline="", encoding="utf-8") as fh:
    rows = [(r[0], r[1]) for r in csv.reader(fh)]
print('{"rows": %d}' % (len(rows) - 1))
"""


def parse_args(argv=None):
    p = C.base_parser(__doc__, "scale")
    p.add_argument("--rows", type=int, default=1_000_000, help="Texts in the generated corpus (default: %(default)s).")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="Where the corpus and the stage cache go (default: a temporary directory, removed).",
    )
    args = p.parse_args(argv)
    args.threads = C.default_threads(args.threads, args.smoke)
    if args.smoke:
        args.rows = 20_000
    return args


def write_corpus(path: Path, rows: int, seed: int = 0, chunk: int = 100_000) -> None:
    """``rows`` short texts (6–16 words from a 5,000-word vocabulary plus sentiment words), CSV, in chunks."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(5000)])
    schema = pa.schema([("text", pa.string()), ("label", pa.string())])
    with pcsv.CSVWriter(str(path), schema) as writer:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            labels = rng.integers(0, 2, n)
            lengths = rng.integers(6, 17, n)
            texts = []
            for label, length in zip(labels, lengths):
                words = list(vocab[rng.integers(0, len(vocab), length - 1)])
                cue = WORDS_POS if label else WORDS_NEG
                words.insert(int(rng.integers(0, length)), cue[int(rng.integers(0, len(cue)))])
                texts.append(" ".join(words))
            writer.write_table(
                pa.table({"text": texts, "label": ["pos" if x else "neg" for x in labels]}, schema=schema)
            )


def measure(code: str, *args: str) -> tuple[dict, float, float]:
    """Run ``code`` in a fresh Python; returns (its JSON output, wall seconds, peak RSS in MiB)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(C.REPO), os.environ.get("PYTHONPATH", "")]),
        "TOKENIZERS_PARALLELISM": "true",
        "HF_HUB_OFFLINE": "1",
    }
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=out, stderr=err, env=env, cwd=C.REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"benchmark child failed ({proc.returncode}):\n{err.read()[-3000:]}")
        return json.loads(out.read().strip().splitlines()[-1]), wall, usage.ru_maxrss / 1024  # KiB on Linux


def main(argv=None) -> dict:
    args = parse_args(argv)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="textclf-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        corpus = work / f"corpus-{args.rows}.csv"
        t0 = time.perf_counter()
        if not corpus.exists():
            write_corpus(corpus, args.rows)
        gen_s = time.perf_counter() - t0
        file_mb = corpus.stat().st_size / 2**20
        print(f"corpus: {args.rows:,} texts, {file_mb:.0f} MiB ({gen_s:.1f}s to generate)", file=sys.stderr)

        _, _, baseline = measure(IMPORTS)
        cache = work / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        stats, wall, peak = measure(STAGES, str(corpus), str(cache), str(args.threads))
        _, _, pylist = measure(PY_LIST, str(corpus))
        _, _, bare = measure("print('{}')")

        result = {
            "rows": args.rows,
            "file_mb": round(file_mb, 1),
            "prepare_s": round(stats["prepare_s"], 2),
            "tokenize_s": round(stats["tokenize_s"], 2),
            "total_s": round(stats["prepare_s"] + stats["tokenize_s"], 2),
            "process_wall_s": round(wall, 2),
            "texts_per_s": round(args.rows / (stats["prepare_s"] + stats["tokenize_s"])),
            "peak_rss_mb": round(peak, 1),
            "baseline_rss_mb": round(baseline, 1),
            "stage_rss_mb": round(peak - baseline, 1),
            "python_list_rss_mb": round(pylist - bare, 1),
            "split_rows": stats["rows"],
            "tokens": stats["tokens"],
            "vocab_size": stats["vocab_size"],
            "smoke": args.smoke,
            "machine": C.machine_info(args.threads),
        }
        print(
            f"prepare {result['prepare_s']:.1f}s + tokenize {result['tokenize_s']:.1f}s for {args.rows:,} texts "
            f"({C.fmt_rate(result['texts_per_s'])} texts/s); peak RSS {peak:.0f} MiB (imports alone {baseline:.0f} MiB); "
            f"a plain Python list of the same rows adds {pylist - bare:.0f} MiB to bare Python",
            file=sys.stderr,
        )
        C.write_json(args.json, result)
        return result
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

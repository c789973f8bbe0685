"""Recurrent cells alone: ms per training step and per inference call, torch's nn.RNN / nn.GRU / nn.LSTM vs FastRNN / FastGRU.

Why: on the CPU torch runs nn.RNN (tanh) and nn.GRU as a per-step loop with
per-step autograd nodes, while a padded nn.LSTM gets oneDNN's fused kernel;
``textclf.models.fast_rnn`` replaces the loop for the RNN and the GRU. This
measures the cells without the rest of the training loop, so the difference
is theirs alone.

For each thread count (``--threads N``; default 1 and all cores, 1 with
``--smoke``) and each shape (B, T, I, H) (default (64, 30, 64, 64),
(64, 30, 100, 128), (64, 60, 64, 64); ``--shape B T I H`` to choose), one
single-layer, unidirectional, batch_first module per cell (rnn, fast_rnn,
gru, fast_gru, lstm; the fast ones carry the torch module's weights) with a
``Linear(H, 5)`` head on the top layer's final state:

* train: ``zero_grad``, forward on a random (B, T, I) batch that requires
  grad (as an embedding output does, so the input gradient is computed too),
  cross-entropy on random labels, ``backward``. No optimizer step (it is the
  same for every cell).
* infer: the same forward and head under ``torch.inference_mode()``.

Before timing, each fast module's output and gradients are checked against
its torch twin (the JSON records the largest difference) and the fast path is
checked to be the one taken. Then all (cell, mode) sides run in rounds,
``--steps`` calls per side per round, the order rotated every round; after
``--warmup`` untimed rounds, ``--reps`` rounds are timed (wall clock) and the
median ms per call is reported. ``speedup`` = torch cell ÷ fast cell of the
same kind; ``useful_gflops`` = the recurrent layer's FLOPs (formula in
``bench/_common.py``) ÷ time.

    python -m bench.rnn_cells [--smoke] [--threads N] [--shape B T I H ...] [--reps N] [--steps N] [--json PATH]
"""

from __future__ import annotations

if not __package__:  # run as a file (python bench/x.py): import the bench package from the repository root
    import os
    import sys

    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    sys.path.insert(0, os.path.dirname(_here))

import sys
import time

from bench import _common as C

SHAPES = [(64, 30, 64, 64), (64, 30, 100, 128), (64, 60, 64, 64)]
CELLS = ("rnn", "fast_rnn", "gru", "fast_gru", "lstm")
MODES = ("train", "infer")
FAST = {"rnn": "fast_rnn", "gru": "fast_gru"}  # torch cell -> its fast twin
CLASSES = 5


def parse_args(argv=None):
    p = C.base_parser(__doc__, "rnn_cells")
    p.add_argument(
        "--shape",
        nargs=4,
        type=int,
        action="append",
        metavar=("B", "T", "I", "H"),
        help="A (batch, steps, input size, hidden size) to measure; repeat for several (default: the three above).",
    )
    p.add_argument("--reps", type=int, default=7, help="Timed rounds (default: %(default)s).")
    p.add_argument("--warmup", type=int, default=2, help="Untimed rounds first (default: %(default)s).")
    p.add_argument("--steps", type=int, default=10, help="Calls per side per round (default: %(default)s).")
    # this benchmark compares thread counts: without --threads it runs 1 and all cores
    p._option_string_actions[
        "--threads"
    ].help = f"torch CPU threads; default: 1 and all cores ({C.all_cores()}) one after the other, 1 with --smoke."
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    if args.threads is not None:
        args.thread_counts = [args.threads]
    else:
        args.thread_counts = [1] if args.smoke else sorted({1, C.all_cores()})
    args.shapes = [tuple(s) for s in args.shape] if args.shape else SHAPES
    if any(v < 1 for s in args.shapes for v in s):
        p.error("every --shape value must be >= 1")
    if args.smoke:
        args.reps, args.warmup, args.steps = 1, 0, 1
    if args.reps < 1 or args.steps < 1 or args.warmup < 0:
        p.error("--reps and --steps must be >= 1, --warmup >= 0")
    return args


# --------------------------------------------------------------------------- the sides


def build(shape, seed: int = 0) -> dict:
    """cell -> (recurrent module, head); the fast modules carry their torch twin's weights."""
    import torch
    from torch import nn

    from textclf.models.fast_rnn import FastGRU, FastRNN

    _, _, I, H = shape
    ctor = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM, "fast_rnn": FastRNN, "fast_gru": FastGRU}
    modules = {}
    for cell in CELLS:
        torch.manual_seed(seed)
        rnn = ctor[cell](I, H, batch_first=True)
        head = nn.Linear(H, CLASSES)
        modules[cell] = (rnn, head)
    for cell, fast in FAST.items():
        modules[fast][0].load_state_dict(modules[cell][0].state_dict())
        modules[fast][1].load_state_dict(modules[cell][1].state_dict())
    return modules


def logits(rnn, head, x):
    """Head on the top layer's final state: (B, CLASSES)."""
    _, h = rnn(x)
    h = h[0] if isinstance(h, tuple) else h  # LSTM: (h_n, c_n)
    return head(h[-1])


def train_step(rnn, head, x, y):
    import torch.nn.functional as F

    rnn.zero_grad(set_to_none=True)
    head.zero_grad(set_to_none=True)
    x.grad = None
    F.cross_entropy(logits(rnn, head, x), y).backward()


def infer_step(rnn, head, x):
    import torch

    with torch.inference_mode():
        logits(rnn, head, x)


def check_fast(modules, x, y) -> dict:
    """Per fast cell: largest |fast - torch| over logits and every gradient, and which path each mode takes."""
    import torch

    B, T = x.shape[0], x.shape[1]
    report = {}
    for cell, fast in FAST.items():
        got = {}
        for name in (cell, fast):
            rnn, head = modules[name]
            train_step(rnn, head, x, y)
            tensors = [x.grad] + [p.grad for p in (*rnn.parameters(), *head.parameters())]
            with torch.no_grad():
                tensors.append(logits(rnn, head, x))
            got[name] = [t.clone() for t in tensors]
            rnn.zero_grad(set_to_none=True)
            head.zero_grad(set_to_none=True)
        rnn = modules[fast][0]
        node = rnn(x)[0].grad_fn.next_functions[0][0]  # under the (T, B, H) -> (B, T, H) transpose
        report[fast] = {
            "max_abs_diff": max(float((a - b).abs().max()) for a, b in zip(got[cell], got[fast])),
            "fast_path_train": node is not None and "LayerBackward" in type(node).__name__,
            # inference has no graph to look at: the module's own rule
            "fast_path_infer": T >= rnn.min_steps and B >= rnn.min_inference_batch,
        }
    x.grad = None
    return report


def measure_shape(args, shape) -> dict:
    import torch

    B, T, I, H = shape
    modules = build(shape)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, I, generator=g, requires_grad=True)
    y = torch.randint(0, CLASSES, (B,), generator=g)
    checks = check_fast(modules, x, y)

    sides = [(cell, mode) for cell in CELLS for mode in MODES]
    runs = {side: [] for side in sides}
    for rnd in range(args.warmup + args.reps):
        k = rnd % len(sides)
        for cell, mode in sides[k:] + sides[:k]:  # rotate: no side is always first or last
            rnn, head = modules[cell]
            t0 = time.perf_counter()
            for _ in range(args.steps):
                if mode == "train":
                    train_step(rnn, head, x, y)
                else:
                    infer_step(rnn, head, x)
            if rnd >= args.warmup:
                runs[(cell, mode)].append((time.perf_counter() - t0) / args.steps * 1e3)

    ms = {mode: {cell: round(C.median(runs[(cell, mode)]), 4) for cell in CELLS} for mode in MODES}
    speedup = {mode: {cell: round(ms[mode][cell] / ms[mode][fast], 3) for cell, fast in FAST.items()} for mode in MODES}
    gflops = {}
    for mode in MODES:
        gflops[mode] = {}
        for cell in CELLS:
            kind = cell.removeprefix("fast_")
            flops = B * T * C.flops_per_token(kind, I, H, 1, False, training=(mode == "train"))
            gflops[mode][cell] = round(flops / (ms[mode][cell] / 1e3) / 1e9, 2)
    return {
        "shape": {"B": B, "T": T, "I": I, "H": H},
        "ms": ms,
        "speedup": speedup,
        "useful_gflops": gflops,
        "checks": checks,
        "runs_ms": {f"{cell}/{mode}": [round(v, 4) for v in runs[(cell, mode)]] for cell, mode in sides},
    }


def print_shape(threads: int, res: dict) -> None:
    s = res["shape"]
    for mode in MODES:
        ms, sp = res["ms"][mode], res["speedup"][mode]
        parts = []
        for cell in CELLS:
            part = f"{cell} {ms[cell]:7.3f}"
            if cell.startswith("fast_"):
                part += f" (x{sp[cell.removeprefix('fast_')]:.2f})"
            parts.append(part)
        print(
            f"threads {threads} B={s['B']} T={s['T']} I={s['I']} H={s['H']} {mode:5} ms/call: " + " | ".join(parts),
            flush=True,
        )


# --------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    results = []
    for threads in args.thread_counts:
        torch.set_num_threads(threads)
        for shape in args.shapes:
            res = measure_shape(args, shape)
            res["threads"] = threads
            print_shape(threads, res)
            bad = {k: v for k, v in res["checks"].items() if v["max_abs_diff"] > 1e-3 or not v["fast_path_train"]}
            if bad:
                print(f"  WARNING: fast cells not on their path or not matching torch: {bad}", file=sys.stderr)
            results.append(res)
    result = {
        "results": results,
        "machine": C.machine_info(max(args.thread_counts)),
        "flops_formula": C.FLOP_FORMULA,
        "setup": {
            "smoke": args.smoke,
            "threads": args.thread_counts,
            "shapes": [list(s) for s in args.shapes],
            "reps": args.reps,
            "warmup_rounds": args.warmup,
            "steps_per_round": args.steps,
            "classes": CLASSES,
            "statistic": "median over reps of wall-clock ms per call; sides interleaved, order rotated each round",
        },
    }
    C.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()

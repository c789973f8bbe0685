"""The logged MLflow model serves: `mlflow models serve` answers /invocations with labels + probabilities.

Trains one tiny tracked model through the real CLI, starts the MLflow scoring
server on a free port of 127.0.0.1 (and nothing else), sends real HTTP
requests in both accepted JSON shapes, and checks the answers against
``textclf.load_model(ref).predict_proba``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pipeline import run_cli, write_corpus  # noqa: E402

pytestmark = pytest.mark.slow

HOST = "127.0.0.1"
TEXTS = ["the film was great", "the plot was awful and dull", "zzz unseen", "lovely cast, superb story"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _post(port: int, payload: dict) -> dict:
    req = urllib.request.Request(
        f"http://{HOST}:{port}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _wait_ready(proc: subprocess.Popen, port: int, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/ping", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"server not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it spawns uvicorn workers), SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_mlflow_models_serve_answers_with_labels_and_probabilities(tmp_path):
    import textclf

    data = write_corpus(tmp_path / "reviews.csv")
    args = [
        "train",
        "-q",
        "--set",
        f"data.source={data}",
        "--set",
        "train.epochs=2",
        "--set",
        "encoder.hidden_size=8",
        "--set",
        "embedding.dim=8",
        "--set",
        "tokenizer.min_frequency=1",
        "--set",
        "train.num_threads=1",
        "--set",
        "evaluate.latency_samples=2",
        "--metrics-out",
        "m.json",
    ]
    assert run_cli(*args) == 0
    ref = f"runs:/{json.loads(Path('m.json').read_text())['run_id']}/model"
    clf = textclf.load_model(ref)
    want = clf.predict_proba(TEXTS)

    venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
    }  # mlflow starts `uvicorn` by name
    port = _free_port()
    log = tmp_path / "serve.log"
    cmd = [
        str(venv_bin / "mlflow"),
        "models",
        "serve",
        "-m",
        ref,
        "--env-manager",
        "local",
        "-h",
        HOST,
        "-p",
        str(port),
    ]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ready(proc, port, log)
        answers = {
            "dataframe_records": _post(port, {"dataframe_records": [{"text": t} for t in TEXTS]}),
            "inputs": _post(port, {"inputs": TEXTS}),
        }
        for shape, answer in answers.items():
            rows = answer["predictions"]
            assert len(rows) == len(TEXTS), shape
            assert set(rows[0]) == {"label", *(f"proba_{c}" for c in clf.labels)}, shape
            got = np.array([[r[f"proba_{c}"] for c in clf.labels] for r in rows], dtype=np.float32)
            assert np.array_equal(got, want), shape
            assert [r["label"] for r in rows] == clf.predict(TEXTS), shape
        # a request without a text column is a client error, not a crash
        with pytest.raises(urllib.error.HTTPError) as info:
            _post(port, {"dataframe_records": [{"body": "x", "other": "y"}]})
        assert 400 <= info.value.code < 500
    finally:
        _stop(proc)
    assert proc.poll() is not None

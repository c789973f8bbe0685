"""Model references: turn what a user types into a local, validated model folder.

A reference is one of::

    path/to/model            a textclf model folder (config.json, tokenizer.json, ...)
    path/to/mlflow-model     a downloaded MLflow model folder (MLmodel + artifacts/)
    runs:/RUN_ID             the model of a run (a cached child run points at the
                             model it reused through its ``textclf.model_uri`` tag)
    runs:/RUN_ID/model       the same, spelled out
    models:/NAME@ALIAS       a registered model version by alias (e.g. champion)
    models:/NAME/VERSION     a registered model version by number
    models:/m-ID             an MLflow logged model by id
    PARENT_RUN_ID:VARIANT    the model of VARIANT in that `textclf run` (its parent run)
    PARENT_RUN_ID:best       the model of that run's best variant (chosen on validation)
    best                     PARENT_RUN_ID:best of the latest finished `textclf run` in the store
    PARENT_RUN_ID:TASK/VARIANT, PARENT_RUN_ID:TASK/best   the same in a multi-task pipeline

For the last forms, a variant's model is that of its seed with the best value
of the run's selection metric on validation data, the run ``--register``
would register (:mod:`textclf.tracking.champion`). A local folder that exists
always wins over them (a folder named ``best`` is a folder).

The run behind a reference is checked the way MLflow records it: a model of a
FAILED or deleted run, or a FAILED logged model, is refused unless
``allow_failed`` (``--allow-failed``): it may be half-trained. A RUNNING or
KILLED run, or a PENDING logged model, loads with a warning.

MLflow references are resolved against ``--tracking-uri`` /
``MLFLOW_TRACKING_URI`` (else the project's default store). Only two things
are downloaded: the model's ``MLmodel`` file, read as plain YAML to find where
the pyfunc keeps the ``model_dir`` artifact, and that folder itself. The
pyfunc is never loaded, so no code from an artifact runs; the folder is then
validated by :func:`textclf.artifacts.read_folder` (safetensors + JSON only).

Downloads land in ``<cache>/models/<hash>`` where the hash covers the tracking
URI and the *resolved* immutable location (a run id, a model version's
source), never the alias: moving ``@champion`` to a new version downloads the
new version instead of reusing the old one. Like a stage-cache entry, a
download records its files' sizes and hashes and is checked (once per
process) before it is reused; a damaged one, or one from before checksums
(downloading again is cheap), is removed and downloaded again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textclf.core import checksums
from textclf.core.errors import ModelError

log = logging.getLogger(__name__)

FORMS = (
    "a model folder, runs:/RUN_ID[/model], models:/NAME@ALIAS, models:/NAME/VERSION, models:/m-ID, "
    "PARENT_RUN_ID:VARIANT, PARENT_RUN_ID:best or best"
)
# PARENT_RUN_ID:VARIANT (or TASK/VARIANT). An id is 8+ word characters, so "runs:/" and "C:\\" are not ids.
_FRIENDLY = re.compile(r"^(?P<parent>[0-9A-Za-z][\w-]{7,63}):(?P<rest>[^/\\].*)$")
_DONE = ".textclf-download.json"


@dataclass
class ResolvedModel:
    """Where a reference led: the local folder plus the MLflow lineage, when there is one."""

    ref: str
    path: Path  # the local textclf model folder
    kind: str  # folder | run | registered | logged
    run_id: str | None = None  # the run that logged the model
    model_uri: str | None = None  # the canonical MLflow URI of the model
    registered: dict[str, Any] | None = None  # {"name", "version", "alias"}
    details: dict[str, Any] = field(default_factory=dict)

    def lineage_tags(self) -> dict[str, str]:
        """Tags a run started from this model records (``init_from_run`` / ``init_from_model``)."""
        tags: dict[str, str] = {}
        if self.run_id:
            tags["init_from_run"] = self.run_id
        if self.registered:
            tags["init_from_model"] = f"models:/{self.registered['name']}/{self.registered['version']}"
        elif self.model_uri:
            tags["init_from_model"] = self.model_uri
        return tags


def is_mlflow_ref(ref: str) -> bool:
    return ref.startswith(("runs:/", "models:/"))


def resolve(
    ref: str, *, tracking_uri: str | None = None, cache_dir: str | Path | None = None, allow_failed: bool = False
) -> ResolvedModel:
    """Resolve ``ref`` to a local model folder (downloading from MLflow when needed).

    The folder is not validated here; :func:`load_folder` does that.
    """
    if not isinstance(ref, (str, os.PathLike)) or not str(ref).strip():
        raise ModelError(f"Empty model reference. Pass {FORMS}.")
    ref = str(ref).strip()
    if is_mlflow_ref(ref):
        return _resolve_mlflow(ref, tracking_uri, cache_dir, allow_failed=allow_failed)
    if not Path(ref).expanduser().exists():  # a folder that exists wins over the forms below
        if ref == "best" or _FRIENDLY.match(ref):
            return _resolve_friendly(ref, tracking_uri, cache_dir, allow_failed)
        if re.match(r"^[a-zA-Z][\w+.-]*:/", ref):
            raise ModelError(f"Model reference {ref!r}: unsupported scheme. Pass {FORMS}.")
    return _resolve_path(ref)


def load_folder(
    ref: str,
    *,
    tracking_uri: str | None = None,
    cache_dir: str | Path | None = None,
    allow_failed: bool = False,
    weights: bool = True,
) -> tuple[dict[str, Any], ResolvedModel]:
    """Resolve and validate: ``(artifacts.read_folder(...), ResolvedModel)``."""
    from textclf.models.folder import read_folder

    resolved = resolve(ref, tracking_uri=tracking_uri, cache_dir=cache_dir, allow_failed=allow_failed)
    return read_folder(resolved.path, weights=weights), resolved


# --------------------------------------------------------------------------- local paths


def _resolve_path(ref: str) -> ResolvedModel:
    p = Path(ref).expanduser()
    if not p.exists():
        raise ModelError(
            f"Model reference {ref!r}: no such folder, and not an MLflow URI. Pass {FORMS} "
            f"(e.g. the --output folder of `textclf train`, or runs:/<run id> from the MLflow UI)."
        )
    if not p.is_dir():
        raise ModelError(
            f"Model reference {ref!r} is a file; pass the model folder that holds it (config.json, model.safetensors, ...)."
        )
    if (p / "config.json").is_file():
        return ResolvedModel(ref=ref, path=p, kind="folder")
    if (p / "MLmodel").is_file():
        # A model downloaded with `mlflow artifacts download` (or found under mlruns/): use its model_dir artifact.
        return ResolvedModel(ref=ref, path=_model_dir_in(p, p / "MLmodel", ref), kind="folder")
    raise ModelError(
        f"Model reference {ref!r}: {p} is neither a textclf model folder (config.json, tokenizer.json, "
        f"model.safetensors, labels.json) nor an MLflow model folder (MLmodel)."
    )


def _model_dir_in(root: Path, mlmodel: Path, ref: str) -> Path:
    """The ``model_dir`` artifact's folder inside a local MLflow model folder (MLmodel read as data only)."""
    rel = _model_dir_path(mlmodel, ref)
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ModelError(f"{mlmodel}: artifact path {rel!r} points outside the model folder; refusing to read it.")
    if not target.is_dir():
        raise ModelError(f"{mlmodel}: names artifact folder {rel!r}, but {target} does not exist.")
    return target


def _model_dir_path(mlmodel: Path, ref: str) -> str:
    from textclf.core.errors import ConfigError
    from textclf.core.yamlio import load_yaml_file

    try:  # read with limits: an MLmodel from a store is input like any other
        doc = load_yaml_file(mlmodel, "MLmodel") or {}
    except ConfigError as exc:
        raise ModelError(f"{ref}: its MLmodel file cannot be read ({exc}).") from None
    try:
        rel = doc["flavors"]["python_function"]["artifacts"]["model_dir"]["path"]
    except (KeyError, TypeError):
        raise ModelError(
            f"{ref}: not a textclf model (its MLmodel has no python_function artifact 'model_dir'). "
            "Only models logged by textclf can be loaded."
        ) from None
    if not isinstance(rel, str) or not rel or rel.startswith("/") or ".." in Path(rel).parts:
        raise ModelError(f"{ref}: MLmodel names an unsafe artifact path {rel!r}; refusing to read it.")
    return rel


# --------------------------------------------------------------------------- MLflow


def _setup(tracking_uri: str | None, ref: str) -> str:
    """Point MLflow at the store: the explicit URI, else the one already in use, else env / default."""
    import mlflow

    from textclf.tracking import store as tracking

    if tracking_uri is None:
        from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

        if is_tracking_uri_set():  # set by the caller (e.g. a pipeline run's --tracking-uri) or MLFLOW_TRACKING_URI
            return _check_store(mlflow.get_tracking_uri(), ref)
    uri = tracking.resolve_uri(tracking_uri)
    _check_store(uri, ref)
    return tracking.setup(uri)


def _check_store(uri: str, ref: str) -> str:
    # Opening a missing SQLite file would silently create an empty store; say where we looked instead.
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        if not db.is_file():
            raise ModelError(
                f"Model reference {ref!r}: no MLflow store at {db} (tracking URI {uri}). Run from the project folder, or pass "
                "--tracking-uri / set MLFLOW_TRACKING_URI to the store that holds the model."
            )
    return uri


def _mlflow_call(ref: str, fn, *args, hint: str | None = None, **kwargs):
    from mlflow.exceptions import MlflowException

    try:
        return fn(*args, **kwargs)
    except MlflowException as exc:
        if hint:
            raise ModelError(f"Model reference {ref!r}: {hint}") from None
        msg = str(exc).splitlines()[0].rstrip(". ")
        code = getattr(exc, "error_code", "")
        if code == "RESOURCE_DOES_NOT_EXIST" or "not found" in msg.lower() or "does not exist" in msg.lower():
            raise ModelError(f"Model reference {ref!r}: {msg}. {_fix_hint(ref)}") from None
        raise ModelError(f"Model reference {ref!r}: MLflow error: {msg}") from None


def _fix_hint(ref: str) -> str:
    if ref.startswith("runs:/"):
        return "Check the run id in the MLflow UI (`textclf ui`) and that --tracking-uri / MLFLOW_TRACKING_URI points at its store."
    return (
        "Check the name, version and alias in the MLflow UI (`textclf ui`, Models tab); register a model with "
        "`textclf run --register NAME`, and point --tracking-uri / MLFLOW_TRACKING_URI at the store that holds it."
    )


def _resolve_mlflow(
    ref: str, tracking_uri: str | None, cache_dir: str | Path | None, _depth: int = 0, *, allow_failed: bool = False
) -> ResolvedModel:
    from mlflow.tracking import MlflowClient

    uri = _setup(tracking_uri, ref)
    client = MlflowClient()
    if ref.startswith("runs:/"):
        rest = ref[len("runs:/") :].strip("/")
        run_id, _, sub = rest.partition("/")
        if not run_id:
            raise ModelError(f"Model reference {ref!r}: missing run id. Use runs:/RUN_ID or runs:/RUN_ID/model.")
        run = _mlflow_call(ref, client.get_run, run_id)
        check_run_state(ref, run, allow_failed)
        tag = run.data.tags.get("textclf.model_uri") or run.data.tags.get(
            "model_uri"
        )  # the latter: runs logged before the namespace
        if sub in ("", "model") and tag and tag != ref and _depth < 3:
            # The run's own logged model, or (a cached child) the run that trained it.
            inner = _resolve_mlflow(tag, tracking_uri, cache_dir, _depth + 1, allow_failed=allow_failed)
            inner.ref = ref
            return inner
        sub = sub or "model"
        base = f"runs:/{run_id}/{sub}"
        hint = (
            f"run {run_id} has no MLflow model at {sub!r}. A parent run of `textclf run` logs none: name a variant "
            f"({run_id}:VARIANT or {run_id}:best), or use the id of one of its child runs (one per variant and seed), "
            "or the model registered with --register."
        )
        path = _download(ref, base, identity=f"{uri}|{base}", cache_dir=cache_dir, hint=hint)
        return ResolvedModel(ref=ref, path=path, kind="run", run_id=run_id, model_uri=base)

    rest = ref[len("models:/") :].strip("/")
    if rest.startswith("m-") and "/" not in rest and "@" not in rest:
        logged = _mlflow_call(ref, client.get_logged_model, rest)
        _check_logged_model(ref, logged, allow_failed)
        base = logged.artifact_location
        path = _download(ref, base, identity=f"{uri}|{base}", cache_dir=cache_dir)
        return ResolvedModel(
            ref=ref, path=path, kind="logged", run_id=logged.source_run_id, model_uri=f"models:/{rest}"
        )
    alias = None
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        if not name or not alias:
            raise ModelError(f"Model reference {ref!r}: expected models:/NAME@ALIAS.")
        mv = _mlflow_call(ref, client.get_model_version_by_alias, name, alias)
    else:
        name, _, version = rest.rpartition("/")
        if not name or not version.isdigit():
            raise ModelError(
                f"Model reference {ref!r}: say which version, models:/NAME/VERSION (e.g. models:/{rest}/1) "
                f"or models:/NAME@ALIAS (e.g. models:/{rest}@champion)."
            )
        mv = _mlflow_call(ref, client.get_model_version, name, version)
    base = f"models:/{mv.name}/{mv.version}"
    # The version's source and run make the identity immutable even if a version number is reused.
    path = _download(
        ref, base, identity=f"{uri}|{base}|{mv.source}|{mv.run_id}|{mv.creation_timestamp}", cache_dir=cache_dir
    )
    return ResolvedModel(
        ref=ref,
        path=path,
        kind="registered",
        run_id=mv.run_id,
        model_uri=base,
        registered={"name": mv.name, "version": str(mv.version), "alias": alias},
        details={"source": mv.source},
    )


# --------------------------------------------------------------------------- run states


_ALLOW = "pass --allow-failed (allow_failed=True) to use it anyway"


def check_run_state(ref: str, run, allow_failed: bool) -> None:
    """Refuse a FAILED or deleted run's model unless ``allow_failed``; warn about a RUNNING or KILLED one."""
    rid, status = run.info.run_id, run.info.status
    if run.info.lifecycle_stage == "deleted" and not allow_failed:
        raise ModelError(
            f"Model reference {ref!r}: run {rid} is deleted (in the MLflow trash). Restore it in the UI (`textclf ui`), "
            f"use another run, or {_ALLOW}."
        )
    if status == "FAILED" and not allow_failed:
        raise ModelError(
            f"Model reference {ref!r}: run {rid} FAILED, so its model may be half-trained or not the one it meant to keep. "
            f"Use a FINISHED run (`textclf report` lists them), or {_ALLOW}."
        )
    if status == "RUNNING":
        log.warning(
            "model reference %s: run %s is still RUNNING (or its process died without ending it); its model may not be final",
            ref,
            rid,
        )
    elif status == "KILLED":
        log.warning("model reference %s: run %s was KILLED (interrupted); its model may not be the final one", ref, rid)


def _check_logged_model(ref: str, logged, allow_failed: bool) -> None:
    status = str(getattr(logged, "status", "") or "")
    if status == "FAILED" and not allow_failed:
        raise ModelError(
            f"Model reference {ref!r}: MLflow model {logged.model_id} FAILED while it was logged, so its files may be "
            f"incomplete. Use another model, or {_ALLOW}."
        )
    if status == "PENDING":
        log.warning(
            "model reference %s: MLflow model %s is still PENDING (being logged, or its process was killed)",
            ref,
            logged.model_id,
        )


# --------------------------------------------------------------------------- PARENT_RUN_ID:VARIANT, best


def _resolve_friendly(
    ref: str, tracking_uri: str | None, cache_dir: str | Path | None, allow_failed: bool
) -> ResolvedModel:
    """``PARENT:VARIANT``, ``PARENT:best``, ``PARENT:TASK/VARIANT`` or ``best``: the champion seed's model of that variant."""
    from mlflow.tracking import MlflowClient

    from textclf.tracking import champion

    uri = _setup(tracking_uri, ref)
    client = MlflowClient()
    if ref == "best":
        parent_id, rest = _latest_parent(client, uri), "best"
    else:
        m = _FRIENDLY.match(ref)
        parent_id, rest = m["parent"], m["rest"]
    parent = _mlflow_call(
        ref,
        client.get_run,
        parent_id,
        hint=f"no folder of that name, and no run {parent_id} in the store {uri}. "
        "Check the path, or the id (the parent run id `textclf run` prints) and --tracking-uri / MLFLOW_TRACKING_URI.",
    )
    if parent.data.tags.get("textclf.role") != "parent":
        raise ModelError(
            f"Model reference {ref!r}: run {parent_id} is not the parent run of a `textclf run`; "
            f"use runs:/{parent_id} for the model of a single run."
        )
    check_run_state(ref, parent, allow_failed)
    summary = _summary(client, ref, parent)
    task, variant = None, rest
    if "tasks" in summary:
        tasks = sorted(summary["tasks"])
        task, sep, variant = rest.partition("/")
        if not sep or task not in summary["tasks"]:
            raise ModelError(
                f"Model reference {ref!r}: run {parent_id} is a multi-task pipeline; say the task: "
                f"{parent_id}:TASK/VARIANT or {parent_id}:TASK/best, with TASK one of {tasks}."
            )
        summary = summary["tasks"][task]
    where = f"{parent_id}:{task}/" if task else f"{parent_id}:"
    names = list(summary.get("variants", {}))
    if variant == "best":
        variant = summary.get("best_variant")
        if variant is None:
            raise ModelError(
                f"Model reference {ref!r}: no variant of run {parent_id} has a validation score to be best by; name one: {names}."
            )
    elif variant not in summary.get("variants", {}):
        raise ModelError(
            f"Model reference {ref!r}: run {parent_id} has no variant {variant!r}; its variants are {names} "
            f"(use {where}VARIANT, or {where}best)."
        )
    run_ids = summary["variants"][variant].get("run_ids") or []
    if not run_ids:
        raise ModelError(f"Model reference {ref!r}: variant {variant!r} of run {parent_id} recorded no run.")
    metric = champion.selection_metric(summary)
    chosen = _mlflow_call(ref, champion.best_seed_run, client, run_ids, metric)
    log.info(
        "model reference %s: variant %s, run %s (best %s of %d seed(s))",
        ref,
        variant,
        chosen.info.run_id,
        metric,
        len(run_ids),
    )
    resolved = _resolve_mlflow(f"runs:/{chosen.info.run_id}", tracking_uri, cache_dir, allow_failed=allow_failed)
    resolved.ref = ref
    resolved.details.update(parent_run_id=parent_id, variant=variant, task=task, chosen_by=metric)
    return resolved


def _latest_parent(client, uri: str) -> str:
    from mlflow.entities import ViewType

    exps = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000)]
    found = (
        client.search_runs(
            exps,
            filter_string="tags.`textclf.role` = 'parent' and attributes.status = 'FINISHED'",
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        if exps
        else []
    )
    if not found:
        raise ModelError(
            f"Model reference 'best': no finished `textclf run` in the store {uri}. Run a pipeline first "
            "(`textclf run`), or point --tracking-uri / MLFLOW_TRACKING_URI at the store that holds one."
        )
    return found[0].info.run_id


def _summary(client, ref: str, parent) -> dict[str, Any]:
    """The parent run's comparison/summary.json (read as JSON only)."""
    import tempfile

    import mlflow

    rid = parent.info.run_id
    hint = (
        f"run {rid} ({parent.info.status}) has no comparison/summary.json: it did not finish its comparison. "
        f"Use a finished `textclf run`, or the runs:/CHILD_RUN_ID of one of its child runs."
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = _mlflow_call(
            ref,
            mlflow.artifacts.download_artifacts,
            run_id=rid,
            artifact_path="comparison/summary.json",
            dst_path=tmp,
            hint=hint,
        )
        try:
            summary = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"Model reference {ref!r}: run {rid}'s comparison/summary.json cannot be read ({exc})."
            ) from None
    if not isinstance(summary, dict):
        raise ModelError(f"Model reference {ref!r}: run {rid}'s comparison/summary.json is not a summary.")
    return summary


_VERIFIED = checksums.Verified()
_LEGACY = "has no checksums (downloaded by an older textclf)"


def _download(ref: str, base: str, *, identity: str, cache_dir: str | Path | None, hint: str | None = None) -> Path:
    """Download MLmodel + the model_dir artifact of the MLflow model at ``base`` into the cache.

    A cache that cannot be written gets the model in a temporary folder instead
    (:func:`_download_to_temp`), with a warning: predicting needs no cache.
    """
    from textclf.core.cache import default_cache_dir

    root = Path(cache_dir) if cache_dir else default_cache_dir()
    final = root / "models" / hashlib.sha256(identity.encode()).hexdigest()[:20]
    if (final / _DONE).is_file():
        problem = _damage(final)
        if problem is None:
            return final / "model"
        log.log(
            logging.INFO if problem == _LEGACY else logging.WARNING,
            "downloaded model %s (%s) %s; downloading it again",
            final,
            ref,
            problem,
        )
        _discard(final)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:
        from textclf.core.cache import UNWRITABLE

        if exc.errno not in UNWRITABLE:
            raise
        return _download_to_temp(ref, base, root, exc, hint)
    try:
        os.replace(_fetch(ref, base, tmp, hint), tmp / "model")
        shutil.rmtree(tmp / "dl", ignore_errors=True)
        files = checksums.record(tmp / "model")
        (tmp / _DONE).write_text(json.dumps({"ref": ref, "base": base, "identity": identity, "files": files}))
        if final.exists():  # a concurrent download finished first, or an incomplete earlier one
            if (final / _DONE).is_file() and _damage(final) is None:
                shutil.rmtree(tmp, ignore_errors=True)
                return final / "model"
            _discard(final)
        os.replace(tmp, final)
        _VERIFIED.add(final / _DONE)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final / "model"


def _download_to_temp(ref: str, base: str, root: Path, exc: OSError, hint: str | None) -> Path:
    """Download into a temporary folder removed at exit: using a model must not need a writable cache."""
    import atexit
    import tempfile

    log.warning(
        "the stage cache %s cannot be written (%s); model %s is downloaded to a temporary folder for this process "
        "only. Point --cache-dir / TEXTCLF_CACHE_DIR at a writable folder to keep it.",
        root,
        exc.strerror,
        ref,
    )
    tmp = Path(tempfile.mkdtemp(prefix="textclf-model-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return _fetch(ref, base, tmp, hint)


def _fetch(ref: str, base: str, tmp: Path, hint: str | None) -> Path:
    """Download MLmodel and the model_dir artifact it names under ``tmp``; the model folder's path."""
    import mlflow

    got = Path(
        _mlflow_call(
            ref,
            mlflow.artifacts.download_artifacts,
            artifact_uri=f"{base}/MLmodel",
            dst_path=str(tmp / "meta"),
            hint=hint,
        )
    )
    rel = _model_dir_path(got, ref)
    folder = Path(
        _mlflow_call(ref, mlflow.artifacts.download_artifacts, artifact_uri=f"{base}/{rel}", dst_path=str(tmp / "dl"))
    )
    if not folder.is_dir() or not folder.resolve().is_relative_to((tmp / "dl").resolve()):
        raise ModelError(f"Model reference {ref!r}: artifact {rel!r} did not download as a folder.")
    return folder


def _damage(folder: Path) -> str | None:
    """Why a finished download cannot be reused, or None (checked once per process)."""
    done = folder / _DONE
    if done in _VERIFIED:
        return None
    try:
        files = json.loads(done.read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return f"has an unreadable {_DONE}"
    if not isinstance(files, dict):
        return _LEGACY
    problem = checksums.mismatch(folder / "model", files)
    if problem is not None:
        return f"is damaged: model/{problem}"
    _VERIFIED.add(done)
    return None


def _discard(folder: Path) -> None:
    """Remove a folder another process may be reading: renamed aside first, so it never sees half of one."""
    aside = folder.parent / f".tmp-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        os.replace(folder, aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)

"""A model for a slot: resolved in the box's MLflow registry and copied.

`fetch` runs with the MLflow server's own Python (it has the MLflow client): it resolves
the URI against the server on 127.0.0.1:5000 (models:/name@alias, models:/name/3,
runs:/<id>/model, or anything else MLflow downloads), copies the model's files into an
immutable directory named by their content, and reads its requirements.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from typing import Any

from ..system import layout
from ..system.failure import AgentFailure

KIND_NO_MODEL = "no-model"
KIND_MLFLOW = "mlflow-unreachable"
KIND_NOT_SERVABLE = "not-servable"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def resolve(client: Any, uri: str) -> tuple[str, str, str, str | None]:
    """(name, version, source to download, run id) of a model URI."""
    if uri.startswith("models:/"):
        from mlflow.store.artifact.utils.models import get_model_name_and_version

        found = get_model_name_and_version(client, uri)
        if len(found) == 1:  # MLflow 3's models:/<model id>: a logged, unregistered model
            logged = client.get_logged_model(found[0])
            return logged.name, found[0], uri, getattr(logged, "source_run_id", None)
        name, version = found
        run_id = client.get_model_version(name, version).run_id
        return name, str(version), f"models:/{name}/{version}", run_id
    match = re.fullmatch(r"runs:/([0-9a-f]+)/(.+)", uri)
    if match:
        run_id, artifact = match.groups()
        versions = client.search_model_versions(f"run_id='{run_id}'")
        if len(versions) == 1:
            return versions[0].name, str(versions[0].version), uri, run_id
        return f"run-{run_id[:12]}", artifact.strip("/").replace("/", "-"), uri, run_id
    return os.path.basename(uri.rstrip("/")) or "model", "", uri, None


def fetch(uri: str) -> dict[str, Any]:
    """Resolve and copy `uri`; answer what the deploy needs to serve it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    mlflow.set_tracking_uri(layout.MLFLOW_URL)
    mlflow.set_registry_uri(layout.MLFLOW_URL)
    client = mlflow.MlflowClient()
    os.makedirs(layout.MODELS_DIR, mode=0o755, exist_ok=True)
    staging = tempfile.mkdtemp(dir=layout.MODELS_DIR, prefix=".fetch-")
    try:
        try:
            name, version, source, run_id = resolve(client, uri)
            local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=staging)
        except MlflowException as exc:
            raise AgentFailure(
                KIND_NO_MODEL, f"The box's MLflow cannot give {uri}: {_first_line(str(exc))}"
            ) from None
        except OSError as exc:
            raise AgentFailure(
                KIND_MLFLOW, f"The box's MLflow did not answer for {uri}: {exc}."
            ) from None
        model = _install(local, name, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "name": name,
        "version": version or model["digest"][:12],
        "uri": uri,
        "source": source,
        "run_id": run_id,
        **model,
    }


def _install(local: str, name: str, version: str) -> dict[str, Any]:
    """Move the downloaded model to its immutable, content-named home; read what it needs."""
    mlmodel = os.path.join(local, "MLmodel")
    if not os.path.isfile(mlmodel):
        raise AgentFailure(KIND_NOT_SERVABLE, "It has no MLmodel file: it is not an MLflow model.")
    with open(mlmodel, encoding="utf-8") as handle:
        text = handle.read()
    if "python_function:" not in text:
        raise AgentFailure(
            KIND_NOT_SERVABLE,
            "It has no python_function flavor, which MLflow's scoring server needs.",
        )
    digest = content_digest(local)
    label = _UNSAFE.sub("-", f"{name}-{version}")[:80].strip("-")
    home = f"{layout.MODELS_DIR}/{label}-{digest[:16]}"
    if not os.path.isdir(home):
        _read_only(local)
        os.chmod(local, 0o555)
        os.rename(local, home)
    return {
        "dir": home,
        "digest": digest,
        "requirements": requirements(home),
        "mlflow_version": _field(text, "mlflow_version"),
        "example": os.path.isfile(os.path.join(home, "serving_input_example.json")),
    }


def content_digest(directory: str) -> str:
    """sha256 over every file's relative path and bytes, in a fixed order."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, directory).encode() + b"\0")
            with open(path, "rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
    return digest.hexdigest()


def _read_only(directory: str) -> None:
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o555)
        for name in files:
            os.chmod(os.path.join(root, name), 0o444)


def requirements(model_dir: str) -> list[str]:
    """The model's requirements.txt as a list (MLflow writes it next to the model)."""
    try:
        with open(os.path.join(model_dir, "requirements.txt"), encoding="utf-8") as handle:
            lines = [line.split("#", 1)[0].strip() for line in handle]
    except FileNotFoundError:
        raise AgentFailure(
            KIND_NOT_SERVABLE, "It has no requirements.txt: log it with MLflow 2 or later."
        ) from None
    wanted = [line for line in lines if line]
    options = [line for line in wanted if line.startswith("-")]
    if options:
        raise AgentFailure(
            KIND_NOT_SERVABLE,
            f"Its requirements.txt has pip options ({', '.join(options)}), which the box's "
            "environments do not take: list packages only.",
        )
    return wanted


def _field(text: str, key: str) -> str:
    match = re.search(rf"^{key}: *(\S+)", text, re.MULTILINE)
    return match.group(1).strip("'\"") if match else ""


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["unknown error"])[0][:300]

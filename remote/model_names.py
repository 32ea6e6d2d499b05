"""Registered model names and the model URIs a deploy takes, checked here (pure).

MLflow's rules, checked before anything runs on the box: a name is not blank, has no
`/` or `:` (MLflow refuses them), no `@` (a `models:/NAME@ALIAS` URI could not name it),
no control character, is its own normal path (no `.`/`..` at the front) and fits
MLflow's 256-character column. A deploy's model is one of the four URIs MLflow resolves
to one model: `models:/NAME/VERSION`, `models:/NAME@ALIAS`, `models:/m-<id>` (a logged
model) or `runs:/<run id>/<path>`. Nothing else: a path or another scheme would make
the box (as root) copy whatever it names into its model cache.
"""

from __future__ import annotations

import posixpath
import re

from remote.errors import ConfigError

MAX_NAME_LENGTH = 256  # MLflow's registered_models.name column
URI_EXAMPLES = "models:/taxi-duration@champion, models:/taxi-duration/3 or runs:/<run id>/model"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# MLflow's alias rule: word characters and dashes; `latest` and `v<N>` are reserved.
_ALIAS = re.compile(r"[\w-]{1,255}")
_RESERVED_ALIAS = re.compile(r"latest|[vV]\d+", re.IGNORECASE)
_MODELS = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]*)|@(?P<alias>[^/@]*))?")
_LOGGED_MODEL = re.compile(r"m-[0-9a-f]{32}")
_RUNS = re.compile(r"runs:/[0-9a-f]{32}/[^\s]+")


def check_model_name(name: str, flag: str) -> str:
    """`name` as MLflow will take it as a registered model's name, or the one-line refusal."""
    problem = _name_problem(name)
    if problem:
        raise ConfigError(f"{flag} {_shown(name)} {problem}: give a name such as taxi-duration.")
    return name


def check_model_uri(uri: str) -> str:
    """One of the four model URIs (see the module's docstring), stripped; else the refusal."""
    uri = uri.strip()
    if not uri:
        raise ConfigError(f"--model is missing: give a model URI such as {URI_EXAMPLES}.")
    shown = _shown(uri)
    if _CONTROL.search(uri):
        raise ConfigError(
            f"--model {shown} has a control character: give one such as {URI_EXAMPLES}."
        )
    if uri.startswith("runs:/"):
        if not _RUNS.fullmatch(uri):
            raise ConfigError(
                f"--model {shown}: a run URI is runs:/<run id (32 hex digits)>/<artifact path>."
            )
        return uri
    found = _MODELS.fullmatch(uri)
    if not uri.startswith("models:/"):
        raise ConfigError(f"--model {shown} is not a model URI: give one such as {URI_EXAMPLES}.")
    if found is None:
        raise ConfigError(
            f"--model {shown}: a registry URI is models:/<name>/<version> or "
            "models:/<name>@<alias> (or a logged model's models:/m-<id>)."
        )
    name, version, alias = found["name"], found["version"], found["alias"]
    if version is None and alias is None:
        if _LOGGED_MODEL.fullmatch(name):
            return uri
        raise ConfigError(
            f"--model {shown} names no version: give models:/{name}/<version> or "
            f"models:/{name}@<alias> (models:/m-<id> is a logged model's id)."
        )
    problem = _name_problem(name)
    if problem:
        raise ConfigError(f"--model {shown}: the model's name {problem}.")
    if version is not None and not re.fullmatch(r"[1-9][0-9]{0,9}", version):
        raise ConfigError(
            f"--model {shown}: a version is a number such as 3 (for the newest, register "
            "it under an alias and give models:/<name>@<alias>)."
        )
    if alias is not None and (not _ALIAS.fullmatch(alias) or _RESERVED_ALIAS.fullmatch(alias)):
        raise ConfigError(
            f"--model {shown}: an alias is letters, digits, _ and - (not `latest` or "
            "v<number>), such as champion."
        )
    return uri


def _name_problem(name: str) -> str:
    if not name.strip():
        return "is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long (MLflow keeps at most {MAX_NAME_LENGTH})"
    if _CONTROL.search(name):
        return "has a control character"
    bad = sorted({c for c in name if c in "/:@"})
    if bad:
        return f"has {' and '.join(repr(c) for c in bad)}, which MLflow refuses in a name"
    if name != name.strip():
        return "starts or ends with a space"
    if posixpath.normpath(name) != name or name == "." or name.startswith(".."):
        return "is a relative path (. or ..), which MLflow refuses"
    return ""


def _shown(value: str) -> str:
    """The value quoted for a one-line message, cut short when long."""
    return repr(value if len(value) <= 80 else value[:77] + "...")

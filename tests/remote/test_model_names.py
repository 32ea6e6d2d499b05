"""Model names and model URIs, checked here before anything runs on the box."""

from __future__ import annotations

import pytest

from remote.errors import ConfigError
from remote.model_names import check_model_name, check_model_uri


@pytest.mark.parametrize(
    "uri",
    [
        "models:/taxi-duration@challenger",
        "models:/taxi-duration/3",
        "models:/taxi.duration v2/12",
        "models:/m-870f1b2151504d3caae4d469becc6d32",
        "runs:/7e924cecc4724defb25e92f47d5a8bb6/model",
        "runs:/7e924cecc4724defb25e92f47d5a8bb6/models/model",
    ],
)
def test_the_four_model_uris_are_taken(uri: str) -> None:
    assert check_model_uri(f" {uri} ") == uri


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "--model is missing"),
        ("taxi-duration", "is not a model URI"),
        ("/", "is not a model URI"),
        ("/opt/models/taxi", "is not a model URI"),
        ("file:///", "is not a model URI"),
        ("s3://bucket/path/model", "is not a model URI"),
        ("http://example.com/model", "is not a model URI"),
        ("models:/", "a registry URI is"),
        ("models:/x", "names no version: give models:/x/<version>"),
        ("models:/m-123", "names no version"),
        ("models:/x/latest", "a version is a number"),
        ("models:/x/0", "a version is a number"),
        ("models:/x/", "a version is a number"),
        ("models:/x@", "an alias is"),
        ("models:/x@latest", "an alias is"),
        ("models:/x@v3", "an alias is"),
        ("models:/x@a.b", "an alias is"),
        ("models:/a/b/c", "a registry URI is"),
        ("models:/a@b@c", "a registry URI is"),
        ("models:/a:b/1", "has ':', which MLflow refuses"),
        ("models:/..@champion", "relative path"),
        (f"models:/{'x' * 300}/1", "is 300 characters long"),
        ("runs:/xyz/model", "runs:/<run id (32 hex digits)>/<artifact path>"),
        ("runs:/7e924cecc4724defb25e92f47d5a8bb6", "runs:/<run id"),
        ("models:/taxi/1\nrm -rf", "has a control character"),
        ("models:/taxi\x00/1", "has a control character"),
    ],
)
def test_other_model_uris_are_refused_saying_what_to_give(uri: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_model_uri(uri)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("name", ["taxi-duration", "Taxi Duration 2", "a.b_c", "x" * 256])
def test_names_mlflow_takes_are_taken(name: str) -> None:
    assert check_model_name(name, "--register-as") == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("bad/name", "has '/', which MLflow refuses"),
        ("a:b@c", "has ':' and '@', which MLflow refuses"),
        ("x" * 600, "is 600 characters long (MLflow keeps at most 256)"),
        ("nul\x00", "has a control character"),
        ("two\nlines", "has a control character"),
        (" taxi", "starts or ends with a space"),
        ("..", "relative path"),
        (".", "relative path"),
    ],
)
def test_names_mlflow_refuses_are_refused_here(name: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_model_name(name, "--register-as")
    text = str(refused.value)
    assert text.startswith("--register-as ") and message in text and "\n" not in text
    assert len(text) < 200

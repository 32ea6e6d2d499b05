"""Model names' and URIs' edges: how a refused value is quoted (whole up to 80
characters, cut to 77 and `...` beyond), and that `X` is an ordinary letter. Pure."""

from __future__ import annotations

import pytest

from remote.errors import ConfigError
from remote.model_names import check_model_name, check_model_uri


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("a/b", "'a/b'"),
        ("/" + "x" * 79, repr("/" + "x" * 79)),  # 80 characters: whole
        ("/" + "x" * 80, repr("/" + "x" * 76 + "...")),  # 81: cut to 77 and ...
    ],
)
def test_a_refused_name_is_quoted_whole_up_to_80_characters(name: str, shown: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_model_name(name, "--register-as")
    assert str(refused.value) == (
        f"--register-as {shown} has '/', which MLflow refuses in a name: "
        "give a name such as taxi-duration."
    )


def test_a_refused_uri_is_quoted_in_its_message() -> None:
    with pytest.raises(ConfigError, match=r"^--model 'models:/taxi@latest': an alias is"):
        check_model_uri(" models:/taxi@latest ")


@pytest.mark.parametrize("name", ["XGBoost-taxi", "taxi-X"])
def test_a_name_with_an_x_is_taken(name: str) -> None:
    assert check_model_name(name, "--register-as") == name
    assert check_model_uri(f"models:/{name}/1") == f"models:/{name}/1"

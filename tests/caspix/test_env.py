"""The typed environment readers fail loudly and name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from caspix.env import ConfigError, Env


def test_it_reads_a_required_string() -> None:
    assert Env({"NAME": " value "}).str("NAME") == "value"


def test_it_names_a_missing_required_setting() -> None:
    with pytest.raises(ConfigError, match=r"^NAME is required"):
        Env({}).str("NAME")


def test_it_treats_blank_as_missing() -> None:
    with pytest.raises(ConfigError, match="NAME is required"):
        Env({"NAME": "   "}).str("NAME")


def test_it_refuses_a_value_outside_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"MODE='x' is not one of a, b"):
        Env({"MODE": "x"}).str("MODE", choices=("a", "b"))


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("on", True), ("No", False), ("0", False)])
def test_it_reads_booleans(raw: str, expected: bool) -> None:
    assert Env({"FLAG": raw}).bool("FLAG", not expected) is expected


def test_it_refuses_a_malformed_boolean() -> None:
    with pytest.raises(ConfigError, match="FLAG='maybe' is not a boolean"):
        Env({"FLAG": "maybe"}).bool("FLAG", False)


def test_it_reads_integers_within_bounds() -> None:
    env = Env({"N": "12"})
    assert env.int("N", 0, minimum=1, maximum=20) == 12
    with pytest.raises(ConfigError, match="below the minimum 13"):
        env.int("N", 0, minimum=13)
    with pytest.raises(ConfigError, match="above the maximum 11"):
        env.int("N", 0, maximum=11)
    with pytest.raises(ConfigError, match="N='twelve' is not a whole number"):
        Env({"N": "twelve"}).int("N", 0)


def test_it_reads_lists_and_networks() -> None:
    env = Env({"HOSTS": "a.example, b.example,,", "NETS": "10.0.0.0/8, 127.0.0.1"})
    assert env.list("HOSTS") == ["a.example", "b.example"]
    assert [str(n) for n in env.networks("NETS")] == ["10.0.0.0/8", "127.0.0.1/32"]
    with pytest.raises(ConfigError, match="NETS holds 'nope', which is not an IP address or CIDR range"):
        Env({"NETS": "nope"}).networks("NETS")


def test_it_reads_a_secret_from_the_environment_or_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n", encoding="utf-8")
    assert Env({"TOKEN": "direct"}).secret("TOKEN") == "direct"
    assert Env({"TOKEN_FILE": str(secret_file)}).secret("TOKEN") == "from-a-file"


def test_it_refuses_a_secret_given_twice(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TOKEN and TOKEN_FILE are both set"):
        Env({"TOKEN": "a", "TOKEN_FILE": str(tmp_path)}).secret("TOKEN")


def test_it_names_an_unreadable_or_empty_secret_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"TOKEN_FILE points to .*missing, which cannot be read"):
        Env({"TOKEN_FILE": str(tmp_path / "missing")}).secret("TOKEN")
    empty = tmp_path / "empty"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="which is empty"):
        Env({"TOKEN_FILE": str(empty)}).secret("TOKEN")


def test_it_never_puts_a_secret_value_in_its_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        Env({"KEY": "hunter2"}).secret("KEY", min_length=50)
    assert "hunter2" not in str(caught.value)
    assert "KEY is too short" in str(caught.value)


def test_it_requires_a_secret_without_default() -> None:
    with pytest.raises(ConfigError, match=r"KEY \(or KEY_FILE, a path to a file holding it\) is required"):
        Env({}).secret("KEY")
    assert Env({}).optional_secret("KEY") is None

"""The README stays true to the code: every flag and variable of `run` is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.cli import COMMANDS, EXIT_CONFIG, EXIT_DEADLINE, EXIT_NOT_READY, EXIT_OK, EXIT_REFUSED
from sidecar.settings import RunSettings, env_name, flag_name

README = (Path(__file__).parent.parent / "README.md").read_text()


@pytest.mark.parametrize("field", sorted(RunSettings.model_fields))
def test_every_run_setting_is_in_the_readme_table(field: str) -> None:
    assert f"`{flag_name(field)}" in README, flag_name(field)
    assert f"`{env_name(field)}`" in README, env_name(field)


def test_every_command_and_exit_code_is_documented() -> None:
    for command in COMMANDS:
        assert f"vend-sidecar {command}" in README or command == "run"
    for code in (EXIT_OK, EXIT_NOT_READY, EXIT_CONFIG, EXIT_REFUSED, EXIT_DEADLINE):
        assert f"| {code} |" in README

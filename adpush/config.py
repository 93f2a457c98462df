"""The adpush run configuration: embedded TOML defaults, overridden by a user's TOML file.

Each table belongs to one stage; unknown tables or keys are an error naming them, so a typo
never silently falls back to a default.
"""
from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from adpush_core.errors import UserError

DEFAULTS_RESOURCE = "defaults/adpush.toml"


def default_config() -> dict[str, Any]:
    text = resources.files("adpush").joinpath(DEFAULTS_RESOURCE).read_text()
    return tomllib.loads(text)


def _merge(base: dict, override: dict, where: str, path: str = "") -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        dotted = f"{path}{key}"
        if path == "world.":
            merged[key] = value  # validated by WorldConfig, which knows every world key
            continue
        if key not in base:
            raise UserError(f"{where}: unknown setting '{dotted}'; known in "
                            f"[{path.rstrip('.') or 'top level'}]: {', '.join(sorted(base))}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise UserError(f"{where}: '{dotted}' must be a table")
            merged[key] = _merge(base[key], value, where, f"{dotted}.")
        else:
            if type(value) is not type(base[key]) and not (
                    isinstance(base[key], float) and isinstance(value, int)):
                raise UserError(f"{where}: '{dotted}' must be {type(base[key]).__name__}, "
                                f"got {value!r}")
            merged[key] = value
    return merged


def load_config(path: str | Path | None = None, **overrides: Any) -> dict[str, Any]:
    """Defaults, then the user's file, then explicit overrides like ``seed=3`` (run table)."""
    config = default_config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file {path} does not exist")
        try:
            user = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise UserError(f"{path}: not valid TOML: {err}") from err
        config = _merge(config, user, str(path))
    for key, value in overrides.items():
        if value is not None:
            config["run"][key] = value
    from abtest.world.config import WorldConfig

    WorldConfig.from_dict(config["world"], where="[world]")  # validate early
    return config


def world_config(config: dict[str, Any]):
    from abtest.world.config import WorldConfig

    return WorldConfig.from_dict(config["world"], where="[world]")


def dumps(config: dict[str, Any]) -> str:
    """TOML text of a config (flat tables of scalars and lists)."""
    lines = []
    for table, values in config.items():
        lines.append(f"[{table}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)

"""Errors that the CLI turns into one line on stderr and exit status 2, without a traceback."""

from pathlib import Path


class SealError(Exception):
    """A problem with the user's input (config, files, model name), not a bug."""


class ConfigError(SealError):
    """The config names an unknown key, has a wrong type or an invalid value."""


class DataError(SealError):
    """A data file is missing or malformed; the message names the file, the item and the field."""


def not_found(what: str, path: Path) -> str:
    """The line for a file the input names that is not there; a folder in its place is named as one."""
    return f"{what} {path} is a folder, not a file" if path.is_dir() else f"{what} not found: {path}"

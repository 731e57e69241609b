"""The config contract: pydantic models, YAML loading and ``${VAR}`` interpolation."""

from sluicegate.config.load import Loaded, load_config, parse_config

__all__ = ["Loaded", "load_config", "parse_config"]

"""The flow language: parsing and validation of flow YAML."""

from .parser import parse_flow as parse_flow
from .parser import parse_flow_dict as parse_flow_dict

__all__ = ["parse_flow", "parse_flow_dict"]

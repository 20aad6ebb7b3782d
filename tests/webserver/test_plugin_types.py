"""The plugin registry's alias table stays honest, and a type no plugin answers to is refused
when the flow is deployed (422 naming the type), whatever prefix it is written with."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from common.plugins.registry import _LEGACY, _PREFIX_ALIASES, canonical_type, registry

YAML = {"Content-Type": "application/x-yaml"}


@pytest.mark.parametrize("alias", sorted(_LEGACY))
def test_every_alias_names_a_registered_plugin(alias: str) -> None:
    assert registry().get(alias) is not None, f"{alias} -> {_LEGACY[alias]}: no such plugin"


def test_every_plugin_answers_to_its_kestra_name() -> None:
    for type_name in registry().types():
        for kestra, lanner in _PREFIX_ALIASES.items():
            if type_name.startswith(lanner):
                kestra_name = kestra + type_name[len(lanner) :]
                assert canonical_type(kestra_name) == type_name


@pytest.mark.parametrize(
    "type_name",
    [
        "io.kestra.core.tasks.flows.Template",  # an alias removed: no plugin behind it
        "io.kestra.plugin.core.flow.NoSuchTask",
        "lanner.core.storage.Nothing",
    ],
)
def test_an_unknown_type_is_a_422_at_deploy(client: TestClient, type_name: str) -> None:
    source = f"""\
id: unknown
namespace: company.team
tasks:
  - id: t
    type: {type_name}
"""
    response = client.post("/api/v1/flows", content=source, headers=YAML)
    assert response.status_code == 422, response.text
    assert type_name in response.text
    assert client.get("/api/v1/flows/company.team/unknown").status_code == 404

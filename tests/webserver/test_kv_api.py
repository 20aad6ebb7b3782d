"""Every KV route, with Kestra's paths and response shapes, default tenant and tenant paths.

Expected outcomes are those of Kestra's ``webserver/src/test/java/io/kestra/webserver/controllers/
api/KVControllerTest.java`` (kestra-io/kestra@58c1ca2): ``list`` (``KVEntry`` with key,
creationDate, updateDate, expirationDate), ``get`` (``{"type", "value"}`` for each ``KVType``:
JSON, STRING, NUMBER, BOOLEAN, DATE, DATETIME, DURATION), ``getNotFound`` (404, "No value found
for key 'my-key' in namespace '...'"), ``getExpired`` (410), ``put`` (text body typed as Ion reads
it, ``ttl`` header), ``delete``, ``shouldReturnSuccessForDeleteBulkOperation...`` (``{"keys"}``
of the deleted keys only), ``illegalKey`` (422 on GET, PUT, DELETE). The shapes are those of
``KVController``'s ``TypedValue``, ``KVEntry`` and ``ApiDeleteBulkResponse``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from common.backends import Backends
from common.storage.kv import KEY_MESSAGE, KVStore

NS = "io.namespace"
KV = f"/api/v1/namespaces/{NS}/kv"


def _put(client: TestClient, key: str, body: str, **headers: str) -> None:
    response = client.put(f"{KV}/{key}", content=body, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "kv_type", "value"),
    [
        ('{"hello":"world"}', "JSON", {"hello": "world"}),
        ('["hello","world"]', "JSON", ["hello", "world"]),
        ('"hello"', "STRING", "hello"),
        ("hello", "STRING", "hello"),  # an Ion symbol
        ("1", "NUMBER", 1),
        ("1.0", "NUMBER", 1.0),
        ("true", "BOOLEAN", True),
        ("false", "BOOLEAN", False),
        ("2021-09-01", "DATE", "2021-09-01"),
        ("2021-09-01T01:02:03Z", "DATETIME", "2021-09-01T01:02:03Z"),
        ('"PT5S"', "DURATION", "PT5S"),
    ],
)
def test_put_then_get_gives_the_typed_value(
    client: TestClient, body: str, kv_type: str, value: object
) -> None:
    _put(client, "my-key", body)
    got = client.get(f"{KV}/my-key")
    assert got.status_code == 200
    assert got.json() == {"type": kv_type, "value": value}


def test_list_gives_entries_with_dates_and_ttl(client: TestClient) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    _put(client, "my-key", '"my-value"', ttl="PT5M")
    _put(client, "my-second-key", '"my-second-value"', ttl="PT10M")
    _put(client, "forever", "1")
    listed = client.get(KV)
    assert listed.status_code == 200
    entries = {e["key"]: e for e in listed.json()}
    assert sorted(entries) == ["forever", "my-key", "my-second-key"]
    assert set(entries["my-key"]) == {"key", "creationDate", "updateDate", "expirationDate"}
    after = datetime.now(UTC) + timedelta(seconds=1)
    for entry in entries.values():
        created = datetime.fromisoformat(entry["creationDate"].replace("Z", "+00:00"))
        assert before <= created <= after
    expires = datetime.fromisoformat(entries["my-key"]["expirationDate"].replace("Z", "+00:00"))
    assert before + timedelta(minutes=4) < expires < after + timedelta(minutes=6)
    assert entries["forever"]["expirationDate"] is None


def test_get_missing_is_404_with_kestras_message(client: TestClient) -> None:
    got = client.get(f"{KV}/my-key")
    assert got.status_code == 404
    assert got.json()["message"] == f"No value found for key 'my-key' in namespace '{NS}'"


def test_expired_value_is_410_then_gone(client: TestClient, backends: Backends) -> None:
    past = datetime.now(UTC) - timedelta(minutes=10)
    KVStore(backends.storage, "main", NS, now=lambda: past).put(
        "my-key", "value", ttl=timedelta(minutes=5)
    )
    got = client.get(f"{KV}/my-key")
    assert got.status_code == 410
    assert got.json()["message"] == "Resource has expired: The requested value has expired"
    assert client.get(KV).json() == []
    assert client.get(f"{KV}/my-key").status_code == 404


def test_delete_answers_whether_a_value_was_there(client: TestClient) -> None:
    _put(client, "my-key", '"content"')
    deleted = client.delete(f"{KV}/my-key")
    assert deleted.status_code == 200
    assert deleted.json() is True
    assert client.get(f"{KV}/my-key").status_code == 404
    assert client.delete(f"{KV}/my-key").json() is False


def test_bulk_delete_lists_the_deleted_keys_only(client: TestClient) -> None:
    _put(client, "my-key", '"content"')
    response = client.request("DELETE", KV, json={"keys": ["my-key", "absent"]})
    assert response.status_code == 200
    assert response.json() == {"keys": ["my-key"]}
    response = client.request("DELETE", KV, json={"keys": ["my-key"]})
    assert response.json() == {"keys": []}


def test_tenant_paths_keep_tenants_apart(client: TestClient) -> None:
    response = client.put(f"/api/v1/acme/namespaces/{NS}/kv/k", content='"acme value"')
    assert response.status_code == 200
    assert client.get(f"/api/v1/acme/namespaces/{NS}/kv/k").json()["value"] == "acme value"
    assert client.get(f"{KV}/k").status_code == 404  # the default tenant is "main"
    _put(client, "k", '"main value"')
    assert client.get(f"/api/v1/main/namespaces/{NS}/kv/k").json()["value"] == "main value"
    assert [e["key"] for e in client.get(f"/api/v1/acme/namespaces/{NS}/kv").json()] == ["k"]


@pytest.mark.parametrize(
    ("method", "body"), [("GET", None), ("PUT", '"content"'), ("DELETE", None)]
)
def test_illegal_key_is_422_naming_the_key(
    client: TestClient, method: str, body: str | None
) -> None:
    response = client.request(method, f"{KV}/bad$key", content=body)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"path": "key", "message": KEY_MESSAGE, "line": None}]


def test_bad_bodies_ttls_namespaces_and_bulk_keys_are_422(client: TestClient) -> None:
    bad_body = client.put(f"{KV}/k", content="{not json")
    assert bad_body.status_code == 422
    assert bad_body.json()["errors"][0]["path"] == "body"
    bad_ttl = client.put(f"{KV}/k", content="1", headers={"ttl": "five minutes"})
    assert bad_ttl.status_code == 422
    assert bad_ttl.json()["errors"][0]["path"] == "ttl"
    bad_ns = client.get("/api/v1/namespaces/..%2F..%2Fetc/kv")
    assert bad_ns.status_code in (404, 422)
    bad_ns = client.get("/api/v1/namespaces/Bad..NS/kv/k")
    assert bad_ns.status_code == 422
    assert bad_ns.json()["errors"][0]["path"] == "namespace"
    bulk = client.request("DELETE", KV, json={"keys": ["ok", "bad$key"]})
    assert bulk.status_code == 422
    assert bulk.json()["errors"][0]["path"] == "keys[1]"


def test_routes_are_in_the_openapi_document(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()["paths"]
    assert set(spec["/api/v1/namespaces/{namespace}/kv"]) == {"get", "delete"}
    assert set(spec["/api/v1/namespaces/{namespace}/kv/{key}"]) == {"get", "put", "delete"}

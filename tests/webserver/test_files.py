"""An execution's files through the API: download with its type and name, metadata, and every
way to reach a file that is not the execution's refused."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from common.backends import Backends

URL = "/api/v1/executions/company.team/hello"


@pytest.fixture
def uploaded(client: TestClient, hello: dict[str, Any]) -> tuple[str, str]:
    response = client.post(URL, files={"data": ("rows.csv", b"a,b\n1,2\n", "text/csv")})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["id"], body["inputs"]["data"]


def test_download_streams_the_file_with_its_type_name_and_length(
    client: TestClient, uploaded: tuple[str, str]
) -> None:
    execution_id, uri = uploaded
    download = client.get(f"/api/v1/executions/{execution_id}/file", params={"path": uri})
    assert download.status_code == 200
    assert download.content == b"a,b\n1,2\n"
    assert download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-length"] == "8"
    assert download.headers["content-disposition"] == 'attachment; filename="rows.csv"'


def test_metas_give_size_type_and_date(client: TestClient, uploaded: tuple[str, str]) -> None:
    execution_id, uri = uploaded
    metas = client.get(f"/api/v1/executions/{execution_id}/file/metas", params={"path": uri})
    assert metas.status_code == 200
    body = metas.json()
    assert body["size"] == 8 and body["contentType"] == "text/csv"
    assert body["lastModified"].startswith("20")
    missing = client.get(
        f"/api/v1/executions/{execution_id}/file/metas", params={"path": uri + ".gone"}
    )
    assert missing.status_code == 404 and uri + ".gone" in missing.json()["message"]


def test_files_outside_the_execution_are_refused_in_every_form(
    client: TestClient, backends: Backends, hello: dict[str, Any], uploaded: tuple[str, str]
) -> None:
    execution_id, uri = uploaded
    other = client.post(URL, files={"data": ("other.csv", b"secret", "text/csv")}).json()
    folder = uri.rsplit("/inputs/", 1)[0]
    refused = [
        other["inputs"]["data"],  # another execution's file
        f"{folder}/../{other['id']}/inputs/data/other.csv",
        f"{folder}/%2e%2e/{other['id']}/inputs/data/other.csv",
        f"{folder}/..%2f{other['id']}/inputs/data/other.csv",
        f"{folder}/inputs\\..\\..\\{other['id']}",
        "lanner:///company/team/other/executions/x/f",  # another flow
        "file:///etc/passwd",
        "/etc/passwd",
        "kestra-other:///x",
    ]
    for path in refused:
        for endpoint in ("file", "file/metas"):
            response = client.get(
                f"/api/v1/executions/{execution_id}/{endpoint}", params={"path": path}
            )
            assert response.status_code == 422, (path, endpoint, response.text)
            assert path in response.json()["message"] or response.json()["errors"][0]["path"]
    # an execution of another tenant does not exist for this one
    response = client.get(
        f"/api/v1/other-tenant/executions/{execution_id}/file", params={"path": uri}
    )
    assert response.status_code == 404


def test_deleting_an_execution_deletes_its_files_unless_asked_not_to(
    client: TestClient, backends: Backends, hello: dict[str, Any], uploaded: tuple[str, str]
) -> None:
    execution_id, uri = uploaded
    kept = client.post(URL, files={"data": ("kept.csv", b"k", "text/csv")}).json()
    response = client.delete(f"/api/v1/executions/{kept['id']}", params={"deleteStorage": False})
    assert response.status_code == 204
    assert backends.storage.exists(kept["inputs"]["data"])
    assert client.delete(f"/api/v1/executions/{execution_id}").status_code == 204
    assert not backends.storage.exists(uri)
    assert backends.storage.exists(kept["inputs"]["data"])


def test_files_of_the_tenant_less_layout_stay_readable_and_are_deleted_too(
    client: TestClient, backends: Backends, hello: dict[str, Any], uploaded: tuple[str, str]
) -> None:
    """Files written before the tenant was part of the path
    (``lanner:///company/team/hello/executions/<id>/...``): the file API serves them, deleting
    the execution deletes them."""
    execution_id, uri = uploaded
    assert uri.startswith(f"lanner:///main/company/team/hello/executions/{execution_id}/")
    legacy = f"lanner:///company/team/hello/executions/{execution_id}/tasks/t/r/old.txt"
    backends.storage.put(legacy, b"old")
    download = client.get(f"/api/v1/executions/{execution_id}/file", params={"path": legacy})
    assert download.status_code == 200 and download.content == b"old"
    assert client.delete(f"/api/v1/executions/{execution_id}").status_code == 204
    assert not backends.storage.exists(legacy) and not backends.storage.exists(uri)


def _multipart(name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "lanner-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"'
            f"\r\nContent-Type: text/plain\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_an_upload_over_the_limit_is_a_413_naming_the_limit(
    client: TestClient, backends: Backends, hello: dict[str, Any]
) -> None:
    client.app.state.settings.max_upload_bytes = 1000  # type: ignore[attr-defined]
    big = b"x" * 5000
    response = client.post(URL, files={"data": ("big.txt", big, "text/plain")})
    assert response.status_code == 413
    assert "over the limit of 1000 bytes" in response.json()["message"]
    # a chunked body has no length to check first: the file's size is checked once parsed
    body, content_type = _multipart("data", "big.txt", big)
    response = client.post(URL, content=iter([body]), headers={"content-type": content_type})
    assert response.status_code == 413
    assert "file input 'data'" in response.json()["message"]
    small, content_type = _multipart("data", "small.txt", b"ok")
    response = client.post(URL, content=small, headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    assert backends.storage.get(response.json()["inputs"]["data"]) == b"ok"

"""Every namespace-files route, with Kestra's paths and response shapes.

Expected outcomes are those of Kestra's ``webserver/src/test/java/io/kestra/webserver/controllers/
api/NamespaceFileControllerTest.java`` (kestra-io/kestra@58c1ca2): ``search`` (paths with a
leading slash containing ``q``), ``file`` (the content), ``stats`` (``FileAttributes``: fileName,
type File/Directory...; the root is ``_files``, a Directory, even before anything was created),
``list`` / ``listWithoutPreCreation`` (the direct children; an empty list), ``createDirectory``,
``createFile`` (multipart part ``fileContent``), ``createFile_ExtractZip`` (a ``.zip`` is
extracted), ``move`` (a folder), ``delete`` (a file; its folder goes when it held only that file;
a folder), ``forbiddenPaths`` (``/_flows``: 422 "Forbidden path"). Paths that leave the
namespace (``..``) are refused with a 422 naming the parameter, on every route.
"""

from __future__ import annotations

import io
import zipfile

import pytest
from fastapi.testclient import TestClient

NS = "io.namespace"
FILES = f"/api/v1/namespaces/{NS}/files"


def _upload(client: TestClient, path: str, content: bytes, name: str = "f.txt") -> None:
    response = client.post(
        FILES, params={"path": path}, files={"fileContent": (name, content, "text/plain")}
    )
    assert response.status_code == 200, response.text


def test_upload_get_and_stats(client: TestClient) -> None:
    _upload(client, "/test.txt", b"Hello World")
    got = client.get(FILES, params={"path": "/test.txt"})
    assert got.status_code == 200
    assert got.content == b"Hello World"
    assert got.headers["content-type"] == "application/octet-stream"
    stats = client.get(f"{FILES}/stats", params={"path": "/test.txt"})
    assert stats.status_code == 200
    body = stats.json()
    assert set(body) == {"fileName", "lastModifiedTime", "creationTime", "type", "size", "metadata"}
    assert (body["fileName"], body["type"], body["size"]) == ("test.txt", "File", 11)
    assert client.get(FILES, params={"path": "/absent.txt"}).status_code == 404


def test_root_stats_and_listing_before_anything_exists(client: TestClient) -> None:
    stats = client.get(f"{FILES}/stats").json()
    assert (stats["fileName"], stats["type"]) == ("_files", "Directory")
    assert client.get(f"{FILES}/directory").json() == []


def test_search_by_part_of_the_path(client: TestClient) -> None:
    for path in (
        "/file.txt",
        "/another_file.json",
        "/folder/file.txt",
        "/folder/some.yaml",
        "/folder/sub/script.py",
    ):
        _upload(client, path, b"x")

    def search(q: str) -> set[str]:
        response = client.get(f"{FILES}/search", params={"q": q})
        assert response.status_code == 200
        return set(response.json())

    assert search("file") == {"/file.txt", "/another_file.json", "/folder/file.txt"}
    assert search("file.txt") == {"/file.txt", "/folder/file.txt"}
    assert search("folder") == {"/folder/file.txt", "/folder/some.yaml", "/folder/sub/script.py"}
    assert search(".py") == {"/folder/sub/script.py"}


def test_directories_list_create_move(client: TestClient) -> None:
    _upload(client, "/test/test.txt", b"1")
    _upload(client, "/test/test2.txt", b"2")
    root = client.get(f"{FILES}/directory").json()
    assert [(e["fileName"], e["type"]) for e in root] == [("test", "Directory")]
    inside = client.get(f"{FILES}/directory", params={"path": "/test"}).json()
    assert [e["fileName"] for e in inside] == ["test.txt", "test2.txt"]

    assert client.post(f"{FILES}/directory", params={"path": "/empty"}).status_code == 200
    stats = client.get(f"{FILES}/stats", params={"path": "/empty"}).json()
    assert (stats["fileName"], stats["type"]) == ("empty", "Directory")
    assert client.get(f"{FILES}/directory", params={"path": "/empty"}).json() == []

    moved = client.put(FILES, params={"from": "/test", "to": "/foo"})
    assert moved.status_code == 200
    stats = client.get(f"{FILES}/stats", params={"path": "/foo"}).json()
    assert (stats["fileName"], stats["type"]) == ("foo", "Directory")
    assert client.get(FILES, params={"path": "/foo/test2.txt"}).content == b"2"
    assert client.get(f"{FILES}/stats", params={"path": "/test"}).status_code == 404


def test_delete_file_then_folder(client: TestClient) -> None:
    _upload(client, "/folder/file.txt", b"x")
    _upload(client, "/multi/file1.txt", b"1")
    _upload(client, "/multi/file2.txt", b"2")
    assert client.delete(FILES, params={"path": "/folder/file.txt"}).status_code == 200
    assert client.get(f"{FILES}/stats", params={"path": "/folder"}).status_code == 404
    client.delete(FILES, params={"path": "/multi/file1.txt"})
    assert [e["fileName"] for e in client.get(f"{FILES}/directory").json()] == ["multi"]
    client.delete(FILES, params={"path": "multi"})  # Kestra adds the leading slash
    assert client.get(f"{FILES}/directory").json() == []
    assert client.get(f"{FILES}/stats").json()["type"] == "Directory"  # the root stays


def test_zip_upload_is_extracted_and_export_zips_back(client: TestClient) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("folder/a.txt", "A")
        archive.writestr("b.py", "print(1)")
    _upload(client, "/files.zip", buffer.getvalue(), name="files.zip")
    assert client.get(FILES, params={"path": "/folder/a.txt"}).content == b"A"
    assert client.get(f"{FILES}/stats", params={"path": "/files.zip"}).status_code == 404
    exported = client.get(f"{FILES}/export")
    assert exported.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(exported.content)).namelist()
    assert sorted(names) == ["b.py", "folder/a.txt"]


def test_tenants_are_apart(client: TestClient) -> None:
    _upload(client, "/t.txt", b"main")
    other = f"/api/v1/acme/namespaces/{NS}/files"
    assert client.get(other, params={"path": "/t.txt"}).status_code == 404
    assert client.get(FILES.replace("/v1/", "/v1/main/"), params={"path": "/t.txt"}).content == (
        b"main"
    )


@pytest.mark.parametrize(
    ("method", "route", "params"),
    [
        ("GET", "", {"path": "/_flows/test.yml"}),
        ("GET", "/stats", {"path": "/_flows/test.yml"}),
        ("GET", "/directory", {"path": "/_flows"}),
        ("PUT", "", {"from": "/_flows/test", "to": "/foo"}),
        ("PUT", "", {"from": "/foo", "to": "/_flows/test"}),
        ("DELETE", "", {"path": "/_flows/test.txt"}),
    ],
)
def test_forbidden_flows_folder_is_422(
    client: TestClient, method: str, route: str, params: dict[str, str]
) -> None:
    response = client.request(method, FILES + route, params=params)
    assert response.status_code == 422
    assert "Forbidden path: /_flows" in response.json()["message"]


@pytest.mark.parametrize(
    ("method", "route", "params", "field"),
    [
        ("GET", "", {"path": "/../../_kv/secret.json"}, "path"),
        ("GET", "", {"path": "..%2F..%2Fx"}, "path"),
        ("GET", "/stats", {"path": "a/../../b"}, "path"),
        ("GET", "/directory", {"path": "/.."}, "path"),
        ("POST", "/directory", {"path": "/a/../.."}, "path"),
        ("PUT", "", {"from": "/../x", "to": "/y"}, "from"),
        ("PUT", "", {"from": "/x", "to": "/../../y"}, "to"),
        ("DELETE", "", {"path": "/.."}, "path"),
        ("GET", "", {"path": "/a\\..\\b"}, "path"),
    ],
)
def test_path_traversal_is_422_naming_the_parameter(
    client: TestClient, method: str, route: str, params: dict[str, str], field: str
) -> None:
    response = client.request(method, FILES + route, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["path"] == field


def test_traversal_in_upload_and_zip_entries_is_422(client: TestClient) -> None:
    response = client.post(
        FILES, params={"path": "/../../x.txt"}, files={"fileContent": ("x.txt", b"x")}
    )
    assert response.status_code == 422
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ok.txt", "fine")
        archive.writestr("../../evil.txt", "evil")
    response = client.post(
        FILES, params={"path": "/x.zip"}, files={"fileContent": ("x.zip", buffer.getvalue())}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "fileContent"
    assert client.get(f"{FILES}/directory").json() == []  # nothing of the archive was kept


def test_routes_are_in_the_openapi_document(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()["paths"]
    base = "/api/v1/namespaces/{namespace}/files"
    assert set(spec[base]) == {"get", "post", "put", "delete"}
    for suffix, methods in (
        ("/search", {"get"}),
        ("/stats", {"get"}),
        ("/directory", {"get", "post"}),
        ("/export", {"get"}),
    ):
        assert set(spec[base + suffix]) == methods

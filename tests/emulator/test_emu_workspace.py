"""The emulator's Workspace API over HTTP: the tree, import/export formats, and Databricks' errors."""
import base64
import io
import json
import zipfile

import pytest

W = "/api/2.0/workspace"
NB = "# Databricks notebook source\nprint('hi')\n\n# COMMAND ----------\n\n# MAGIC %md\n# MAGIC # Title\n"


def b64(text) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def unb64(text) -> bytes:
    return base64.b64decode(text)


def imp(api, path, content, **kw):
    return api.post(W + "/import", dict({"path": path, "content": b64(content)}, **kw))


def error(r, status, code):
    assert r.status_code == status, r.text
    assert r.json()["error_code"] == code, r.text
    return r.json()["message"]


def test_the_tree_starts_with_shared_users_and_a_home_per_principal(emu, api):
    root = api.get(W + "/list", path="/").json()["objects"]
    assert [(o["path"], o["object_type"]) for o in root] == [("/Shared", "DIRECTORY"), ("/Users", "DIRECTORY")]
    homes = {o["path"] for o in api.get(W + "/list", path="/Users").json()["objects"]}
    assert {"/Users/emulator-user@example.com", f"/Users/{emu.client_id}"} <= homes
    # an empty folder lists as {} (no objects key)
    assert api.get(W + "/list", path="/Shared").json() == {}
    status = api.get(W + "/get-status", path="/Shared").json()
    assert status["object_type"] == "DIRECTORY" and status["path"] == "/Shared"
    assert isinstance(status["object_id"], int) and status["resource_id"] == str(status["object_id"])
    assert api.get(W + "/get-status", path="/").json()["object_id"] == 0


def test_notebook_import_status_and_every_export_format(api):
    assert imp(api, "/Shared/nb", "print('hi')", format="SOURCE", language="PYTHON").json() == {}
    info = api.get(W + "/get-status", path="/Shared/nb").json()
    assert info["object_type"] == "NOTEBOOK" and info["language"] == "PYTHON"
    assert {"created_at", "modified_at", "object_id", "resource_id"} <= set(info) and "size" not in info
    src = api.get(W + "/export", path="/Shared/nb").json()
    assert src["file_type"] == "py"
    assert unb64(src["content"]).decode() == "# Databricks notebook source\nprint('hi')"
    page = api.get(W + "/export", path="/Shared/nb", format="HTML").json()
    assert page["file_type"] == "html" and "print(&#x27;hi&#x27;)" in unb64(page["content"]).decode()
    nb = json.loads(unb64(api.get(W + "/export", path="/Shared/nb", format="JUPYTER").json()["content"]))
    assert nb["nbformat"] == 4 and nb["cells"][0]["source"] == ["print('hi')"]
    raw = api.get(W + "/export", path="/Shared/nb", format="SOURCE", direct_download="true")
    assert raw.headers["Content-Type"] == "application/octet-stream" and raw.content.startswith(b"# Databricks")
    # HTML and JUPYTER round trips give the notebook back
    assert imp(api, "/Shared/nb2", unb64(page["content"]), format="HTML").status_code == 200
    assert imp(api, "/Shared/nb3.ipynb", json.dumps(nb), format="JUPYTER").status_code == 200
    for p in ("/Shared/nb2", "/Shared/nb3"):
        back = unb64(api.get(W + "/export", path=p).json()["content"]).decode()
        assert "print('hi')" in back, p
    assert error(api.get(W + "/export", path="/Shared/nb", format="DBC"), 400, "INVALID_PARAMETER_VALUE")


def test_auto_and_raw_imports_make_notebooks_or_files(api):
    imp(api, "/Shared/auto_nb.py", NB, format="AUTO")
    imp(api, "/Shared/script.py", "print('a file')", format="AUTO")
    imp(api, "/Shared/data.bin", b"\x00\x01\xff", format="RAW")
    imp(api, "/Shared/query.sql", "-- Databricks notebook source\nSELECT 1", format="AUTO")
    objs = {o["path"]: o for o in api.get(W + "/list", path="/Shared").json()["objects"]}
    assert objs["/Shared/auto_nb"]["object_type"] == "NOTEBOOK"         # the extension is dropped
    assert objs["/Shared/query"]["language"] == "SQL"
    assert objs["/Shared/script.py"]["object_type"] == "FILE" and objs["/Shared/script.py"]["size"] == 15
    assert "language" not in objs["/Shared/script.py"]
    assert [o for o in objs] == sorted(objs)                            # in name order
    data = api.get(W + "/export", path="/Shared/data.bin", format="AUTO").json()
    assert unb64(data["content"]) == b"\x00\x01\xff" and data["file_type"] == "bin"
    assert error(api.get(W + "/export", path="/Shared/script.py", format="HTML"), 400, "INVALID_PARAMETER_VALUE")
    # list of a non-folder is the object itself
    assert api.get(W + "/list", path="/Shared/script.py").json()["objects"][0]["path"] == "/Shared/script.py"


def test_errors_are_the_workspace_apis(api):
    assert error(api.get(W + "/get-status", path="/Shared/none"), 404,
                 "RESOURCE_DOES_NOT_EXIST") == "Path (/Shared/none) doesn't exist."
    assert error(api.get(W + "/list", path="relative"), 400, "INVALID_PARAMETER_VALUE") == \
        "Path (relative) doesn't start with '/'"
    imp(api, "/Shared/a", "x = 1", language="PYTHON")
    assert error(imp(api, "/Shared/a", "x = 2", language="PYTHON"), 400,
                 "RESOURCE_ALREADY_EXISTS") == "Path (/Shared/a) already exists."
    assert imp(api, "/Shared/a", "x = 2", language="PYTHON", overwrite=True).status_code == 200
    assert b"x = 2" in api.get(W + "/export", path="/Shared/a", direct_download="true").content
    assert error(imp(api, "/Shared/no/such/b", "x", language="PYTHON"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert error(imp(api, "/Shared/c", "x"), 400, "INVALID_PARAMETER_VALUE")             # SOURCE needs a language
    assert error(api.post(W + "/import", {"path": "/Shared/d", "content": "!!", "language": "PYTHON"}), 400,
                 "INVALID_PARAMETER_VALUE")
    assert error(imp(api, "/Shared/e", "x", format="DBC"), 400, "INVALID_PARAMETER_VALUE")
    big = "x" * (10 * 1024 * 1024 + 1)
    assert error(imp(api, "/Shared/big", big, format="RAW"), 400, "MAX_NOTEBOOK_SIZE_EXCEEDED")
    # mkdirs: parents too, idempotent, refused under a file
    assert api.post(W + "/mkdirs", {"path": "/Shared/x/y/z"}).status_code == 200
    assert api.post(W + "/mkdirs", {"path": "/Shared/x/y"}).status_code == 200
    assert api.get(W + "/get-status", path="/Shared/x/y/z").json()["object_type"] == "DIRECTORY"
    assert error(api.post(W + "/mkdirs", {"path": "/Shared/a/sub"}), 400, "RESOURCE_ALREADY_EXISTS")
    # delete: a non-empty folder needs recursive
    assert error(api.post(W + "/delete", {"path": "/Shared/x"}), 400,
                 "DIRECTORY_NOT_EMPTY") == "Folder (/Shared/x) is not empty."
    assert api.post(W + "/delete", {"path": "/Shared/x", "recursive": True}).status_code == 200
    assert error(api.get(W + "/get-status", path="/Shared/x/y"), 404, "RESOURCE_DOES_NOT_EXIST")
    assert error(api.post(W + "/delete", {"path": "/Shared/x"}), 404, "RESOURCE_DOES_NOT_EXIST")
    assert error(api.post(W + "/delete", {"path": "/Shared"}), 403, "PERMISSION_DENIED")
    # the /Workspace prefix names the same objects
    assert api.get(W + "/get-status", path="/Workspace/Shared/a").json()["path"] == "/Shared/a"


def test_folders_export_and_import_as_zip_archives(api):
    api.post(W + "/mkdirs", {"path": "/Shared/proj/lib"})
    imp(api, "/Shared/proj/main", "print('main')", language="PYTHON")
    imp(api, "/Shared/proj/lib/q", "SELECT 1", language="SQL")
    imp(api, "/Shared/proj/readme.txt", "hello", format="RAW")
    src = api.get(W + "/export", path="/Shared/proj", format="SOURCE").json()
    assert src["file_type"] == "zip"
    names = sorted(zipfile.ZipFile(io.BytesIO(unb64(src["content"]))).namelist())
    assert names == ["lib/q.sql", "main.py"]                            # SOURCE: notebooks only
    auto = api.get(W + "/export", path="/Shared/proj", format="AUTO").json()
    names = sorted(zipfile.ZipFile(io.BytesIO(unb64(auto["content"]))).namelist())
    assert names == ["lib/q.sql", "main.py", "readme.txt"]
    assert imp(api, "/Shared/copy", unb64(auto["content"]), format="SOURCE").status_code == 200
    copy = {o["path"]: o["object_type"] for o in api.get(W + "/list", path="/Shared/copy").json()["objects"]}
    assert copy == {"/Shared/copy/lib": "DIRECTORY", "/Shared/copy/main": "NOTEBOOK",
                    "/Shared/copy/readme.txt": "FILE"}


def test_multipart_import_and_modified_after(emu, api):
    r = api.s.post(emu.url + W + "/import", files={"content": ("x.py", b"print(1)")},
                   data={"path": "/Shared/mp", "format": "SOURCE", "language": "PYTHON"}, timeout=10)
    assert r.status_code == 200, r.text
    info = api.get(W + "/get-status", path="/Shared/mp").json()
    assert info["object_type"] == "NOTEBOOK"
    later = api.get(W + "/list", path="/Shared", notebooks_modified_after=info["modified_at"]).json()
    assert later == {}
    earlier = api.get(W + "/list", path="/Shared", notebooks_modified_after=info["modified_at"] - 1).json()
    assert [o["path"] for o in earlier["objects"]] == ["/Shared/mp"]


@pytest.mark.parametrize("body", [{"path": "/Shared/q", "content": b64("x"), "format": "NOPE"},
                                  {"path": "/Shared/q", "content": b64("x"), "language": "COBOL"}])
def test_bad_format_or_language(api, body):
    error(api.post(W + "/import", body), 400, "INVALID_PARAMETER_VALUE")

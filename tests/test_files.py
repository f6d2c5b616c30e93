"""Volume files over real HTTP against the emulator: streamed uploads and downloads through the
runtime's transfer mechanism (a retried upload re-sends the whole file; a broken download resumes
with Range; a failed one leaves neither the target nor a part file), inline content, overwrite,
recursive deletion, and bad inputs refused before any request."""
import base64
import os

import pytest

from databricks_connector.errors import ConnectorError, InputError
from tests.scenarios._uc import new_volume, put_file
from tests.tamper import TamperProxy


@pytest.fixture(scope="module")
def volume(emulator):
    cat, sch, vol = new_volume(emulator)
    return f"/Volumes/{cat}/{sch}/{vol}"


@pytest.fixture
def proxy(emulator):
    with TamperProxy(emulator.url, ca_bundle=emulator.connections()["personal_access_token"].get("ca_bundle")) as p:
        yield p


def _blob(n: int) -> bytes:
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def _leftovers(folder) -> list:
    return [f for f in os.listdir(folder) if f.endswith(".part")]


def test_upload_and_download_a_file_round_trip(emulator, connector, conn, volume, tmp_path):
    data = _blob(3 * 1024 * 1024 + 17)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    path = f"{volume}/round trip/{conn['type']}/data #1.bin"        # spaces and '#' escaped per segment
    up = connector.run("upload_file", conn, {"file_path": path, "local_path": str(src)}, progress=False)
    assert up == {"path": path, "size": len(data), "overwrite": True}
    meta = connector.run("get_file_metadata", conn, {"file_path": path})
    assert meta["size"] == len(data) and meta["last_modified"]
    out = tmp_path / "out.bin"
    down = connector.run("download_file", conn, {"file_path": path, "output_path": str(out)}, progress=False)
    assert out.read_bytes() == data and down["size"] == len(data) and down["resumed"] == 0
    assert down["output_path"] == str(out) and _leftovers(tmp_path) == []
    listing = connector.run("list_directory", conn, {"directory_path": path.rsplit("/", 1)[0]})
    assert [(e["name"], e["file_size"]) for e in listing["contents"]] == [("data #1.bin", len(data))]


def test_a_refused_upload_is_sent_again_from_the_first_byte(emulator, connector, pat, volume, tmp_path):
    data = _blob(2 * 1024 * 1024)
    src = tmp_path / "retry.bin"
    src.write_bytes(data)
    path = f"{volume}/retry/r.bin"
    emulator.faults.add(r"/api/2\.0/fs/files/.*", kind="503", times=1, method="PUT")
    since = len(emulator.requests)
    connector.run("upload_file", pat, {"file_path": path, "local_path": str(src)}, progress=False)
    puts = [r for r in emulator.requests[since:] if r["method"] == "PUT"]
    assert len(puts) == 2, "the refused upload was re-sent once"
    got = connector.run("download_file", pat, {"file_path": path, "content_format": "base64"})
    assert base64.b64decode(got["content_base64"]) == data


def test_a_broken_download_resumes_with_range(emulator, connector, pat, volume, tmp_path, proxy):
    data = _blob(1024 * 1024 + 5)
    path = f"{volume}/resume/big.bin"
    put_file(emulator, path, data)
    proxy.on(r"/api/2\.0/fs/files/", lambda a: setattr(a, "cut", 300_000), times=1)
    since = len(emulator.requests)
    out = tmp_path / "big.bin"
    got = connector.run("download_file", proxy.connection(pat), {"file_path": path, "output_path": str(out)},
                        progress=False)
    assert out.read_bytes() == data and got["resumed"] == 1
    gets = [r for r in emulator.requests[since:] if r["method"] == "GET"]
    ranges = [{k.lower(): v for k, v in r["headers"].items()}.get("range") for r in gets]
    assert len(ranges) == 2 and ranges[0] is None, ranges
    start = int(ranges[1].removeprefix("bytes=").removesuffix("-"))      # what had arrived, less the piece in flight
    assert 300_000 - 65_536 <= start <= 300_000, ranges


def test_a_download_that_keeps_breaking_leaves_nothing_behind(emulator, connector, pat, volume, tmp_path, proxy):
    path = f"{volume}/broken/b.bin"
    put_file(emulator, path, _blob(200_000))
    out = tmp_path / "b.bin"
    out.write_bytes(b"the previous version")
    proxy.on(r"/api/2\.0/fs/files/", lambda a: setattr(a, "cut", 0))
    with pytest.raises(ConnectorError) as exc:
        connector.run("download_file", proxy.connection(pat), {"file_path": path, "output_path": str(out)},
                      progress=False)
    assert exc.value.type == "server_error" and "without progress" in exc.value.message
    assert out.read_bytes() == b"the previous version" and _leftovers(tmp_path) == []


def test_inline_content_text_and_base64_and_the_inline_limit(emulator, connector, pat, volume):
    path = f"{volume}/inline/note.txt"
    connector.run("upload_file", pat, {"file_path": path, "content": "héllo\n"})
    assert connector.run("download_file", pat, {"file_path": path})["content"] == "héllo\n"
    raw = bytes([0, 255, 1, 254])
    connector.run("upload_file", pat, {"file_path": path, "content_base64": base64.b64encode(raw).decode()})
    with pytest.raises(ConnectorError) as exc:
        connector.run("download_file", pat, {"file_path": path})           # not UTF-8: asks for base64
    assert exc.value.type == "invalid_input" and "base64" in exc.value.hint
    assert base64.b64decode(connector.run("download_file", pat, {"file_path": path, "content_format": "base64"})
                            ["content_base64"]) == raw
    with pytest.raises(ConnectorError) as exc:
        connector.run("download_file", pat, {"file_path": path, "max_inline_bytes": 3})
    assert exc.value.details["size"] == 4 and "Output File" in exc.value.hint


def test_overwrite_false_keeps_the_existing_file(emulator, connector, pat, volume):
    path = f"{volume}/keep/k.txt"
    connector.run("upload_file", pat, {"file_path": path, "content": "first"})
    with pytest.raises(ConnectorError) as exc:
        connector.run("upload_file", pat, {"file_path": path, "content": "second", "overwrite": False})
    assert exc.value.status == 409 and exc.value.error_code == "ALREADY_EXISTS"
    assert connector.run("download_file", pat, {"file_path": path})["content"] == "first"


def test_recursive_delete_lists_then_deletes_files_then_folders(emulator, connector, pat, volume):
    root = f"{volume}/tree"
    for p in ("a.txt", "sub/b.txt", "sub/deeper/c.txt"):
        put_file(emulator, f"{root}/{p}", b"x")
    connector.run("create_directory", pat, {"directory_path": f"{root}/empty"})
    connector.run("create_directory", pat, {"directory_path": f"{root}/empty"})      # idempotent
    with pytest.raises(ConnectorError) as exc:
        connector.run("delete_directory", pat, {"directory_path": root})
    assert exc.value.error_code == "DIRECTORY_NOT_EMPTY"
    out = connector.run("delete_directory", pat, {"directory_path": root, "recursive": True}, progress=False)
    assert sorted(out["files_deleted"]) == sorted(f"{root}/{p}" for p in ("a.txt", "sub/b.txt", "sub/deeper/c.txt"))
    assert out["directories_deleted"][0] == f"{root}/sub/deeper" and out["directories_deleted"][-1] == root
    assert set(out["directories_deleted"]) == {root, f"{root}/sub", f"{root}/sub/deeper", f"{root}/empty"}
    with pytest.raises(ConnectorError) as exc:
        connector.run("list_directory", pat, {"directory_path": root})
    assert exc.value.status == 404


def test_bad_inputs_are_named_together_before_any_request(emulator, connector, pat, tmp_path):
    since = len(emulator.requests)
    with pytest.raises(InputError) as exc:
        connector.run("upload_file", pat, {"file_path": "/Volumes/a/b", "local_path": str(tmp_path / "missing.bin")})
    assert {p["key"] for p in exc.value.problems} == {"file_path", "local_path"}
    with pytest.raises(InputError) as exc:
        connector.run("download_file", pat, {"file_path": "/Volumes/a/b/c/f", "output_path": str(tmp_path / "no/dir/f")})
    assert [p["key"] for p in exc.value.problems] == ["output_path"]
    assert len(emulator.requests) == since


def test_a_recursive_delete_that_fails_says_what_is_gone(emulator, connector, pat, volume):
    root = f"{volume}/half"
    for p in ("a.txt", "sub/b.txt"):
        put_file(emulator, f"{root}/{p}", b"x")
    emulator.faults.add(r"/api/2\.0/fs/directories/.*", kind="invalid_token", times=1, method="DELETE")
    with pytest.raises(ConnectorError) as exc:
        connector.run("delete_directory", pat, {"directory_path": root, "recursive": True}, progress=False)
    assert sorted(exc.value.details["files_deleted"]) == [f"{root}/a.txt", f"{root}/sub/b.txt"]
    assert exc.value.details["directories_deleted"] == [] and "after deleting 2 files" in exc.value.message
    again = connector.run("delete_directory", pat, {"directory_path": root, "recursive": True}, progress=False)
    assert again["files_deleted"] == [] and again["directories_deleted"] == [f"{root}/sub", root]

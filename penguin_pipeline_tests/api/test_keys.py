"""Keys as a FastAPI security scheme: scopes per route, 401 without or with a wrong key, 403 without
the scope, never the key in a message, and a key file re-read when it changes."""

from __future__ import annotations

import os

import pytest
from fastapi import FastAPI, Security
from fastapi.testclient import TestClient

from penguin_pipeline.api.keys import KeyConfigError, KeyRing


def client(ring: KeyRing) -> TestClient:
    app = FastAPI()

    @app.get("/p", dependencies=[Security(ring, scopes=["predict"])])
    async def p():
        return "ok"

    @app.get("/a", dependencies=[Security(ring, scopes=["admin"])])
    async def a():
        return "ok"

    return TestClient(app)


def status(c: TestClient, path: str, **headers) -> int:
    return c.get(path, headers={k.replace("_", "-"): v for k, v in headers.items()}).status_code


def test_no_keys_means_open_and_says_so():
    ring = KeyRing(None, None)
    assert ring.open and "OPEN" in ring.describe()
    assert status(client(ring), "/a") == 200


def test_scopes_from_env_and_file_in_every_header_form(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# operators\nadmin:file-admin-key\n\n")
    ring = KeyRing("predict:p-key; predict,admin:both-key", keys_file)
    assert (
        not ring.open
        and "3 API key(s)" in ring.describe()
        and "key" not in ring.describe().split("(")[1]
    )
    c = client(ring)
    assert status(c, "/p", authorization="Bearer p-key") == 200
    assert status(c, "/a", x_api_key="both-key") == 200
    assert status(c, "/a", authorization="Key file-admin-key") == 200
    assert status(c, "/p", x_api_key="file-admin-key") == 403
    assert status(c, "/a", authorization="bearer p-key") == 403


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"authorization": "Basic p-key"}, {"x_api_key": ""}],
)
def test_missing_or_wrong_key_is_401_and_not_echoed(headers):
    answer = client(KeyRing("predict:p-key", None)).get(
        "/p", headers={k.replace("_", "-"): v for k, v in headers.items()}
    )
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert "wrong" not in answer.text and "p-key" not in answer.text


@pytest.mark.parametrize(
    "text", ["predictSECRETK", "nosuchscope:SECRETK", ":SECRETK", "predict:", "predict SECRETK"]
)
def test_bad_entries_are_refused_without_showing_the_key(text):
    with pytest.raises(KeyConfigError) as info:
        KeyRing(text, None)
    assert "SECRETK" not in str(info.value)


def test_an_unreadable_keys_file_stops_the_start(tmp_path):
    with pytest.raises(KeyConfigError, match="cannot read"):
        KeyRing(None, tmp_path / "missing")


def test_an_empty_keys_file_is_not_an_open_api(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# nobody yet\n")
    ring = KeyRing(None, keys_file)
    assert not ring.open and status(client(ring), "/p", x_api_key="anything") == 401


def test_the_keys_file_is_read_again_when_it_changes(tmp_path, api_log):
    keys_file = tmp_path / "keys"
    keys_file.write_text("predict:first-key\n")
    c = client(KeyRing("admin:env-key", keys_file))
    assert status(c, "/p", x_api_key="first-key") == 200

    keys_file.write_text("predict:second-key\npredict:third-key\n")  # rotated: no restart
    os.utime(keys_file, ns=(1, 10**18))  # a new mtime even where the clock is coarse
    assert status(c, "/p", x_api_key="first-key") == 401
    assert status(c, "/p", x_api_key="second-key") == 200

    keys_file.write_text("predict:second-key\nbogus line SECRETK\n")  # a broken edit
    assert status(c, "/p", x_api_key="second-key") == 401  # the file's keys are refused
    assert status(c, "/p", x_api_key="second-key") == 401
    assert api_log.text.count("refused until it is fixed") == 1 and "SECRETK" not in api_log.text
    assert status(c, "/a", x_api_key="env-key") == 200  # the environment's keys keep working

    keys_file.unlink()
    assert status(c, "/p", x_api_key="second-key") == 401
    keys_file.write_text("predict:fourth-key\n")
    assert status(c, "/p", x_api_key="fourth-key") == 200

"""Keys: scopes, 401 without or with a wrong key, 403 without the scope, never the key in a message."""

from __future__ import annotations

import pytest

from penguin_pipeline.api.keys import AuthError, KeyConfigError, KeyRing


def test_no_keys_means_open_and_says_so():
    ring = KeyRing.load(None, None)
    assert ring.open and "OPEN" in ring.describe()
    ring.check(None, None, "admin")


def test_scopes_from_env_and_file(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# operators\nadmin:file-admin-key\n\n")
    ring = KeyRing.load("predict:p-key; predict,admin:both-key", keys_file)
    assert not ring.open and "3 API key(s)" in ring.describe() and "key" not in ring.describe().split("(")[1]
    ring.check("Bearer p-key", None, "predict")
    ring.check(None, "both-key", "admin")
    ring.check("Key file-admin-key", None, "admin")
    with pytest.raises(AuthError) as info:
        ring.check(None, "file-admin-key", "predict")
    assert info.value.status == 403


@pytest.mark.parametrize("authorization, x_key, status", [
    (None, None, 401), ("Bearer wrong", None, 401), ("Basic p-key", None, 401), (None, "", 401)])
def test_missing_or_wrong_key_is_401_and_not_echoed(authorization, x_key, status):
    ring = KeyRing.load("predict:p-key", None)
    with pytest.raises(AuthError) as info:
        ring.check(authorization, x_key, "predict")
    assert info.value.status == status and "wrong" not in info.value.message


@pytest.mark.parametrize("text", ["predictSECRETK", "nosuchscope:SECRETK", ":SECRETK", "predict:", "predict SECRETK"])
def test_bad_entries_are_refused_without_showing_the_key(text):
    with pytest.raises(KeyConfigError) as info:
        KeyRing.load(text, None)
    assert "SECRETK" not in str(info.value)


def test_unreadable_keys_file_is_a_config_error(tmp_path):
    with pytest.raises(KeyConfigError):
        KeyRing.load(None, tmp_path / "missing")

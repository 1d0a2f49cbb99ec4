"""Write keys, named tokens and roles, Basic/Bearer parsing, Segment webhook signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from engine.api.auth import (
    GRANTS,
    ConfigError,
    Permission,
    Principal,
    Role,
    Tokens,
    WriteKeys,
    basic_user,
    bearer_token,
    signature_ok,
)


def test_write_keys_name_their_source_and_refuse_anything_else() -> None:
    keys = WriteKeys("web:k-web, backend:k-back")
    assert len(keys) == 2
    assert keys.source("k-web") == "web"
    assert keys.source("k-back") == "backend"
    assert keys.source("k-we") is None  # a prefix is not a key
    assert keys.source("k-web ") is None
    assert keys.source("") is None and keys.source(None) is None


def test_a_write_key_may_contain_colons() -> None:
    assert WriteKeys("web:a:b:c").source("a:b:c") == "web"


@pytest.mark.parametrize("setting", ["nokey", "web:", ":key"])
def test_malformed_write_keys_say_what_is_expected(setting: str) -> None:
    with pytest.raises(ConfigError, match="expected name:key"):
        WriteKeys(setting)


def test_tokens_give_a_named_principal_with_its_role() -> None:
    tokens = Tokens("alice:admin:t-a,bob:csm:t:with:colons")
    assert tokens.principal("t-a") == Principal("alice", Role.ADMIN)
    assert tokens.principal("t:with:colons") == Principal("bob", Role.CSM)
    assert tokens.principal("t-b") is None
    assert tokens.principal(None) is None


def test_an_unknown_role_is_refused_naming_the_roles() -> None:
    with pytest.raises(ConfigError, match=r"unknown role 'root'.*admin, ops, csm, readonly"):
        Tokens("mallory:root:t")
    with pytest.raises(ConfigError, match="expected name:role:token"):
        Tokens("alice:admin")


def test_the_roles_matrix() -> None:
    reads = {role for role in Role if Permission.READ in GRANTS[role]}
    assert reads == set(Role)  # every role reads
    assert GRANTS[Role.ADMIN] == frozenset(Permission)
    assert GRANTS[Role.OPS] == {
        Permission.READ, Permission.AUDIT, Permission.DEAD_LETTERS, Permission.PLAYBOOKS
    }  # fmt: skip
    assert GRANTS[Role.CSM] == {Permission.READ, Permission.TASKS}
    assert GRANTS[Role.READONLY] == {Permission.READ}
    assert not Principal("c", Role.CSM).may(Permission.STAGES)
    assert Principal("a", Role.ADMIN).may(Permission.STAGES)


def test_basic_auth_user_is_the_write_key() -> None:
    header = "Basic " + base64.b64encode(b"wk-123:").decode()
    assert basic_user(header) == "wk-123"
    assert basic_user("basic " + base64.b64encode(b"wk:ignored").decode()) == "wk"
    assert basic_user("Basic !!!not-base64") is None
    assert basic_user("Bearer wk-123") is None
    assert basic_user("Basic " + base64.b64encode(b":").decode()) is None
    assert basic_user(None) is None


def test_bearer_tokens() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None


def test_segment_signatures_are_hmac_sha1_of_the_body() -> None:
    body = b'{"type":"track"}'
    good = hmac.new(b"secret", body, hashlib.sha1).hexdigest()
    assert signature_ok("secret", body, good)
    assert signature_ok("secret", body, good.upper())
    assert not signature_ok("secret", body + b" ", good)
    assert not signature_ok("other", body, good)
    assert not signature_ok("secret", body, None)

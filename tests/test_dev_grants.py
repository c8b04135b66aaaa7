"""The grants file (the sandbox's policy engine): parsing and the pure decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from sidecar.dev.grants import CredentialRequest, Grants, decide, default_grants_toml, load_grants
from sidecar.errors import ConfigError

GRANTS = Grants.model_validate(
    {
        "grant": [
            {"tenant": "a", "bucket": "artifacts", "prefix": "a/", "actions": ["read", "list"], "ttl_min": 60, "ttl_max": 600},
            {"tenant": "a", "bucket": "artifacts", "prefix": "a/rw/", "actions": ["read", "write"], "ttl_min": 60, "ttl_max": 600},
        ]
    }
)


def request(**changes: object) -> CredentialRequest:
    body = {"protected_system": "object-storage", "bucket": "artifacts", "prefix": "a/", "actions": ["read"], "ttl_seconds": 300}
    return CredentialRequest.model_validate_json(json.dumps({**body, **changes}))  # as the service parses


@pytest.mark.parametrize(
    ("claims", "changes", "reason"),
    [
        ({"tenant": "b"}, {}, "tenant_mismatch"),
        ({}, {}, "tenant_mismatch"),
        ({"tenant": "a"}, {"bucket": "other"}, "bucket_not_allowed"),
        ({"tenant": "a"}, {"prefix": "b/"}, "prefix_not_allowed"),
        ({"tenant": "a"}, {"prefix": ""}, "prefix_not_allowed"),
        ({"tenant": "a"}, {"actions": ["write"]}, "action_not_allowed"),
        ({"tenant": "a"}, {"ttl_seconds": 59}, "ttl_out_of_bounds"),
        ({"tenant": "a"}, {"ttl_seconds": 601}, "ttl_out_of_bounds"),
    ],
)
def test_refusals_name_the_first_failing_check(claims: dict[str, str], changes: dict[str, object], reason: str) -> None:
    decision = decide(GRANTS, claims, request(**changes))
    assert not decision.allowed and decision.reason == reason and decision.message


def test_the_grant_that_allows_is_the_role_class() -> None:
    read = decide(GRANTS, {"tenant": "a"}, request())
    write = decide(GRANTS, {"tenant": "a"}, request(prefix="a/rw/x/", actions=["write"]))
    assert read.allowed and write.allowed
    assert read.grant is not None and write.grant is not None
    assert read.grant.role_name != write.grant.role_name
    assert len(read.grant.role_name) <= 64


def test_requests_are_strict() -> None:
    for bad in ({"ttl_seconds": True}, {"ttl_seconds": "300"}, {"actions": "read"}, {"actions": []}, {"actions": ["read", "admin"]}):
        with pytest.raises(ValidationError):
            request(**bad)


def test_grants_file_round_trip_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "grants.toml"
    good.write_text(default_grants_toml(tenant="tenant-a", bucket="artifacts", prefix="tenant-a/", ttl_max=3600))
    grants = load_grants(good)
    assert decide(grants, {"tenant": "tenant-a"}, request(prefix="tenant-a/x/", actions=["read", "write", "list"])).allowed

    bad = tmp_path / "bad.toml"
    bad.write_text('[[grant]]\ntenant = "a"\nbucket = "artifacts"\nactions = ["read"]\nttl_min = 10\nttl_max = 5\n')
    with pytest.raises(ConfigError, match="ttl_min must not exceed ttl_max"):
        load_grants(bad)
    bad.write_text("[[grant]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_grants(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_grants(tmp_path / "missing.toml")

"""infra/aws/smoke.py's user-pool step against a real Cognito API (moto's server): a user made
the way the template's pool allows (admin-created, email as username), signed in with the flow the
template's client enables, and deleted afterwards whatever happens."""

from __future__ import annotations

import base64
import json

import boto3
import pytest

from tests.support.lambdas import ROOT, load_module

smoke = load_module(ROOT / "infra" / "aws" / "smoke.py")


@pytest.fixture
def user_pool(aws_env: str) -> dict[str, str]:
    cognito = boto3.client("cognito-idp", region_name="us-east-1")
    pool = cognito.create_user_pool(
        PoolName="smoke-test",
        UsernameAttributes=["email"],
        AdminCreateUserConfig={"AllowAdminCreateUserOnly": True},
    )["UserPool"]["Id"]
    client = cognito.create_user_pool_client(
        UserPoolId=pool, ClientName="smoke", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    )["UserPoolClient"]["ClientId"]
    return {"UserPoolId": pool, "UserPoolClientId": client}


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_the_smoke_user_signs_in_and_is_deleted_afterwards(user_pool: dict[str, str]) -> None:
    cognito = boto3.client("cognito-idp", region_name="us-east-1")
    with smoke.pool_user("us-east-1", user_pool) as token:
        claims = _claims(token)
        assert str(claims["email"]).startswith("smoke-")
        assert claims["token_use"] == "id"  # the API's authorizer reads the email from the ID token
        assert len(cognito.list_users(UserPoolId=user_pool["UserPoolId"])["Users"]) == 1
    assert cognito.list_users(UserPoolId=user_pool["UserPoolId"])["Users"] == []


def test_the_smoke_user_is_deleted_when_the_check_fails(user_pool: dict[str, str]) -> None:
    cognito = boto3.client("cognito-idp", region_name="us-east-1")
    with pytest.raises(smoke.SmokeFailed), smoke.pool_user("us-east-1", user_pool):
        raise smoke.SmokeFailed("the reminder never went out")
    assert cognito.list_users(UserPoolId=user_pool["UserPoolId"])["Users"] == []


def test_a_stack_without_a_user_pool_asks_for_a_token() -> None:
    with pytest.raises(smoke.SmokeFailed, match="--token"), smoke.pool_user("us-east-1", {}):
        pass

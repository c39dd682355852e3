"""infra/docker/sam_local_template.py: the copy of template.yaml that `sam local` runs (make test-sam,
and the LocalStack deploy) keeps the token authorizer wired to the API.

`sam local start-api` finds an authorizer's function only in an ARN it can resolve (``!GetAtt Fn.Arn``);
``!Ref Fn.Alias`` (the deployed API's SnapStart alias) makes it skip the authorizer with a warning and
call ApiFunction with no authorizer context, so every request, valid token or not, got a 401.
"""

from __future__ import annotations

import copy
import platform
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from tests.support.lambdas import ROOT, load_module

localizer = load_module(ROOT / "infra" / "docker" / "sam_local_template.py")


def _template() -> dict[str, Any]:
    template = yaml_parse((ROOT / "template.yaml").read_text())
    assert isinstance(template, dict)
    return template


def _authorizers(template: dict[str, Any]) -> dict[str, Any]:
    found = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Api":
            for auth_name, authorizer in resource["Properties"].get("Auth", {}).get("Authorizers", {}).items():
                found[f"{name}.{auth_name}"] = authorizer["FunctionArn"]
    return found


def test_every_authorizer_points_at_its_functions_arn_which_sam_local_resolves() -> None:
    template = _template()
    functions = {n for n, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert _authorizers(template), "template.yaml declares no Lambda authorizer"

    localizer.localize(template, "x86_64")

    for name, arn in _authorizers(template).items():
        assert isinstance(arn, dict) and list(arn) == ["Fn::GetAtt"], (name, arn)
        function, attribute = arn["Fn::GetAtt"]
        assert function in functions and attribute == "Arn", (name, arn)


def test_the_deployed_template_keeps_its_alias_and_the_copy_says_what_changed() -> None:
    template = _template()
    original = copy.deepcopy(template)
    aliased = {n: a for n, a in _authorizers(original).items() if localizer._aliased_function(a)}

    changes = localizer.localize(template, "x86_64")

    assert _template() == original  # template.yaml itself is only read
    for name in aliased:
        assert any(change.startswith(f"{name.split('.')[0]}.Auth.Authorizers.") for change in changes)


def test_an_authorizer_given_by_arn_or_by_another_reference_is_left_alone() -> None:
    for arn in ({"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}, {"Ref": "AuthorizerArn"}, "arn:aws:lambda:x"):
        template = {
            "Resources": {
                "Api": {
                    "Type": "AWS::Serverless::Api",
                    "Properties": {"Auth": {"Authorizers": {"A": {"FunctionArn": copy.deepcopy(arn)}}}},
                }
            }
        }
        localizer.localize(template, platform.machine())
        assert template["Resources"]["Api"]["Properties"]["Auth"]["Authorizers"]["A"]["FunctionArn"] == arn


def test_whole_secret_references_get_the_colons_localstack_resolves() -> None:
    # LocalStack 4.14.0 splits the reference on ":SecretString:" and reads the part after it: a
    # reference ending in ":SecretString}}" (valid on AWS) failed ApiFunction's creation with
    # "list index out of range", so the stack rolled back and no function ran inside LocalStack.
    template = _template()
    api_variables = template["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert api_variables["CALENDAR_FEED_KEY"] == {
        "Fn::Sub": "{{resolve:secretsmanager:${CalendarFeedKey}:SecretString}}"
    }

    changes = localizer.localize(template, "x86_64")

    assert api_variables["CALENDAR_FEED_KEY"] == {
        "Fn::Sub": "{{resolve:secretsmanager:${CalendarFeedKey}:SecretString::}}"
    }
    assert any(change.startswith("ApiFunction: ") for change in changes)


def test_a_secret_reference_with_a_json_key_or_of_another_service_is_left_alone() -> None:
    values = [
        "{{resolve:secretsmanager:db:SecretString:password}}",
        "{{resolve:secretsmanager:db:SecretString::}}",
        "{{resolve:ssm:/name:SecretString}}",
        "plain:SecretString}}",
    ]
    template = {"Resources": {"F": {"Type": "AWS::Serverless::Function", "Properties": {"Tags": list(values)}}}}
    localizer.localize(template, "x86_64")
    assert template["Resources"]["F"]["Properties"]["Tags"] == values

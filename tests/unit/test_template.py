"""template.yaml, translated to CloudFormation the way `sam deploy` would (aws-sam-translator,
in process): the API serves exactly the handler's routes, the notifier runs every minute,
every handler exists, IAM is least-privilege, and every function is observable.

`cfn-lint`, `sam validate --lint` and `sam build` run in `make check`.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

from tests.support.lambdas import ROOT, load_function

TEMPLATE = ROOT / "template.yaml"
FUNCTIONS = {"ApiFunction", "NotifierFunction", "MigrateFunction", "AuthorizerFunction"}
# Actions that have no resource-level permissions in IAM, so "*" is the narrowest resource.
STAR_RESOURCE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "cloudwatch:PutMetricData"}
# ENI management for functions in a VPC (ec2 describe/create/delete network interfaces); nothing else.
ALLOWED_MANAGED_POLICIES = {"AWSLambdaENIManagementAccess"}


def _sam() -> dict[str, Any]:
    sam = yaml_parse(TEMPLATE.read_text())
    assert isinstance(sam, dict)
    return sam


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return _sam()


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    """The CloudFormation template `sam deploy` would create, with the parameters' defaults."""
    sam = _sam()
    for name, resource in sam["Resources"].items():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://bucket/{name}.zip"  # the translator only accepts deployable URIs
    params = {name: spec.get("Default", "") for name, spec in sam["Parameters"].items()}
    translator = Translator({}, Parser(), boto_session=boto3.Session(region_name="us-east-1"))
    translated: dict[str, Any] = translator.translate(copy.deepcopy(sam), params, get_managed_policy_map=dict)
    return translated


def _of_type(cfn: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in cfn["Resources"].items() if res["Type"] == kind}


def _branches(value: Any) -> Iterator[Any]:
    """Every value a (possibly Fn::If-wrapped) template value can take."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, when_true, when_false = value["Fn::If"]
        yield from _branches(when_true)
        yield from _branches(when_false)
    elif value != {"Ref": "AWS::NoValue"}:
        yield value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(cfn: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, role in _of_type(cfn, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                for branch in _branches(statement):
                    yield name, branch


def _function_of(uri: Any) -> str | None:
    """The function an integration or authorizer URI invokes: ${Fn.Arn}, or Fn::Sub's variable map."""
    sub = uri["Fn::Sub"] if isinstance(uri, dict) else uri
    if isinstance(sub, list):
        for value in sub[1].values():
            if isinstance(value, dict) and "Fn::GetAtt" in value:
                return str(value["Fn::GetAtt"][0])
        sub = sub[0]
    match = re.search(r"\$\{(\w+)\.Arn\}", str(sub))
    return match.group(1) if match else None


# ---- API ------------------------------------------------------------------------------------


def _handler_routes() -> set[tuple[str, str]]:
    """(METHOD, /path/{param}) for every route the Powertools resolver in functions/api serves."""
    resolver = load_function("api").app
    routes = resolver._static_routes + resolver._dynamic_routes
    return {(route.method.upper(), re.sub(r"<(\w+)>", r"{\1}", route.path)) for route in routes}


def _api_routes(cfn: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    (api,) = _of_type(cfn, "AWS::ApiGateway::RestApi").values()
    return {
        (method.upper(), path): operation
        for path, methods in api["Properties"]["Body"]["paths"].items()
        for method, operation in methods.items()
    }


def test_the_api_has_exactly_the_handlers_routes_all_on_api_function(cfn: dict[str, Any]) -> None:
    # Given the routes functions/api/app.py serves, when the template is translated,
    # then API Gateway has those routes and no other, each integrated with ApiFunction.
    handler_routes = _handler_routes()
    api_routes = _api_routes(cfn)
    assert handler_routes, "the API handler serves no routes?"
    assert set(api_routes) == handler_routes
    for route, operation in api_routes.items():
        integration = operation["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy", route
        assert _function_of(integration["uri"]) == "ApiFunction", route


def test_every_route_but_the_api_docs_needs_a_token(cfn: dict[str, Any]) -> None:
    (api,) = _of_type(cfn, "AWS::ApiGateway::RestApi").values()
    schemes = api["Properties"]["Body"]["components"]["securitySchemes"]
    authorizer = schemes["TokenAuthorizer"]
    assert authorizer["name"] == "Authorization"
    assert authorizer["x-amazon-apigateway-authorizer"]["type"] == "token"
    assert _function_of(authorizer["x-amazon-apigateway-authorizer"]["authorizerUri"]) == "AuthorizerFunction"
    for (method, path), operation in _api_routes(cfn).items():
        security = operation.get("security") or []
        if path in {"/openapi.json", "/swagger"}:
            assert {"NONE": []} in security, (method, path)
        else:
            assert security == [{"TokenAuthorizer": []}], (method, path)


# ---- Notifier -------------------------------------------------------------------------------


def test_the_notifier_runs_every_minute(cfn: dict[str, Any]) -> None:
    rules = [
        rule["Properties"]
        for rule in _of_type(cfn, "AWS::Events::Rule").values()
        if any(target["Arn"] == {"Fn::GetAtt": ["NotifierFunction", "Arn"]} for target in rule["Properties"]["Targets"])
    ]
    assert [rule["ScheduleExpression"] for rule in rules] == ["rate(1 minute)"]


def test_failed_notifier_runs_go_to_a_queue_the_notifier_may_send_to(cfn: dict[str, Any]) -> None:
    (config,) = _of_type(cfn, "AWS::Lambda::EventInvokeConfig").values()
    props = config["Properties"]
    assert props["FunctionName"] == {"Ref": "NotifierFunction"}
    queue_arn = {"Fn::GetAtt": ["NotifierFailureQueue", "Arn"]}
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == queue_arn
    sqs = [s for role, s in _statements(cfn) if role == "NotifierFunctionRole" and "sqs:SendMessage" in s["Action"]]
    assert [s["Resource"] for s in sqs] == [queue_arn]


# ---- Handlers -------------------------------------------------------------------------------


def test_every_handler_exists_on_disk(sam: dict[str, Any]) -> None:
    functions = {
        name: res["Properties"] for name, res in sam["Resources"].items() if res["Type"] == "AWS::Serverless::Function"
    }
    assert set(functions) == FUNCTIONS
    for name, props in functions.items():
        module, _, attribute = props["Handler"].rpartition(".")
        source = ROOT / props["CodeUri"] / (module.replace(".", "/") + ".py")
        assert source.is_file(), f"{name}: {source} is missing"
        defined = {node.name for node in ast.parse(source.read_text()).body if isinstance(node, ast.FunctionDef)}
        assert attribute in defined, f"{name}: {source} defines no {attribute}()"


def test_the_layer_is_built_from_its_requirements(sam: dict[str, Any]) -> None:
    layer = sam["Resources"]["CommonLayer"]
    assert layer["Metadata"]["BuildMethod"] == sam["Globals"]["Function"]["Runtime"]
    assert (ROOT / layer["Properties"]["ContentUri"] / "requirements.txt").is_file()


# ---- IAM ------------------------------------------------------------------------------------


def test_no_iam_statement_grants_every_action_or_needlessly_every_resource(cfn: dict[str, Any]) -> None:
    statements = list(_statements(cfn))
    assert statements
    for role, statement in statements:
        assert statement["Effect"] == "Allow", (role, statement)
        actions = _as_list(statement["Action"])
        assert not [a for a in actions if "*" in a], (role, statement)
        if "*" in _as_list(statement["Resource"]):
            assert set(actions) <= STAR_RESOURCE_ACTIONS, (role, statement)


def test_every_function_has_its_own_role_without_broad_managed_policies(cfn: dict[str, Any]) -> None:
    functions = _of_type(cfn, "AWS::Lambda::Function")
    assert set(functions) == FUNCTIONS
    for name, function in functions.items():
        assert function["Properties"]["Role"] == {"Fn::GetAtt": [f"{name}Role", "Arn"]}
    for name, role in _of_type(cfn, "AWS::IAM::Role").items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            for branch in _branches(arn):
                assert branch["Fn::Sub"].rsplit("/", 1)[-1] in ALLOWED_MANAGED_POLICIES, (name, branch)


def test_only_the_notifier_sends_email_and_only_from_the_sender(cfn: dict[str, Any]) -> None:
    ses = [(role, s) for role, s in _statements(cfn) if any(a.startswith("ses:") for a in _as_list(s["Action"]))]
    assert {role for role, _ in ses} == {"NotifierFunctionRole"}
    for _, statement in ses:
        assert sorted(statement["Action"]) == ["ses:SendEmail", "ses:SendRawEmail"]
        assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": {"Ref": "SenderEmail"}}}
        resources = [r for branch in _branches(statement["Resource"]) for r in _as_list(branch)]
        assert resources
        for resource in resources:
            text = resource["Fn::Sub"] if isinstance(resource["Fn::Sub"], str) else resource["Fn::Sub"][0]
            assert ":ses:${AWS::Region}:${AWS::AccountId}:identity/" in text


def test_the_database_secret_is_the_only_secret_read(cfn: dict[str, Any]) -> None:
    secret = [
        (role, s) for role, s in _statements(cfn) if any(a.startswith("secretsmanager:") for a in _as_list(s["Action"]))
    ]
    assert {role for role, _ in secret} == {"ApiFunctionRole", "NotifierFunctionRole", "MigrateFunctionRole"}
    for _, statement in secret:
        assert statement["Action"] == "secretsmanager:GetSecretValue"
        assert statement["Resource"] == {"Ref": "DatabaseSecretArn"}


# ---- Observability --------------------------------------------------------------------------


def test_every_function_logs_to_its_own_group_with_retention(cfn: dict[str, Any]) -> None:
    groups = _of_type(cfn, "AWS::Logs::LogGroup")
    for name, function in _of_type(cfn, "AWS::Lambda::Function").items():
        logging = function["Properties"]["LoggingConfig"]
        assert logging["LogFormat"] == "JSON"
        group = logging["LogGroup"]["Ref"]
        assert groups[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        writes = [s for role, s in _statements(cfn) if role == f"{name}Role" and "logs:PutLogEvents" in s["Action"]]
        assert [s["Resource"] for s in writes] == [{"Fn::GetAtt": [group, "Arn"]}], name


def test_every_function_is_traced_and_alarmed_on_errors_and_throttles(cfn: dict[str, Any]) -> None:
    alarms = [a["Properties"] for a in _of_type(cfn, "AWS::CloudWatch::Alarm").values()]
    for name, function in _of_type(cfn, "AWS::Lambda::Function").items():
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}
        for metric in ("Errors", "Throttles"):
            assert any(
                a["Namespace"] == "AWS/Lambda"
                and a["MetricName"] == metric
                and a["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": name}}]
                for a in alarms
            ), f"no {metric} alarm on {name}"
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def _metrics_emitted_by(source: Path) -> set[str]:
    """Names in ``metrics.add_metric(name="...")`` calls of a handler module."""
    return {
        keyword.value.value
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_metric"
        for keyword in node.keywords
        if keyword.arg == "name" and isinstance(keyword.value, ast.Constant)
    }


def test_custom_alarms_watch_metrics_the_notifier_emits(cfn: dict[str, Any]) -> None:
    alarms = [a["Properties"] for a in _of_type(cfn, "AWS::CloudWatch::Alarm").values()]
    custom = [a for a in alarms if a["Namespace"] == "EventReminders"]
    assert sorted(a["MetricName"] for a in custom) == ["DeliveryLag", "NotifierMisconfigured"]
    emitted = _metrics_emitted_by(ROOT / "functions" / "notifier" / "app.py")
    for alarm in custom:
        # Powertools Metrics adds the service (POWERTOOLS_SERVICE_NAME) as the default dimension.
        assert alarm["Dimensions"] == [{"Name": "service", "Value": "notifier"}]
        assert alarm["MetricName"] in emitted


def test_outputs_name_the_api_url_and_every_function(cfn: dict[str, Any]) -> None:
    outputs = cfn["Outputs"]
    assert "ApiUrl" in outputs
    for name in FUNCTIONS:
        assert outputs[f"{name}Name"]["Value"] == {"Ref": name}


def test_every_parameter_has_a_default_for_local_runs(sam: dict[str, Any]) -> None:
    assert all("Default" in spec for spec in sam["Parameters"].values())


def test_the_template_stays_free_of_yaml_aliases() -> None:
    # CloudFormation rejects YAML anchors and aliases in some paths; keep the file plain.
    text = Path(TEMPLATE).read_text()
    assert not re.search(r"(^|\s)[&*][A-Za-z]", text, re.M)


def test_api_gateways_own_errors_have_the_contract_shape(cfn: dict[str, Any]) -> None:
    (api,) = _of_type(cfn, "AWS::ApiGateway::RestApi").values()
    responses = api["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "MISSING_AUTHENTICATION_TOKEN"} <= set(responses)
    for kind, response in responses.items():
        body = response["responseTemplates"]["application/json"].replace("$context.authorizer.reason", "why")
        error = json.loads(body)
        assert error["statusCode"] == int(response["statusCode"]), kind
        assert error["message"], kind

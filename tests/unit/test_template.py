"""template.yaml, translated to CloudFormation the way `sam deploy` would (aws-sam-translator,
in process): the API serves exactly the handler's routes, the notifier runs every minute,
every handler exists, IAM is least-privilege, and every function is observable. Both database
modes are checked on what CloudFormation would deploy (conditions evaluated): the stack's own
database (DatabaseSecretArn empty, the default) and a database you bring.

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

from devserver.template import _Intrinsics
from reminders import migrate
from tests.support.lambdas import ROOT, load_function

TEMPLATE = ROOT / "template.yaml"
FUNCTIONS = {"ApiFunction", "NotifierFunction", "MigrateFunction", "AuthorizerFunction", "FeedbackFunction"}
# Actions that have no resource-level permissions in IAM, so "*" is the narrowest resource.
STAR_RESOURCE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "cloudwatch:PutMetricData"}
# ENI management for functions in a VPC (ec2 describe/create/delete network interfaces); nothing else.
ALLOWED_MANAGED_POLICIES = {"AWSLambdaENIManagementAccess"}
DATABASE_FUNCTIONS = {"ApiFunction", "NotifierFunction", "MigrateFunction", "FeedbackFunction"}
# The unsubscribe links' key: the notifier signs with it, the API verifies.
UNSUBSCRIBE_KEY_READERS = {"ApiFunctionRole", "NotifierFunctionRole"}
MANAGED_SECRET = {"Fn::GetAtt": ["Database", "MasterUserSecret.SecretArn"]}
# A database you bring, reached through your own subnets.
BRING_YOUR_OWN = {
    "DatabaseSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:reminders-db-AbCdEf",
    "DatabaseHost": "db.example.internal",
    "DatabaseName": "reminders",
    "SubnetIds": "subnet-0aaa,subnet-0bbb",
    "SecurityGroupIds": "sg-0ccc",
}


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


def _parameters(sam: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, spec in sam["Parameters"].items():
        value = str(overrides.get(name, spec.get("Default", "")))
        params[name] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
    return params


def _deployed(cfn: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """What CloudFormation would create with these parameters: conditions and Fn::If decided,
    resources and outputs whose condition is false left out; other intrinsics kept as they are."""
    conditions = _Intrinsics(_parameters(_sam(), overrides), cfn.get("Conditions") or {})

    def decide(value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            return decide(when_true if conditions.condition(name) else when_false)
        if isinstance(value, dict):
            decided = {key: decide(item) for key, item in value.items()}
            return {key: item for key, item in decided.items() if item != {"Ref": "AWS::NoValue"}}
        if isinstance(value, list):
            return [item for item in map(decide, value) if item != {"Ref": "AWS::NoValue"}]
        return value

    kept = {
        section: {
            name: decide(body)
            for name, body in (cfn.get(section) or {}).items()
            if "Condition" not in body or conditions.condition(body["Condition"])
        }
        for section in ("Resources", "Outputs")
    }
    return {**cfn, **kept}


@pytest.fixture(scope="module")
def own_database(cfn: dict[str, Any]) -> dict[str, Any]:
    return _deployed(cfn, {})


@pytest.fixture(scope="module")
def your_database(cfn: dict[str, Any]) -> dict[str, Any]:
    return _deployed(cfn, BRING_YOUR_OWN)


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


def _function_of(uri: Any, cfn: dict[str, Any] | None = None) -> str | None:
    """The function an integration or authorizer URI invokes: ${Fn.Arn}, or Fn::Sub's variable map;
    a function's alias (AutoPublishAlias) counts as its function."""
    sub = uri["Fn::Sub"] if isinstance(uri, dict) else uri
    name = None
    if isinstance(sub, list):
        for value in sub[1].values():
            if isinstance(value, dict) and "Fn::GetAtt" in value:
                name = str(value["Fn::GetAtt"][0])
            elif isinstance(value, dict) and "Ref" in value:
                name = str(value["Ref"])
        sub = sub[0]
    if name is None:
        match = re.search(r"\$\{(\w+)(\.Arn)?\}", str(sub))
        name = match.group(1) if match else None
    alias = (cfn or {}).get("Resources", {}).get(name or "", {})
    if alias.get("Type") == "AWS::Lambda::Alias":
        return str(alias["Properties"]["FunctionName"]["Ref"])
    return name


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
        assert _function_of(integration["uri"], cfn) == "ApiFunction", route


def test_every_route_but_the_api_docs_the_calendar_feed_and_unsubscribe_needs_a_token(cfn: dict[str, Any]) -> None:
    (api,) = _of_type(cfn, "AWS::ApiGateway::RestApi").values()
    schemes = api["Properties"]["Body"]["components"]["securitySchemes"]
    authorizer = schemes["TokenAuthorizer"]
    assert authorizer["name"] == "Authorization"
    assert authorizer["x-amazon-apigateway-authorizer"]["type"] == "token"
    assert _function_of(authorizer["x-amazon-apigateway-authorizer"]["authorizerUri"], cfn) == "AuthorizerFunction"
    for (method, path), operation in _api_routes(cfn).items():
        security = operation.get("security") or []
        # The feed's secret and the unsubscribe token are their own keys: calendar and mail
        # clients send no bearer token.
        if path in {"/openapi.json", "/swagger", "/calendar/{feed}", "/unsubscribe/{token}"}:
            assert {"NONE": []} in security, (method, path)
        else:
            assert security == [{"TokenAuthorizer": []}], (method, path)


def test_the_api_and_the_authorizer_start_from_snapstart_snapshots_through_their_alias(cfn: dict[str, Any]) -> None:
    # SnapStart (Python 3.12+) applies only to published versions: API Gateway must invoke the
    # alias that AutoPublishAlias keeps on the latest one, never $LATEST.
    resources = cfn["Resources"]
    aliases = {
        str(alias["Properties"]["FunctionName"]["Ref"]): name
        for name, alias in _of_type(cfn, "AWS::Lambda::Alias").items()
    }
    for function in ("ApiFunction", "AuthorizerFunction"):
        props = resources[function]["Properties"]
        assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}, function
        runtime = props["Runtime"].removeprefix("python").split(".")
        assert (int(runtime[0]), int(runtime[1])) >= (3, 12), props["Runtime"]
        assert function in aliases, f"{function} has no published alias"
    (api,) = _of_type(cfn, "AWS::ApiGateway::RestApi").values()
    for operation in _api_routes(cfn).values():
        assert "${ApiFunctionAliaslive}" in json.dumps(operation["x-amazon-apigateway-integration"]["uri"])
    authorizer = api["Properties"]["Body"]["components"]["securitySchemes"]["TokenAuthorizer"]
    assert {"Ref": aliases["AuthorizerFunction"]} in json.loads(
        json.dumps(authorizer["x-amazon-apigateway-authorizer"]["authorizerUri"]["Fn::Sub"][1])
    ).values()
    invoked_by_api_gateway = {
        json.dumps(permission["Properties"]["FunctionName"])
        for permission in _of_type(cfn, "AWS::Lambda::Permission").values()
        if permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    }
    assert invoked_by_api_gateway == {
        json.dumps({"Ref": aliases["ApiFunction"]}),
        json.dumps({"Ref": aliases["AuthorizerFunction"]}),
    }


# ---- Notifier -------------------------------------------------------------------------------


def test_the_notifier_runs_every_minute(cfn: dict[str, Any]) -> None:
    rules = [
        rule["Properties"]
        for rule in _of_type(cfn, "AWS::Events::Rule").values()
        if any(target["Arn"] == {"Fn::GetAtt": ["NotifierFunction", "Arn"]} for target in rule["Properties"]["Targets"])
    ]
    assert [rule["ScheduleExpression"] for rule in rules] == ["rate(1 minute)"]


def test_failed_notifier_runs_go_to_a_queue_the_notifier_may_send_to(cfn: dict[str, Any]) -> None:
    (config,) = [
        c
        for c in _of_type(cfn, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": "NotifierFunction"}
    ]
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
        # Only what reminders/mailer.py calls.
        assert _as_list(statement["Action"]) == ["ses:SendRawEmail"]
        assert statement["Condition"] == {"StringEquals": {"ses:FromAddress": {"Ref": "SenderEmail"}}}
        resources = [r for branch in _branches(statement["Resource"]) for r in _as_list(branch)]
        assert resources
        for resource in resources:
            text = resource["Fn::Sub"] if isinstance(resource["Fn::Sub"], str) else resource["Fn::Sub"][0]
            # The sender's identity, or the one configuration set every send names.
            assert ":ses:${AWS::Region}:${AWS::AccountId}:identity/" in text or text.endswith(
                ":configuration-set/${FeedbackConfigurationSet}"
            ), text


def test_every_send_names_the_configuration_set_that_publishes_feedback_to_feedback_function(
    cfn: dict[str, Any],
) -> None:
    resources = cfn["Resources"]
    notifier_env = resources["NotifierFunction"]["Properties"]["Environment"]["Variables"]
    assert notifier_env["SES_CONFIGURATION_SET"] == {"Ref": "FeedbackConfigurationSet"}
    (destination,) = _of_type(cfn, "AWS::SES::ConfigurationSetEventDestination").values()
    props = destination["Properties"]
    assert props["ConfigurationSetName"] == {"Ref": "FeedbackConfigurationSet"}
    assert props["EventDestination"]["Enabled"] is True
    assert sorted(props["EventDestination"]["MatchingEventTypes"]) == ["bounce", "complaint", "delivery", "reject"]
    assert props["EventDestination"]["SnsDestination"] == {"TopicARN": {"Ref": "FeedbackTopic"}}
    # FeedbackFunction is the topic's one subscriber, and SNS may invoke it
    subscriptions = [s["Properties"] for s in _of_type(cfn, "AWS::SNS::Subscription").values()]
    assert [
        (s["TopicArn"], s["Protocol"], s["Endpoint"])
        for s in subscriptions
        if s["TopicArn"] == {"Ref": "FeedbackTopic"}
    ] == [({"Ref": "FeedbackTopic"}, "lambda", {"Fn::GetAtt": ["FeedbackFunction", "Arn"]})]
    permissions = [
        p["Properties"]
        for p in _of_type(cfn, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "sns.amazonaws.com"
    ]
    assert [(p["FunctionName"], p["SourceArn"]) for p in permissions] == [
        ({"Ref": "FeedbackFunction"}, {"Ref": "FeedbackTopic"})
    ]
    # Only SES may publish to the topic, and only for this stack's configuration set
    (policy,) = _of_type(cfn, "AWS::SNS::TopicPolicy").values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"} and statement["Action"] == "sns:Publish"
    assert statement["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"].endswith(
        ":configuration-set/${FeedbackConfigurationSet}"
    )


def test_feedback_function_may_only_log_trace_read_the_database_secret_and_keep_failures(cfn: dict[str, Any]) -> None:
    actions = sorted(a for role, s in _statements(cfn) if role == "FeedbackFunctionRole" for a in _as_list(s["Action"]))
    assert actions == sorted(
        [
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "secretsmanager:GetSecretValue",
            "sqs:SendMessage",
        ]
    )


def test_the_database_secret_and_the_unsubscribe_key_are_the_only_secrets_read(
    own_database: dict[str, Any], your_database: dict[str, Any]
) -> None:
    unsubscribe_key = {"Ref": "UnsubscribeKey"}
    for deployed, secret, readers in (
        (own_database, MANAGED_SECRET, {f"{name}Role" for name in DATABASE_FUNCTIONS} | {"DatabaseProxyRole"}),
        (your_database, {"Ref": "DatabaseSecretArn"}, {f"{name}Role" for name in DATABASE_FUNCTIONS}),
    ):
        statements = [
            (role, s)
            for role, s in _statements(deployed)
            if any(a.startswith(("secretsmanager:", "kms:")) for a in _as_list(s["Action"]))
        ]
        assert {role for role, s in statements if s["Resource"] == secret} == readers
        assert {role for role, s in statements if s["Resource"] == unsubscribe_key} == UNSUBSCRIBE_KEY_READERS
        for _, statement in statements:
            assert statement["Action"] == "secretsmanager:GetSecretValue"
            assert statement["Resource"] in (secret, unsubscribe_key)


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
                a.get("Namespace") == "AWS/Lambda"
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


# Alarmed ahead of the notifier change that emits it (issue 10). When that lands, the second test
# below fails on purpose: then delete the name from this set.
NOT_YET_EMITTED: set[str] = set()


def test_custom_alarms_watch_metrics_the_notifier_emits(cfn: dict[str, Any]) -> None:
    alarms = [a["Properties"] for a in _of_type(cfn, "AWS::CloudWatch::Alarm").values()]
    custom = [a for a in alarms if a.get("Namespace") == "EventReminders"]
    assert sorted(a["MetricName"] for a in custom) == [
        "DeliveryLag",
        "NotifierDatabaseUnavailable",
        "NotifierMisconfigured",
        "RemindersFailed",
    ]
    emitted = _metrics_emitted_by(ROOT / "functions" / "notifier" / "app.py")
    for alarm in custom:
        # Powertools Metrics adds the service (POWERTOOLS_SERVICE_NAME) as the default dimension.
        assert alarm["Dimensions"] == [{"Name": "service", "Value": "notifier"}]
        assert alarm["MetricName"] in emitted | NOT_YET_EMITTED


def test_bounce_and_complaint_rates_alarm_at_half_the_ses_review_thresholds(cfn: dict[str, Any]) -> None:
    alarms = {name: a["Properties"] for name, a in _of_type(cfn, "AWS::CloudWatch::Alarm").items()}
    emitted = _metrics_emitted_by(ROOT / "functions" / "feedback" / "app.py")
    for name, threshold in (("BounceRateAlarm", 2.5), ("ComplaintRateAlarm", 0.05)):
        alarm = alarms[name]
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (threshold, "GreaterThanOrEqualToThreshold")
        stats = [m["MetricStat"]["Metric"] for m in alarm["Metrics"] if "MetricStat" in m]
        assert stats and all(m["Namespace"] == "EventReminders" for m in stats)
        assert all(m["Dimensions"] == [{"Name": "service", "Value": "feedback"}] for m in stats)
        assert {m["MetricName"] for m in stats} <= emitted
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert alarms["SesReputationBounceRateAlarm"]["Threshold"] == 0.025
    assert alarms["SesReputationComplaintRateAlarm"]["Threshold"] == 0.0005


def test_metrics_alarmed_ahead_of_their_emitter_are_not_emitted_yet() -> None:
    emitted = _metrics_emitted_by(ROOT / "functions" / "notifier" / "app.py")
    assert not NOT_YET_EMITTED & emitted, "the notifier emits it now: remove it from NOT_YET_EMITTED"


def test_a_total_delivery_outage_pages(cfn: dict[str, Any]) -> None:
    # Every send rejected ends every due reminder failed at once: any failed reminder in 5 minutes alarms.
    (alarm,) = [
        a["Properties"]
        for a in _of_type(cfn, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "RemindersFailed"
    ]
    assert alarm["Statistic"] == "Sum"
    assert alarm["Period"] == 300
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


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


# ---- Database: the stack's own, or yours ------------------------------------------------------

OWN_DATABASE_TYPES = {
    "AWS::EC2::VPC",
    "AWS::EC2::Subnet",
    "AWS::EC2::NatGateway",
    "AWS::EC2::SecurityGroup",
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBProxy",
    "AWS::RDS::DBProxyTargetGroup",
}


def _environment(deployed: dict[str, Any], function: str) -> dict[str, Any]:
    variables: dict[str, Any] = deployed["Resources"][function]["Properties"]["Environment"]["Variables"]
    return variables


def test_with_no_database_given_the_stack_creates_one_behind_a_proxy(own_database: dict[str, Any]) -> None:
    resources = own_database["Resources"]
    assert {r["Type"] for r in resources.values()} >= OWN_DATABASE_TYPES
    (database,) = _of_type(own_database, "AWS::RDS::DBInstance").values()
    props = database["Properties"]
    assert props["Engine"] == "postgres"
    assert props["ManageMasterUserPassword"] is True and "MasterUserPassword" not in props
    assert props["PubliclyAccessible"] is False
    assert props["StorageEncrypted"] is True
    assert database["DeletionPolicy"] == "Snapshot"
    (target_group,) = _of_type(own_database, "AWS::RDS::DBProxyTargetGroup").values()
    assert target_group["Properties"]["DBInstanceIdentifiers"] == [{"Ref": "Database"}]
    assert target_group["Properties"]["DBProxyName"] == {"Ref": "DatabaseProxy"}
    for name in DATABASE_FUNCTIONS:
        env = _environment(own_database, name)
        assert env["DB_SECRET_ARN"] == MANAGED_SECRET
        assert env["DB_HOST"] == {"Fn::GetAtt": ["DatabaseProxy", "Endpoint"]}
        assert env["DB_NAME"] == props["DBName"]
        assert env["DB_PORT"] == {"Ref": "DatabasePort"}


def test_the_proxy_authenticates_with_the_managed_secret_and_requires_tls(own_database: dict[str, Any]) -> None:
    (proxy,) = _of_type(own_database, "AWS::RDS::DBProxy").values()
    props = proxy["Properties"]
    assert props["EngineFamily"] == "POSTGRESQL"
    assert props["RequireTLS"] is True
    # reminders/db.py signs in with the secret's username and password, so no IAM auth tokens.
    assert props["Auth"] == [
        {
            "AuthScheme": "SECRETS",
            "SecretArn": MANAGED_SECRET,
            "IAMAuth": "DISABLED",
            "ClientPasswordAuthType": "POSTGRES_SCRAM_SHA_256",
        }
    ]
    assert props["RoleArn"] == {"Fn::GetAtt": ["DatabaseProxyRole", "Arn"]}


def test_only_the_proxy_reaches_the_database_and_only_the_functions_reach_the_proxy(
    own_database: dict[str, Any],
) -> None:
    groups = _of_type(own_database, "AWS::EC2::SecurityGroup")
    (database,) = _of_type(own_database, "AWS::RDS::DBInstance").values()
    (proxy,) = _of_type(own_database, "AWS::RDS::DBProxy").values()
    (database_group,) = [g["Ref"] for g in database["Properties"]["VPCSecurityGroups"]]
    (proxy_group,) = [g["Ref"] for g in proxy["Properties"]["VpcSecurityGroupIds"]]

    def ingress(group: str) -> list[tuple[int, int, Any]]:
        rules = groups[group]["Properties"].get("SecurityGroupIngress", [])
        return [(r["FromPort"], r["ToPort"], r["SourceSecurityGroupId"]) for r in rules]

    assert ingress(database_group) == [(5432, 5432, {"Ref": proxy_group})]
    for name in DATABASE_FUNCTIONS:
        vpc = own_database["Resources"][name]["Properties"]["VpcConfig"]
        (function_group,) = [g["Ref"] for g in vpc["SecurityGroupIds"]]
        assert ingress(proxy_group) == [(5432, 5432, {"Ref": function_group})]
        assert vpc["SubnetIds"] == proxy["Properties"]["VpcSubnetIds"]


def test_the_functions_subnets_are_private_and_go_out_through_the_nat_gateway(own_database: dict[str, Any]) -> None:
    resources = own_database["Resources"]
    subnets = {s["Ref"] for s in resources["ApiFunction"]["Properties"]["VpcConfig"]["SubnetIds"]}
    tables = {
        a["Properties"]["RouteTableId"]["Ref"]
        for a in _of_type(own_database, "AWS::EC2::SubnetRouteTableAssociation").values()
        if a["Properties"]["SubnetId"]["Ref"] in subnets
    }
    routes = [
        r["Properties"]
        for r in _of_type(own_database, "AWS::EC2::Route").values()
        if r["Properties"]["RouteTableId"]["Ref"] in tables
    ]
    assert len(subnets) == 2
    assert routes and all(set(r) == {"RouteTableId", "DestinationCidrBlock", "NatGatewayId"} for r in routes)
    for name in subnets:
        assert resources[name]["Properties"].get("MapPublicIpOnLaunch") in (None, False)
    assert {s["Ref"] for s in resources["DatabaseSubnetGroup"]["Properties"]["SubnetIds"]} == subnets


def test_a_database_you_bring_gets_none_of_it(your_database: dict[str, Any]) -> None:
    types = {r["Type"] for r in your_database["Resources"].values()}
    assert not OWN_DATABASE_TYPES & types
    assert not [t for t in types if t.startswith(("AWS::EC2::", "AWS::RDS::"))]
    assert "DatabaseProxyEndpoint" not in your_database["Outputs"]
    for name in DATABASE_FUNCTIONS:
        props = your_database["Resources"][name]["Properties"]
        env = _environment(your_database, name)
        assert {key: env[key] for key in ("DB_SECRET_ARN", "DB_HOST", "DB_PORT", "DB_NAME")} == {
            "DB_SECRET_ARN": {"Ref": "DatabaseSecretArn"},
            "DB_HOST": {"Ref": "DatabaseHost"},
            "DB_PORT": {"Ref": "DatabasePort"},
            "DB_NAME": {"Ref": "DatabaseName"},
        }
        assert props["VpcConfig"] == {
            "SubnetIds": {"Ref": "SubnetIds"},
            "SecurityGroupIds": {"Ref": "SecurityGroupIds"},
        }


def test_a_database_you_bring_outside_a_vpc_keeps_the_functions_outside_too(cfn: dict[str, Any]) -> None:
    deployed = _deployed(cfn, {"DatabaseSecretArn": BRING_YOUR_OWN["DatabaseSecretArn"]})
    for name in FUNCTIONS:
        assert "VpcConfig" not in deployed["Resources"][name]["Properties"], name
    for role in _of_type(deployed, "AWS::IAM::Role").values():
        assert not role["Properties"].get("ManagedPolicyArns"), "no ENI permissions outside a VPC"


def test_the_authorizer_stays_outside_the_vpc(own_database: dict[str, Any]) -> None:
    # It fetches the issuer's JWKS from the internet and never touches the database.
    assert "VpcConfig" not in own_database["Resources"]["AuthorizerFunction"]["Properties"]
    assert not own_database["Resources"]["AuthorizerFunctionRole"]["Properties"].get("ManagedPolicyArns")


def _rule_holds(value: Any, params: dict[str, Any]) -> bool:
    """Evaluate a Rules assertion (the functions it may use that this template does)."""
    ((key, arg),) = value.items()
    if key == "Ref":
        return params[arg]  # type: ignore[no-any-return]
    operands = [_rule_holds(a, params) if isinstance(a, dict) else a for a in _as_list(arg)]
    if key == "Fn::Equals":
        return str(operands[0]) == str(operands[1])
    if key == "Fn::Not":
        return not operands[0]
    if key == "Fn::And":
        return all(operands)
    if key == "Fn::EachMemberEquals":
        return all(str(member) == str(operands[1]) for member in operands[0])
    raise AssertionError(f"rule function {key} not evaluated here")


@pytest.mark.parametrize(
    ("overrides", "accepted"),
    [
        ({}, True),
        (BRING_YOUR_OWN, True),
        ({"DatabaseSecretArn": BRING_YOUR_OWN["DatabaseSecretArn"]}, True),
        ({"DatabaseHost": "db.example.internal"}, False),
        ({"DatabaseName": "reminders"}, False),
        ({"SubnetIds": "subnet-0aaa"}, False),
    ],
)
def test_the_rules_accept_either_mode_and_refuse_a_half_given_database(
    sam: dict[str, Any], overrides: dict[str, str], accepted: bool
) -> None:
    params = _parameters(sam, overrides)
    verdicts = [
        _rule_holds(assertion["Assert"], params)
        for rule in sam["Rules"].values()
        if "RuleCondition" not in rule or _rule_holds(rule["RuleCondition"], params)
        for assertion in rule["Assertions"]
    ]
    assert all(verdicts) is accepted


# ---- Migrations -------------------------------------------------------------------------------


def test_every_deploy_runs_the_migrations_through_migrate_function(
    sam: dict[str, Any], own_database: dict[str, Any]
) -> None:
    (migrations,) = [
        (name, r) for name, r in own_database["Resources"].items() if r["Type"] == "Custom::DatabaseMigrations"
    ]
    name, resource = migrations
    props = resource["Properties"]
    assert props["ServiceToken"] == {"Fn::GetAtt": ["MigrateFunction", "Arn"]}
    # CloudFormation sends an Update (and so migrates) only when a property changes.
    assert props["HeadRevision"] == migrate.head_revision(), "set DatabaseMigrations.HeadRevision to the new head"
    assert int(props["ServiceTimeout"]) > sam["Resources"]["MigrateFunction"]["Properties"]["Timeout"]
    # It waits for the proxy's target and the route its answer takes; the code that needs the new
    # schema waits for it.
    assert {"Ref": "DatabaseProxyTargetGroup"} in props["Network"]
    assert {"Ref": "PrivateDefaultRoute"} in props["Network"]
    for function in ("ApiFunction", "NotifierFunction"):
        assert own_database["Resources"][function]["DependsOn"] in (name, [name])


def test_the_notifiers_lease_outlasts_its_timeout(own_database: dict[str, Any]) -> None:
    props = own_database["Resources"]["NotifierFunction"]["Properties"]
    assert int(props["Environment"]["Variables"]["LEASE_SECONDS"]) > int(props["Timeout"])

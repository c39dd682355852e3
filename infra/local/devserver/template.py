"""Read template.yaml through aws-sam-translator: functions, API routes, authorizers, schedules.

The translator is the one reader of the template, so what runs locally is what CloudFormation
would deploy; nothing here keeps a second list of routes.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devserver.ses_feedback import Destination

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
API_ID = "local000000"


class TemplateError(Exception):
    """The template cannot be read or translated (one line, for the console)."""


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str
    code_dir: Path
    environment: dict[str, str]
    timeout: int
    memory: int

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.logical_id}"


@dataclass(frozen=True)
class Authorizer:
    name: str
    function: str
    identity_header: str
    validation: re.Pattern[str] | None = None
    ttl_seconds: int = 300


@dataclass(frozen=True)
class Route:
    resource: str
    method: str  # upper case, or "ANY"
    function: str
    authorizer: Authorizer | None
    pattern: re.Pattern[str]
    params: tuple[str, ...]


@dataclass(frozen=True)
class Schedule:
    rule_id: str
    expression: str
    function: str
    payload: dict[str, Any] | None

    @property
    def arn(self) -> str:
        return f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{self.rule_id}"


@dataclass
class App:
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)
    stage: str = "Prod"
    binary_media_types: list[str] = field(default_factory=list)
    # API Gateway's own responses (UNAUTHORIZED, MISSING_AUTHENTICATION_TOKEN, ...): status, JSON body.
    gateway_responses: dict[str, tuple[int, str]] = field(default_factory=dict)
    # SES configuration sets' event destinations (SNS topics) and the functions subscribed to them.
    feedback: list[Destination] = field(default_factory=list)


_NO_VALUE = object()


class _Intrinsics:
    """Evaluate the intrinsics a local run can know: parameters, conditions, Sub, Join, If."""

    def __init__(self, params: dict[str, Any], conditions: dict[str, Any]) -> None:
        self.params = params
        self._conditions = conditions
        self._decided: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._decided:
            self._decided[name] = bool(self.resolve(self._conditions.get(name, True)))
        return self._decided[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref", "Condition")):
            resolved = {k: self.resolve(v) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not _NO_VALUE}
        ((key, arg),) = value.items()
        if key == "Ref":
            return _NO_VALUE if arg == "AWS::NoValue" else self.params.get(arg, arg)
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::If":
            return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
        if key == "Fn::Equals":
            left, right = (self.resolve(v) for v in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(v) for v in arg)
        if key == "Fn::Or":
            return any(self.resolve(v) for v in arg)
        if key == "Fn::Join":
            return str(arg[0]).join(str(v) for v in self.resolve(arg[1]))
        if key == "Fn::GetAtt":
            parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return f"{parts[0]}.{parts[1]}"
        if key == "Fn::Sub":
            text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            names = {**self.params, **{k: self.resolve(v) for k, v in local.items()}}
            return re.sub(r"\$\{([\w:.]+)\}", lambda m: str(names.get(m.group(1), m.group(1))), text)
        return {key: self.resolve(arg)}


def _function_of(uri: Any, aliases: dict[str, str] | None = None) -> str | None:
    """The logical id in an integration/authorizer URI (.../functions/${Fn.Arn}/invocations); a
    function's alias (AutoPublishAlias, which SnapStart needs) stands for its function."""
    sub = uri.get("Fn::Sub") if isinstance(uri, dict) else uri
    text, local = (sub[0], sub[1]) if isinstance(sub, list) else (sub, {})
    match = re.search(r"/functions/\$\{([\w.]+)\}/invocations", str(text))
    if not match:
        return None
    name = match.group(1)
    target = local.get(name)
    if isinstance(target, dict) and "Fn::GetAtt" in target:
        attr = target["Fn::GetAtt"]
        name = str(attr[0] if isinstance(attr, list) else attr.split(".")[0])
    elif isinstance(target, dict) and "Ref" in target:
        name = str(target["Ref"])
    name = name.removesuffix(".Arn")
    return (aliases or {}).get(name, name)


def _route_pattern(resource: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    regex, names = "", []
    for part in re.split(r"(\{[^}]+\})", resource):
        if part.startswith("{"):
            greedy = part.endswith("+}")
            names.append(part[1:-2] if greedy else part[1:-1])
            regex += f"(?P<p{len(names)}>{'.+' if greedy else '[^/]+'})"
        else:
            regex += re.escape(part)
    return re.compile(f"^{regex}/?$"), tuple(names)


def path_parameters(route: Route, match: re.Match[str]) -> dict[str, str]:
    return {name: match.group(f"p{i}") for i, name in enumerate(route.params, start=1)}


def load(template_path: Path, overrides: dict[str, str] | None = None) -> App:
    try:
        return _load(template_path, overrides or {})
    except TemplateError:
        raise
    except Exception as exc:
        raise TemplateError(f"{template_path}: {type(exc).__name__}: {exc}".replace("\n", " ")) from None


def _load(template_path: Path, overrides: dict[str, str]) -> App:
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.yaml_helper import yaml_parse

    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    if not template_path.is_file():
        raise TemplateError(f"{template_path}: no such template")
    sam = yaml_parse(template_path.read_text())
    if not isinstance(sam, dict) or not isinstance(sam.get("Resources"), dict):
        raise TemplateError(f"{template_path}: not a SAM template (no Resources)")
    base = template_path.parent
    local_dirs: dict[str, Path] = {}
    # The translator wants deployable URIs; remember each local folder by a fake S3 key.
    global_function = (sam.get("Globals") or {}).get("Function") or {}
    global_code = global_function.pop("CodeUri", None)
    for name, resource in sam["Resources"].items():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and global_code and "CodeUri" not in props:
            props["CodeUri"] = global_code
            resource["Properties"] = props
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                local_dirs[name] = (base / props[key]).resolve()
                props[key] = f"s3://local-code/{name}"
    params: dict[str, Any] = {}
    for name, spec in (sam.get("Parameters") or {}).items():
        if isinstance(spec, dict):
            value = overrides.get(name, spec.get("Default", ""))
            is_list = str(spec.get("Type", "")).startswith(("CommaDelimitedList", "List<"))
            params[name] = [v for v in str(value).split(",") if v] if is_list else str(value)
    translator = Translator({}, Parser(), boto_session=boto3.Session(region_name=REGION))
    cfn = translator.translate(sam, dict(params), get_managed_policy_map=_AnyPolicy)
    params.update({"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws"})
    params.update({"AWS::StackName": "local", "AWS::URLSuffix": "amazonaws.com"})
    intrinsics = _Intrinsics(params, cfn.get("Conditions") or {})
    resources: dict[str, Any] = cfn["Resources"]

    app = App()
    for name, res in resources.items():
        if res["Type"] != "AWS::Lambda::Function":
            continue
        props = res["Properties"]
        key = str((props.get("Code") or {}).get("S3Key"))
        if key not in local_dirs:
            raise TemplateError(f"{name}: only functions with a local CodeUri can run locally")
        variables = intrinsics.resolve((props.get("Environment") or {}).get("Variables") or {})
        env = {k: str(v) for k, v in variables.items()}
        app.functions[name] = FunctionSpec(
            logical_id=name,
            handler=str(props.get("Handler", "app.lambda_handler")),
            code_dir=local_dirs[key],
            environment=env,
            timeout=int(intrinsics.resolve(props.get("Timeout", 3))),
            memory=int(intrinsics.resolve(props.get("MemorySize", 128))),
        )

    aliases = {
        name: str(res["Properties"]["FunctionName"]["Ref"])
        for name, res in resources.items()
        if res["Type"] == "AWS::Lambda::Alias" and isinstance(res["Properties"].get("FunctionName"), dict)
    }
    for res in resources.values():
        if res["Type"] == "AWS::ApiGateway::Stage":
            app.stage = str(intrinsics.resolve(res["Properties"].get("StageName")))
    for name, res in resources.items():
        if res["Type"] == "AWS::ApiGateway::RestApi" and "Body" in res["Properties"]:
            _read_openapi(app, res["Properties"]["Body"], aliases)
        if res["Type"] == "AWS::Events::Rule" and res["Properties"].get("ScheduleExpression"):
            props = res["Properties"]
            if intrinsics.resolve(props.get("State", "ENABLED")) != "ENABLED":
                continue
            for target in props.get("Targets") or []:
                function = str(intrinsics.resolve(target.get("Arn"))).removesuffix(".Arn")
                if function in app.functions:
                    payload = target.get("Input")
                    app.schedules.append(
                        Schedule(
                            rule_id=name,
                            expression=str(intrinsics.resolve(props["ScheduleExpression"])),
                            function=function,
                            payload=json.loads(payload) if payload else None,
                        )
                    )
    app.feedback = _feedback_destinations(resources, intrinsics, set(app.functions))
    return app


def _feedback_destinations(
    resources: dict[str, Any], intrinsics: _Intrinsics, functions: set[str]
) -> list[Destination]:
    """SES event destinations to SNS topics, with the functions the topics invoke (SNS -> Lambda
    subscriptions): what the local SES needs to deliver its simulator's feedback as AWS would."""
    subscribers: dict[str, list[str]] = {}
    for res in resources.values():
        if res["Type"] == "AWS::SNS::Subscription" and res["Properties"].get("Protocol") == "lambda":
            topic = str(intrinsics.resolve(res["Properties"].get("TopicArn")))
            function = str(intrinsics.resolve(res["Properties"].get("Endpoint"))).removesuffix(".Arn")
            if function in functions:
                subscribers.setdefault(topic, []).append(function)
    destinations = []
    for res in resources.values():
        if res["Type"] != "AWS::SES::ConfigurationSetEventDestination":
            continue
        props = intrinsics.resolve(res["Properties"])
        target = props.get("EventDestination") or {}
        topic = str((target.get("SnsDestination") or {}).get("TopicARN", ""))
        if target.get("Enabled", False) in (True, "true") and topic in subscribers:
            destinations.append(
                Destination(
                    configuration_set=str(props.get("ConfigurationSetName")),
                    topic=topic,
                    event_types=tuple(str(t).lower() for t in target.get("MatchingEventTypes") or []),
                    functions=tuple(subscribers[topic]),
                )
            )
    return destinations


def _read_openapi(app: App, body: dict[str, Any], aliases: dict[str, str]) -> None:
    # Swagger 2 keeps authorizers in securityDefinitions, OpenAPI 3 in components.securitySchemes.
    schemes = body.get("securityDefinitions") or (body.get("components") or {}).get("securitySchemes") or {}
    authorizers: dict[str, Authorizer] = {}
    for name, scheme in schemes.items():
        spec = scheme.get("x-amazon-apigateway-authorizer") or {}
        if str(spec.get("type", "")).lower() != "token":
            continue
        function = _function_of(spec.get("authorizerUri"), aliases)
        header = str(scheme.get("name") or "Authorization")
        source = str(spec.get("identitySource") or f"method.request.header.{header}")
        validation = spec.get("identityValidationExpression")
        if function:
            authorizers[name] = Authorizer(
                name=name,
                function=function,
                identity_header=source.rsplit(".", 1)[-1],
                validation=re.compile(validation) if validation else None,
                ttl_seconds=int(spec.get("authorizerResultTtlInSeconds", 300)),
            )
    app.binary_media_types = [str(t).replace("~1", "/") for t in body.get("x-amazon-apigateway-binary-media-types", [])]
    for kind, response in (body.get("x-amazon-apigateway-gateway-responses") or {}).items():
        templates = response.get("responseTemplates") or {}
        app.gateway_responses[kind] = (
            int(response.get("statusCode", 0)),
            str(templates.get("application/json", "")),
        )
    for resource, methods in (body.get("paths") or {}).items():
        for method, operation in methods.items():
            integration = operation.get("x-amazon-apigateway-integration") or {}
            function = _function_of(integration.get("uri"), aliases)
            if not function:
                continue
            authorizer = None
            for requirement in operation.get("security", body.get("security")) or []:
                for scheme_name in requirement:
                    authorizer = authorizer or authorizers.get(scheme_name)
            verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
            pattern, names = _route_pattern(resource)
            app.routes.append(Route(resource, verb, function, authorizer, pattern, names))
    # Literal segments win over parameters, and parameters over greedy ones, as in API Gateway.
    app.routes.sort(key=lambda r: ("+}" in r.resource, r.resource.count("{"), -len(r.resource)))


class _AnyPolicy(dict[str, str]):
    """Managed policy names resolve to a placeholder ARN (IAM is not emulated locally)."""

    def __missing__(self, key: str) -> str:
        return f"arn:aws:iam::aws:policy/{key}"

    def __contains__(self, key: object) -> bool:
        return True

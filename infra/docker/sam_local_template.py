"""Write a copy of template.yaml that `sam local` can run on this machine.

template.yaml deploys arm64 functions; SAM's containers can't run arm64 code on an x86_64 machine
without qemu, so the copy switches every function and layer to the machine's architecture. It also
declares DATABASE_URL, because `sam local --env-vars` only sets variables the template declares, and
points each Lambda authorizer at its function's ARN instead of an alias (``!Ref Fn.Alias``, which the
deployed API uses for SnapStart): `sam local start-api` can't resolve an alias, so it would skip the
authorizer with a warning and call the API function with no authorizer context (every request 401).
The same build is what infra/localstack/deploy.sh deploys into LocalStack, whose 4.14.0 CloudFormation
fails a resource on a whole-secret dynamic reference ending in ``:SecretString}}`` (IndexError, "list
index out of range": it expects a colon after SecretString); the copy spells those ``:SecretString::}}``
(the same reference: no json-key, no version), which LocalStack resolves.
Nothing else changes. Run it with SAM CLI's Python (its YAML loader keeps CloudFormation's tags):

    .venv-sam/bin/python infra/docker/sam_local_template.py template.yaml .aws-sam/sam-local/template.yaml
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
LOCAL_ONLY_VARIABLES = ("DATABASE_URL",)
WHOLE_SECRET = ":SecretString"  # noqa: S105 (a reference's syntax, no secret)


def localize(template: dict[str, Any], arch: str) -> list[str]:
    changes: list[str] = []
    function_globals = template.setdefault("Globals", {}).setdefault("Function", {})
    if function_globals.get("Architectures") not in (None, [arch]):
        changes.append(f"Globals.Function.Architectures -> [{arch}]")
        function_globals["Architectures"] = [arch]
    for name, resource in template.get("Resources", {}).items():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and props.get("Architectures") not in (None, [arch]):
            props["Architectures"] = [arch]
            changes.append(f"{name}.Architectures -> [{arch}]")
        if resource.get("Type") == "AWS::Serverless::LayerVersion":
            if props.get("CompatibleArchitectures") not in (None, [arch]):
                props["CompatibleArchitectures"] = [arch]
                changes.append(f"{name}.CompatibleArchitectures -> [{arch}]")
            metadata = resource.get("Metadata") or {}
            if metadata.get("BuildArchitecture") not in (None, arch):
                metadata["BuildArchitecture"] = arch
                changes.append(f"{name}.Metadata.BuildArchitecture -> {arch}")
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Api":
            continue
        authorizers = ((resource.get("Properties") or {}).get("Auth") or {}).get("Authorizers") or {}
        for auth_name, authorizer in authorizers.items():
            function = _aliased_function(authorizer.get("FunctionArn"))
            if function is not None:
                authorizer["FunctionArn"] = {"Fn::GetAtt": [function, "Arn"]}
                changes.append(f"{name}.Auth.Authorizers.{auth_name}.FunctionArn -> !GetAtt {function}.Arn")
    for name, resource in template.get("Resources", {}).items():
        if _spell_whole_secret_references(resource):
            changes.append(f"{name}: '{WHOLE_SECRET}}}}}' -> '{WHOLE_SECRET}::}}}}'")
    variables = function_globals.setdefault("Environment", {}).setdefault("Variables", {})
    for variable in LOCAL_ONLY_VARIABLES:
        if variable not in variables:
            variables[variable] = ""
            changes.append(f"Globals.Function.Environment.Variables.{variable} declared (empty)")
    return changes


def _spell_whole_secret_references(node: Any) -> bool:
    """Rewrite, in place, every ``{{resolve:secretsmanager:<id>:SecretString}}`` under node; True if any."""
    changed = False
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(value, str) and "{{resolve:secretsmanager:" in value and WHOLE_SECRET + "}}" in value:
            node[key] = value.replace(WHOLE_SECRET + "}}", WHOLE_SECRET + "::}}")
            changed = True
        elif isinstance(value, (dict, list)):
            changed = _spell_whole_secret_references(value) or changed
    return changed


def _aliased_function(arn: Any) -> str | None:
    """The function's logical id when ``arn`` is ``!Ref <Function>.Alias`` (AutoPublishAlias), else None."""
    if isinstance(arn, dict) and set(arn) == {"Ref"} and isinstance(arn["Ref"], str):
        function, _, attribute = arn["Ref"].partition(".")
        if attribute == "Alias":
            return function
    return None


def main(argv: list[str]) -> int:
    from samcli.yamlhelper import yaml_dump, yaml_parse

    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    source, target = Path(argv[1]), Path(argv[2])
    arch = ARCHITECTURES.get(platform.machine().lower())
    if arch is None:
        print(f"sam local template: unsupported machine {platform.machine()}", file=sys.stderr)
        return 2
    template = yaml_parse(source.read_text())
    changes = localize(template, arch)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml_dump(template))
    print(f"sam local template: {target} from {source} ({'; '.join(changes) or 'unchanged'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

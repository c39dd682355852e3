#!/usr/bin/env bash
# Deploy template.yaml into a running LocalStack (README "With Docker"; infra/ci/test-localstack.sh):
# publish make run's issuer JWKS, `sam deploy --config-env localstack` the build that
# infra/docker/sam_local_template.py + `sam build` made for this machine's architecture, and invoke
# MigrateFunction inside LocalStack (its free edition deploys the template's DatabaseMigrations custom
# resource as a placeholder and never calls the function for it). Prints the API's URL last.
#   AWS_ENDPOINT_URL=http://127.0.0.1:4566 infra/localstack/deploy.sh [BUILT_TEMPLATE]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$REPO"
template="${1:-.aws-sam/sam-local/build/template.yaml}"
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://127.0.0.1:4566}" AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" \
  AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}" AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" \
  SAM_CLI_TELEMETRY=0
log="$REPO/.local/localstack-deploy.log"
mkdir -p "$REPO/.local"

PYTHONPATH=infra/local .venv/bin/python infra/localstack/publish_jwks.py >&2
.venv-sam/bin/sam deploy --config-file "$REPO/samconfig.toml" --config-env localstack --template-file "$template" \
  --no-progressbar >"$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }
echo "sam deploy: stack event-reminders deployed into $AWS_ENDPOINT_URL (log: $log)" >&2
# LocalStack 4.14 ignores x-amazon-apigateway-gateway-responses when it imports the API that SAM's
# transform writes: apply the template's GatewayResponses through the API Gateway API instead, and
# redeploy the stage (a deployment freezes them, on AWS too). SAM CLI's Python reads CloudFormation's tags.
.venv-sam/bin/python - "$template" <<'PY' >&2
import sys
import boto3
from samcli.yamlhelper import yaml_parse
template = yaml_parse(open(sys.argv[1]).read())
cfn, apigw = boto3.client("cloudformation"), boto3.client("apigateway")
resources = {r["LogicalResourceId"]: r["PhysicalResourceId"]
             for r in cfn.list_stack_resources(StackName="event-reminders")["StackResourceSummaries"]}
for name, resource in template["Resources"].items():
    if resource["Type"] != "AWS::Serverless::Api" or not resource["Properties"].get("GatewayResponses"):
        continue
    api_id = resources[name]
    for kind, response in resource["Properties"]["GatewayResponses"].items():
        apigw.put_gateway_response(restApiId=api_id, responseType=kind, statusCode=str(response["StatusCode"]),
                                   responseTemplates=response.get("ResponseTemplates") or {})
    stage = apigw.get_stages(restApiId=api_id)["item"][0]["stageName"]
    apigw.create_deployment(restApiId=api_id, stageName=stage, description="gateway responses")
    print(f"{name}: {len(resource['Properties']['GatewayResponses'])} gateway responses applied, stage {stage} redeployed")
PY
.venv/bin/python - <<'PY'
import json, sys
import boto3
outputs = {o["OutputKey"]: o["OutputValue"] for o in
           boto3.client("cloudformation").describe_stacks(StackName="event-reminders")["Stacks"][0]["Outputs"]}
result = boto3.client("lambda").invoke(FunctionName=outputs["MigrateFunctionName"], Payload=b"{}")
answer = result["Payload"].read().decode()
if result.get("FunctionError") or '"ok"' not in answer:
    sys.exit(f"MigrateFunction inside LocalStack failed: {answer}")
print(f"MigrateFunction ran inside LocalStack: {answer}", file=sys.stderr)
api = outputs["ApiUrl"]  # https://<id>.execute-api.localhost.localstack.cloud:4566/<stage>
api_id, stage = api.split("//")[1].split(".")[0], api.rstrip("/").rsplit("/", 1)[1]
import os
print(f"{os.environ['AWS_ENDPOINT_URL']}/_aws/execute-api/{api_id}/{stage}")
PY

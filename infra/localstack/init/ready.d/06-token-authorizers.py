"""LocalStack ready hook: Lambda TOKEN authorizers in front of REST API methods.

LocalStack 4.14's free edition routes a method with a CUSTOM authorizer straight to its integration
(authorizers are a Pro feature), so the deployed API would reach ApiFunction without an identity.
This adds the authorizer step where LocalStack's REST API gateway says extensions go (its
`preprocess_request` handler, after routing): it invokes the method's TOKEN authorizer function
through LocalStack's own Lambda service, as API Gateway does, and then
  - a missing token, or one failing identityValidationExpression: UNAUTHORIZED (the function is not called);
  - the function raising "Unauthorized": UNAUTHORIZED; raising anything else: AUTHORIZER_FAILURE;
  - an explicit Deny, or no Allow for the method: ACCESS_DENIED, with the policy's context in
    $context.authorizer (the message is its `reason` when there is one);
  - an Allow: the policy's context and principalId become requestContext.authorizer.
Errors are LocalStack's own gateway exceptions, so LocalStack answers with the status codes of the
API's gateway responses (it does not render their templates yet: the body is its own JSON).
Policies are cached per token for authorizerResultTtlInSeconds, as API Gateway caches them.
Hand-written because LocalStack's free edition has no authorizer step to configure; runs inside
LocalStack's own Python (ready.d/*.py are exec'd in-process). Disable with REMINDERS_AUTHORIZERS=0.
"""

import json
import os
import re
import threading
import time

from localstack.services.apigateway.next_gen.execute_api import handlers as apigw_handlers
from localstack.services.apigateway.next_gen.execute_api.gateway_response import (
    AccessDeniedError,
    AuthorizerFailureError,
    UnauthorizedError,
)
from localstack.services.apigateway.next_gen.execute_api.integrations.aws import get_service_factory
from localstack.utils.aws.client_types import ServicePrincipal

FUNCTION_IN_URI = re.compile(r"/functions/(arn:[^/]+)/invocations")
DENIED = "User is not authorized to access this resource with an explicit deny"


class TokenAuthorizers:
    """The authorizer step of a REST API invocation (a rolo handler: chain, context, response)."""

    name = "reminders-token-authorizers"

    def __init__(self):
        self.cache = {}
        self.lock = threading.Lock()

    def __call__(self, chain, context, response):
        method = context.resource_method or {}
        if method.get("authorizationType") != "CUSTOM":
            return
        authorizer = context.deployment.rest_api.authorizers.get(method.get("authorizerId") or "")
        if not authorizer or authorizer.get("type") != "TOKEN":
            return  # REQUEST authorizers: not ours to emulate
        source = authorizer.get("identitySource") or "method.request.header.Authorization"
        token = context.invocation_request["headers"].get(source.rsplit(".", 1)[-1])
        if not token:
            raise UnauthorizedError("Unauthorized")
        expression = authorizer.get("identityValidationExpression")
        if expression and not re.fullmatch(expression, token):
            raise UnauthorizedError("Unauthorized")

        request = context.invocation_request
        method_arn = (
            f"arn:aws:execute-api:{context.region}:{context.account_id}:{context.api_id}/{context.stage}/"
            f"{request['http_method']}/{request['path'].lstrip('/')}"
        )
        policy = self.policy(authorizer, token, method_arn)
        principal = policy.get("principalId")
        variables = {**(policy.get("context") or {}), "principalId": principal}
        context.context_variables["authorizer"] = variables
        if not self.allows(policy.get("policyDocument") or {}, method_arn):
            reason = variables.get("reason")
            raise AccessDeniedError(str(reason) if reason else DENIED)

    def policy(self, authorizer, token, method_arn):
        ttl = int(authorizer.get("authorizerResultTtlInSeconds") or 0)
        key = (authorizer.get("id"), token)
        now = time.monotonic()
        with self.lock:
            cached = self.cache.get(key)
        if ttl and cached and cached[0] > now:
            return cached[1]
        found = FUNCTION_IN_URI.search(authorizer.get("authorizerUri") or "")
        if not found:
            raise AuthorizerFailureError("Authorizer URI names no Lambda function")
        function_arn = found.group(1)
        event = {"type": "TOKEN", "authorizationToken": token, "methodArn": method_arn}
        result = (
            get_service_factory(region_name=function_arn.split(":")[3], role_arn=None)
            .lambda_.request_metadata(service_principal=ServicePrincipal.apigateway, source_arn=method_arn)
            .invoke(FunctionName=function_arn, Payload=json.dumps(event).encode(), InvocationType="RequestResponse")
        )
        payload = result["Payload"].read() if result.get("Payload") else b""
        try:
            answer = json.loads(payload or b"null")
        except ValueError:
            raise AuthorizerFailureError(None) from None
        if result.get("FunctionError"):
            if isinstance(answer, dict) and answer.get("errorMessage") == "Unauthorized":
                raise UnauthorizedError("Unauthorized")
            raise AuthorizerFailureError(None)
        if not isinstance(answer, dict) or "principalId" not in answer or "policyDocument" not in answer:
            raise AuthorizerFailureError(None)
        if ttl:
            with self.lock:
                self.cache[key] = (now + ttl, answer)
        return answer

    @staticmethod
    def allows(document, method_arn):
        statements = document.get("Statement") or []
        if isinstance(statements, dict):
            statements = [statements]
        allowed = False
        for statement in statements:
            actions = statement.get("Action") or []
            actions = [actions] if isinstance(actions, str) else actions
            if not any(a in ("execute-api:Invoke", "execute-api:*", "*") for a in actions):
                continue
            resources = statement.get("Resource") or []
            resources = [resources] if isinstance(resources, str) else resources
            matches = any(
                re.fullmatch(re.escape(r).replace(r"\*", ".*").replace(r"\?", "."), method_arn) for r in resources
            )
            if matches and statement.get("Effect") == "Deny":
                return False
            allowed = allowed or (matches and statement.get("Effect") == "Allow")
        return allowed


if os.environ.get("REMINDERS_AUTHORIZERS", "1") != "0":
    chain = apigw_handlers.preprocess_request
    if not any(getattr(h, "name", "") == TokenAuthorizers.name for h in chain.handlers):
        chain.append(TokenAuthorizers())
    print(
        "reminders init: REST API TOKEN authorizers run in front of their methods (LocalStack free edition skips them)"
    )

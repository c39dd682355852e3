"""AuthorizerFunction: the API's Lambda TOKEN authorizer.

Allows a request whose bearer JWT verifies; otherwise denies it with the reason in the context,
which the API's ACCESS_DENIED gateway response turns into a 401 with that message. The caller's
identity reaches ApiFunction only through ``requestContext.authorizer`` (principalId, email).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
    APIGatewayAuthorizerTokenEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from reminders import auth, snapstart
from reminders.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    token_event = APIGatewayAuthorizerTokenEvent(event)
    arn = token_event.parsed_arn
    # One policy for the whole API, so API Gateway's cached answer serves every route.
    policy = APIGatewayAuthorizerResponse(
        principal_id="anonymous",
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
    )
    try:
        identity = auth.verify(token_event.authorization_token, auth.auth_settings())
    except auth.Unauthorized as exc:
        logger.info("token refused", extra={"reason": exc.reason})
        policy.context = {"reason": exc.reason}
        policy.deny_all_routes()
        return policy.asdict()
    except auth.AuthConfigError as exc:
        logger.error("authorizer misconfigured", extra={"error": str(exc)})
        policy.context = {"reason": "the API cannot verify tokens right now"}
        policy.deny_all_routes()
        return policy.asdict()
    policy.principal_id = identity.subject
    policy.context = {"email": identity.email or "", "sub": identity.subject}
    policy.allow_all_routes()
    return policy.asdict()


# SnapStart (template.yaml): an environment restored from the snapshot fetches the issuer's keys
# (and reads its settings) afresh rather than trusting what the snapshot held.
snapstart.register(after_restore=[auth.reset_cache])

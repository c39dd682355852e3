"""AuthorizerFunction: the API's Lambda TOKEN authorizer.

Allows a request whose bearer JWT verifies; otherwise denies it with the reason in the context,
which the API's ACCESS_DENIED gateway response turns into a 401 with that message. The caller's
identity reaches ApiFunction only through ``requestContext.authorizer`` (principalId, email).

Under ``sam local`` (SAM CLI sets AWS_SAM_LOCAL=true in its containers) a refusal is answered
differently, because SAM's emulator ignores gateway responses: it answers any Deny with its own
403 and any authorizer error (even API Gateway's ``Unauthorized`` convention) with a 502. There the
refusal is an Allow for the ``anonymous`` principal with the reason in the context, and ApiFunction,
which serves no one without an identity, answers the 401. API Gateway never sets AWS_SAM_LOCAL.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
    APIGatewayAuthorizerTokenEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from reminders import auth, snapstart
from reminders.observability import logger

# ApiFunction refuses this principal (caller() in functions/api/app.py): it carries no identity.
ANONYMOUS = "anonymous"


def _under_sam_local() -> bool:
    return os.environ.get("AWS_SAM_LOCAL", "").lower() == "true"


def _refuse(policy: APIGatewayAuthorizerResponse, reason: str) -> dict[str, Any]:
    policy.principal_id = ANONYMOUS
    policy.context = {"reason": reason}
    if _under_sam_local():
        policy.allow_all_routes()  # SAM: ApiFunction turns the anonymous caller into the 401
    else:
        policy.deny_all_routes()  # API Gateway: ACCESS_DENIED's gateway response is the 401
    return policy.asdict()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    token_event = APIGatewayAuthorizerTokenEvent(event)
    arn = token_event.parsed_arn
    # One policy for the whole API, so API Gateway's cached answer serves every route.
    policy = APIGatewayAuthorizerResponse(
        principal_id=ANONYMOUS,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
    )
    try:
        identity = auth.verify(token_event.authorization_token, auth.auth_settings())
    except auth.Unauthorized as exc:
        logger.info("token refused", extra={"reason": exc.reason})
        return _refuse(policy, exc.reason)
    except auth.AuthConfigError as exc:
        logger.error("authorizer misconfigured", extra={"error": str(exc)})
        return _refuse(policy, "the API cannot verify tokens right now")
    policy.principal_id = identity.subject
    policy.context = {"email": identity.email or "", "sub": identity.subject}
    policy.allow_all_routes()
    return policy.asdict()


# SnapStart (template.yaml): an environment restored from the snapshot fetches the issuer's keys
# (and reads its settings) afresh rather than trusting what the snapshot held.
snapstart.register(after_restore=[auth.reset_cache])

"""``Idempotency-Key``: Powertools' idempotency utility over our own PostgreSQL table.

Stripe's rules (CONTRACT.md): a retry with the same key and the same request within 24 hours gets
the first response again and creates nothing; the same key with a different request is refused;
keys are scoped to the caller (the hashed key covers the caller and the key).

Powertools writes an in-progress record, runs the function, then stores its response. Here all
three happen in the request's one database transaction, so the in-progress record is never
visible to anyone else: a concurrent request with the same key waits on its row (PostgreSQL's
unique-index wait) and then sees the stored response, or, if the first one failed, takes the key
itself. A request that crashes leaves nothing: its transaction is rolled back when its connection
closes, or by the server's ``idle_in_transaction_session_timeout`` if the client vanished without
closing it. So there is no window in which an event is created but its response not stored, and a
retry after a crash goes through (at once, or after that timeout). The in-progress expiry that
Powertools records (the invocation's remaining time) is still honoured for records from elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS, DataRecord
from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from reminders.errors import Conflict, InvalidInput
from reminders.models import IdempotencyRecord

RETENTION_SECONDS = 24 * 60 * 60
REPLAYED = "replayed"


class PostgresPersistenceLayer(BasePersistenceLayer):
    """Powertools' persistence layer on ``idempotency_records``, inside the caller's transaction
    (``session``): the caller commits the record together with what the function wrote."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self._session = session

    def _put_record(self, data_record: DataRecord) -> None:
        now = time.time()
        new = insert(IdempotencyRecord).values(
            key=data_record.idempotency_key,
            status=data_record.status,
            expiry_timestamp=data_record.expiry_timestamp,
            in_progress_expiry_timestamp=data_record.in_progress_expiry_timestamp,
            payload_hash=data_record.payload_hash,
            response_data=None,
        )
        stmt = new.on_conflict_do_update(
            index_elements=[IdempotencyRecord.key],
            set_={
                "status": new.excluded.status,
                "expiry_timestamp": new.excluded.expiry_timestamp,
                "in_progress_expiry_timestamp": new.excluded.in_progress_expiry_timestamp,
                "payload_hash": new.excluded.payload_hash,
                "response_data": None,
            },
            # Take the key over only from an expired record, or an in-progress one whose invocation timed out.
            where=or_(
                IdempotencyRecord.expiry_timestamp < int(now),
                and_(
                    IdempotencyRecord.status == STATUS_CONSTANTS["INPROGRESS"],
                    IdempotencyRecord.in_progress_expiry_timestamp < int(now * 1000),
                ),
            ),
        ).returning(IdempotencyRecord.key)
        if self._session.execute(stmt).first() is not None:
            return
        existing = self._get_record(data_record.idempotency_key)
        self._validate_payload(data_payload=data_record, stored_data_record=existing)
        raise IdempotencyItemAlreadyExistsError(old_data_record=existing)

    def _get_record(self, idempotency_key: str) -> DataRecord:
        row = self._session.scalars(select(IdempotencyRecord).where(IdempotencyRecord.key == idempotency_key)).first()
        if row is None:
            raise IdempotencyItemNotFoundError
        return DataRecord(
            idempotency_key=row.key,
            status=row.status,
            expiry_timestamp=row.expiry_timestamp,
            in_progress_expiry_timestamp=row.in_progress_expiry_timestamp,
            response_data=row.response_data or "",
            payload_hash=row.payload_hash,
        )

    def _update_record(self, data_record: DataRecord) -> None:
        self._session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == data_record.idempotency_key)
            .values(
                status=data_record.status,
                expiry_timestamp=data_record.expiry_timestamp,
                response_data=data_record.response_data,
                payload_hash=data_record.payload_hash,
            )
        )

    def _delete_record(self, data_record: DataRecord) -> None:
        # The function failed: rolling the request's transaction back removes the in-progress
        # record (never committed) together with anything the function wrote.
        self._session.rollback()


def _mark_replayed(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, REPLAYED: True} if isinstance(response, dict) else response


def respond_once(
    session: Session,
    *,
    caller: str,
    key: str,
    request: dict[str, Any],
    respond: Callable[[], dict[str, Any]],
    lambda_context: Any = None,
) -> tuple[dict[str, Any], bool]:
    """``respond()``'s JSON body, computed once per (caller, key) within 24 hours.

    Returns the body and whether it is a replay. Raises InvalidInput when the key was used with a
    different ``request``, Conflict when a request with it is still in progress, and lets
    ``respond``'s own errors through (nothing is stored for them, so a corrected retry may reuse
    the key).
    """
    config = IdempotencyConfig(
        event_key_jmespath="[caller, key]",
        payload_validation_jmespath="request",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=RETENTION_SECONDS,
        # Not md5: the hashed key is what scopes a key to its caller.
        hash_function="sha256",
        response_hook=_mark_replayed,
    )
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)

    @idempotent_function(
        data_keyword_argument="idempotent",
        persistence_store=PostgresPersistenceLayer(session),
        config=config,
        key_prefix="create_event",
    )
    def run(idempotent: dict[str, Any]) -> dict[str, Any]:
        return {"body": respond()}

    try:
        outcome = run(idempotent={"caller": caller, "key": key, "request": request})
    except IdempotencyValidationError:
        message = "this Idempotency-Key was used with a different request"
        raise InvalidInput(message, field="Idempotency-Key", location="header") from None
    except IdempotencyAlreadyInProgressError:
        raise Conflict("a request with this Idempotency-Key is in progress; retry shortly") from None
    return outcome["body"], bool(outcome.get(REPLAYED))

"""LocalStack ready hook: what the functions expect to find in the account.

- the sender identity (SENDER_EMAIL) verified in SES v1, checked, or LocalStack's start fails;
- the database secret (RDS's JSON shape) the functions read through DB_SECRET_ARN;
- the unsubscribe key secret, by the template's logical id (UNSUBSCRIBE_KEY_SECRET_ARN is that name
  under `sam local`; Secrets Manager takes a name where an ARN goes);
- the SES configuration set every send names (SES_CONFIGURATION_SET: the template's logical id
  when the template's Ref is not resolved by a deployment), so a send naming it is not refused.

LocalStack runs ``ready.d/*.py`` inside its own Python (boto3 is there); `make test-localstack`
runs the same file with LocalStack's interpreter in host mode. Idempotent: safe to run again.
"""

import contextlib
import json
import os
import secrets as secrets_module

import boto3

endpoint = os.environ.get("REMINDERS_INIT_ENDPOINT", "http://127.0.0.1:4566")
region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
sender = os.environ.get("SENDER_EMAIL", "reminders@example.com")
aws = boto3.session.Session(
    # LocalStack accepts any credentials; "test" is its documented default.
    aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
    aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    region_name=region,
)

ses = aws.client("ses", endpoint_url=endpoint)
ses.verify_email_identity(EmailAddress=sender)
attributes = ses.get_identity_verification_attributes(Identities=[sender])["VerificationAttributes"]
status = attributes.get(sender, {}).get("VerificationStatus")
if status != "Success":
    raise RuntimeError(f"SES identity {sender} is {status!r}, not verified")
print(f"reminders init: SES identity {sender} verified")

configuration_set = os.environ.get("REMINDERS_SES_CONFIGURATION_SET", "FeedbackConfigurationSet")
with contextlib.suppress(ses.exceptions.ConfigurationSetAlreadyExistsException):
    ses.create_configuration_set(ConfigurationSet={"Name": configuration_set})
print(f"reminders init: SES configuration set {configuration_set}")

secret_name = os.environ.get("REMINDERS_DB_SECRET_NAME", "event-reminders-db")
secret = {
    "engine": "postgres",
    "host": os.environ.get("REMINDERS_DB_HOST", "postgres"),
    "port": int(os.environ.get("REMINDERS_DB_PORT", "5432")),
    "username": os.environ.get("REMINDERS_DB_USER", "postgres"),
    "password": os.environ.get("REMINDERS_DB_PASSWORD", "postgres"),
    "dbname": os.environ.get("REMINDERS_DB_NAME", "reminders"),
}
secrets = aws.client("secretsmanager", endpoint_url=endpoint)
try:
    arn = secrets.create_secret(Name=secret_name, SecretString=json.dumps(secret))["ARN"]
except secrets.exceptions.ResourceExistsException:
    arn = secrets.put_secret_value(SecretId=secret_name, SecretString=json.dumps(secret))["ARN"]
print(f"reminders init: database secret {arn} ({secret['host']}:{secret['port']}/{secret['dbname']})")

unsubscribe_key = os.environ.get("REMINDERS_UNSUBSCRIBE_KEY_NAME", "UnsubscribeKey")
with contextlib.suppress(secrets.exceptions.ResourceExistsException):
    secrets.create_secret(Name=unsubscribe_key, SecretString=secrets_module.token_hex(32))
print(f"reminders init: unsubscribe key secret {unsubscribe_key}")

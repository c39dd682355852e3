#!/bin/sh
# Only used when the image is run on its own; SAM replaces the entrypoint with the emulator.
if [ -x /var/rapid/aws-lambda-rie ] && [ -z "${AWS_LAMBDA_RUNTIME_API:-}" ]; then
  exec /var/rapid/aws-lambda-rie /var/runtime/bootstrap "$@"
fi
exec /var/runtime/bootstrap "$@"

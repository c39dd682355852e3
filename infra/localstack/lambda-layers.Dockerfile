# The function image LocalStack's free edition needs: it does not mount Lambda layers, so the built
# layer (sam build's CommonLayer folder, the build context) is put where AWS mounts it, /opt.
# infra/ci/test-localstack.sh builds it after `sam build`; README "With Docker" shows the command.
ARG BASE=event-reminders/lambda-python:3.13
FROM ${BASE}
COPY . /opt/

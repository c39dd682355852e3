"""The Docker-free local runtime behind `make run`: API Gateway, Lambda, EventBridge schedules,
an AWS emulator and PostgreSQL on one machine, all read from template.yaml."""

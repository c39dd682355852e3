"""Event reminders: the domain package shared by every Lambda function (the common layer)."""

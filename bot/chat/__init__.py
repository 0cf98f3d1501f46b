"""The chat edge: the Slack app and its processes, the grammar, approvals, the approval card,
progress messages, configuration and start-up. Everything that knows about Slack lives here."""

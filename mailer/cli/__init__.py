"""Command modules, one per area; each exposes COMMANDS, a list of click commands."""

COMMAND_MODULES = [
    "build", "partners", "db", "lists", "subscribers", "serve", "dkim", "bounces", "send",
    "schedule", "check", "studio",
]

"""Command modules, one per area; each exposes COMMANDS, a list of click commands."""

COMMAND_MODULES = ["build", "db", "lists", "subscribers", "serve", "dkim", "bounces", "schedule"]

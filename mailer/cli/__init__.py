"""Command modules, one per area; each exposes COMMANDS, a list of click commands.

COMMANDS here maps every top-level command to its module and its one-line help, so `mailer
--help` lists them all and `mailer build` imports only `mailer.cli.build` (the database, HTTP and
feed libraries stay unloaded for commands that do not need them). A test keeps the summaries
equal to the commands' own help.
"""

COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("audit", "The audit trail: who did what, when, from where, and how it ended, oldest "
                       "first."),
    "bounces": ("bounces", "Bounce handling."),
    "build": ("build", "Build every region × audience variant of THEME into out/THEME/."),
    "check": ("check", "Is THEME ready to send? Placeholder blocks, links, images, alt text, Gmail "
                       "size, heading order, colour contrast and SpamAssassin (when installed)."),
    "calendar": ("schedule", "The content calendar, content/calendar.yaml: the planned mailings per "
                             "region."),
    "db": ("db", "Manage the database schema (SQLite by default, PostgreSQL through a URL)."),
    "dkim": ("dkim", "DKIM signing keys."),
    "doctor": ("doctor", "Check what a real send depends on and print the DNS records to publish."),
    "lists": ("lists", "Load and export the contact lists (CSV) of the regional networks."),
    "partners": ("partners", 'Partner publications that our mailings point to ("Van onze partners").'),
    "publish": ("publish", "Add the built mailing THEME to the archive and the feed without sending "
                           "it."),
    "preview": ("build", "Write a local preview page of THEME: a variant beside its text part, with "
                         "a segment picker."),
    "schedule": ("schedule", "Plan sends for a moment, per region and audience; list, cancel and "
                             "move them."),
    "scheduler": ("schedule", "Run the scheduler: start each planned send at its time and resume "
                              "interrupted ones."),
    "send": ("send", "Send the built mailing THEME to every subscriber of its topic in the segment."),
    "sends": ("send", "Look at and steer sends: list, show, pause, resume, cancel, work."),
    "serve": ("serve", "Serve the subscription pages (/aanmelden, /bevestig, /afmelden, /voorkeuren, "
                       "/privacy)."),
    "studio": ("studio", "Preview THEME as each reader gets it, live while you edit its files."),
    "subscribers": ("subscribers", "Show, find and remove subscribers."),
    "tokens": ("tokens", "Tokens for the REST API under /api/v1: add, list, revoke."),
    "users": ("users", "The team's accounts: add, list, set-role, disable, reset, totp."),
    "webhooks": ("webhooks", "Receivers of signed events: add, list, remove and test them."),
}

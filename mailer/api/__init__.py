"""The REST API under /api/v1 of `mailer serve`: subscribers, suppressions, sends, schedules,
mailings and the partners' sign-up, with scoped tokens, an OpenAPI 3.1 document and RFC 9457
problem details (docs/api.md).

It sits just below mailer.web, which mounts it and lends it the site's database, rate limiter
and sign-up (mailer.api.host).
"""

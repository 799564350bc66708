"""The team: accounts with a role and regions, passwords, log-ins with a lock after repeated
failures, and the browser sessions of the studio."""

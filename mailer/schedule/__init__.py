"""Schedules, the scheduler process and the content calendar."""

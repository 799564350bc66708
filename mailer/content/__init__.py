"""Load and validate content/<theme>/ into dataclasses; select blocks per segment."""

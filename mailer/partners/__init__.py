"""Partner feeds in, publications stored, suggestions out."""

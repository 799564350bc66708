"""Variants, web pages, bundle, archive and feed, written atomically to out/."""

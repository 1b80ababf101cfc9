"""Ray sampling and volume rendering."""

"""Input sources: STAC search against an API or a static catalog."""

"""Publishing: COG writing and STAC I/O over fsspec storage."""

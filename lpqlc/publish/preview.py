"""Previews live in :mod:`lpqlc.preview` (below both :mod:`lpqlc.composite` and :mod:`lpqlc.publish`);
this name stays for the modules that import it from here."""

from lpqlc.preview import mosaic_tiles, png_bytes, write_png

__all__ = ["mosaic_tiles", "png_bytes", "write_png"]

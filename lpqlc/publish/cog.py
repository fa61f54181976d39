"""COG writing lives in :mod:`lpqlc.cog` (below both :mod:`lpqlc.composite` and :mod:`lpqlc.publish`);
this name stays for the modules that import it from here."""

from lpqlc.cog import Resampling, cog_bytes, hex_to_rgba, write_cog

__all__ = ["Resampling", "cog_bytes", "write_cog", "hex_to_rgba"]

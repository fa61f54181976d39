"""pystac I/O over fsspec, so static catalogs are read from (and written to) local paths or S3 alike."""

from __future__ import annotations

from typing import Any

import pystac
from pystac.stac_io import DefaultStacIO

from lpqlc.storage import Store, open_filesystem, parse_storage_url, write_bytes

__all__ = ["FsspecStacIO", "read_catalog"]


class FsspecStacIO(DefaultStacIO):
    """Reads ``s3://`` and local hrefs through fsspec; http(s) through pystac's default."""

    def __init__(self, store: Store | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.store = store

    def read_text_from_href(self, href: str) -> str:
        if href.startswith(("http://", "https://")):
            return super().read_text_from_href(href)
        loc = parse_storage_url(href, what="STAC href")
        path = loc.root
        with open_filesystem(loc, self.store).open(path, "r", encoding="utf-8") as fh:
            return str(fh.read())

    def write_text_to_href(self, href: str, txt: str) -> None:
        write_bytes(href, txt.encode("utf-8"), self.store)


def read_catalog(href: str, store: Store | None = None) -> pystac.Catalog:
    """Open a static catalog (``catalog.json``) from a local path or S3 URL."""
    return pystac.Catalog.from_file(href, stac_io=FsspecStacIO(store))



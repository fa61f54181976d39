"""The local data plane of real servers (S3, PostgreSQL/pgstac, STAC API) on 127.0.0.1."""

from lpqlc.stack.local import LocalStack, StackState

__all__ = ["LocalStack", "StackState"]

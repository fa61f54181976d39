"""The paper's analyses of the published products (SCIENCE.md §4): areas, transitions, trends, erosion."""

__all__: list[str] = []

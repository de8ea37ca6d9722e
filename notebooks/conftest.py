"""nbval settings for the notebooks.

nbval waits a fixed 5 s for a cell's outputs once the kernel reports the cell finished. On a
loaded 2-core machine the PNG figures and interactive views of a cell can take longer than that
to arrive, and nbval then fails a cell that ran correctly. Give them longer.
"""

OUTPUT_TIMEOUT_S = 120


def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):   # nbval's notebook cells
            item.output_timeout = OUTPUT_TIMEOUT_S

"""dsen2 in ESA SNAP: a Standalone Tool Adapter (``gpt DSen2``, Graph Builder, menus) that runs
``dsen2 run``, an in-process Python GPF operator (``gpt DSen2Tiles``, esa_snappy) and their
installer (``dsen2 snap install``). Nothing here imports SNAP's bridge at import time."""

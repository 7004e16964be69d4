"""``explain``: several cam and attribution methods side by side for one image.

``analysis`` holds the options, the result (a panel per method) and the entry point; each method
runs through its own analysis, ``cam`` or ``attribute``, through their public functions.
"""

"""``faithfulness``: deletion and insertion curves of any cam or attribute method.

``analysis`` holds the options, the result and the entry point; ``curves`` the perturbations and
the batched scoring; ``maps`` runs any cam or attribute method to its (H, W) map, and declares the
options those methods take (``sanity`` reads it too). DESIGN.md, "`sanity` and `faithfulness`", is
the contract.
"""

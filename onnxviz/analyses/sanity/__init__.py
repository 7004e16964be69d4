"""``sanity``: cascading model-parameter randomisation (Adebayo et al. 2018).

``analysis`` holds the options, the result and the entry point; ``randomise`` the order of the
parameterised nodes, the contract's draws and the randomised models built in memory;
``similarity`` Spearman's ρ and SSIM from their definitions. DESIGN.md, "`sanity` and
`faithfulness`", is the contract.
"""

"""``attribute``: input-space attributions of a target's score, one method per entry of a table.

``analysis`` holds the options, the result and the entry point; ``methods`` the gradient methods
(saliency, inputxgrad, ig, the noise tunnel, deconvnet, guided) on the gradient engine;
``guided_gradcam`` guided backpropagation times cam's Grad-CAM map; ``rise`` the masks of the
gradient-free RISE. DESIGN.md, "`attribute`: input-space attributions", is the
contract every definition follows.
"""

"""``cam``: class activation maps, which positions of a layer raise a target's score.

``methods`` holds the method table (each method one small function of the layer's activation A
and gradient G), ``layers`` chooses and checks the layers, ``analysis`` runs them on a batch of
images through the layer-gradient engine.
"""

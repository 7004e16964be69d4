"""Guided Grad-CAM (Selvaraju et al. 2017): guided backpropagation, which is sharp but not class
discriminative, times the Grad-CAM map of a layer, which is class discriminative but coarse.

The Grad-CAM map is exactly what ``cam --method gradcam --raw`` gives for the same images, target
and layer (pytorch-grad-cam's normalised output at the input size, the default layer being cam's),
broadcast over the input's channels in its layout.
"""

from __future__ import annotations

import numpy as np

from onnxviz.analyses.attribute.methods import Attributed, Job
from onnxviz.analyses.cam.analysis import CamOptions, cam


def guided_gradcam(job: Job) -> Attributed:
    """Each image's guided backpropagation ⊙ its Grad-CAM heatmap at ``job.options.layer``."""
    guided = job.gradients(job.x, np.arange(len(job.x)), "guided")
    options = CamOptions(method="gradcam", layer=job.options.layer, target=job.options.target)
    heatmaps = cam(job.model, list(job.x), options).heatmaps
    spread = heatmaps[..., None] if job.model.layout == "nhwc" else heatmaps[:, None]
    return (guided * spread).astype(np.float32), None

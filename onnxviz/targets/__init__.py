"""What "the score" of an explanation is: a class, one element of a tensor, a feature map.

Every method that explains a score (occlusion today; cams, attributions, sanity and faithfulness
checks next) takes one ``Target`` and asks it the same four things: which tensor to read
(``Target.tensor``), what the score is for one image (``Target.resolve``: a ``ResolvedTarget``,
e.g. the image's own top-1 class), the score of a batch of forward values
(``ResolvedTarget.scores``) and the seed that starts the inverse from it (``seeds``). Each
resolved target reports itself in JSON as ``{"kind", "class", "index", "box", "score"}``.

A kind is one class: ``ClassTarget`` (``targets.classes``), ``ElementTarget`` and
``ChannelTarget`` (``targets.tensors``), ``FixedTarget`` (``targets.fixed``: another run's resolved
target, as the sanity checks explain the original model's choice on randomised models),
``BoxTarget`` and ``DetectionTarget`` (``targets.detections``, reading a detector's output
through ``targets.layouts``), ``MaskTarget`` (``targets.masks``);
``targets.spelling.parse_target`` reads the spellings users type. A new kind is one more class
and, if it has a spelling, one entry in ``targets.spelling.SPELLED_KINDS``. A kind whose score is
not one slice of the tensor overrides ``ResolvedTarget.scores`` and ``seed_into`` (a detection
re-matched on perturbed copies, a mask's weighted sum).
"""

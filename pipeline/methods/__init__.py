"""Registry of transfer methods. A method is a module with a `Config` (subclass of
`pipeline.config.MethodConfig`) and `build_labels(cfg, ctx) -> LabelSet`; adding one is one new
module plus one line here.
"""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LabelSet:
    """What the strong model is trained on for split B: target distributions [n, 2] and diagnostics."""

    targets: np.ndarray
    diagnostics: dict = field(default_factory=dict)


from pipeline.methods import aux_conf, graph_smooth, naive, refine, selective  # noqa: E402  (they import LabelSet here)

METHODS = {"naive": naive, "aux_conf": aux_conf, "graph_smooth": graph_smooth, "selective": selective,
           "refine": refine}

"""Registry of transfer methods. A method is a module with a `Config` (a `MethodConfig` subclass) and
`build_labels(cfg, ctx) -> LabelSet` (see `pipeline.methods.base`); adding one is one new module plus
one line here.
"""

from pipeline.methods import aux_conf, ensemble, graph_smooth, naive, refine, selective, uniform

METHODS = {"naive": naive, "aux_conf": aux_conf, "graph_smooth": graph_smooth, "selective": selective,
           "refine": refine, "ensemble": ensemble, "uniform": uniform}

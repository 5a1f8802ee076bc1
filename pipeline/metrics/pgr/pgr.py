"""`evaluate` module for performance gap recovered, loadable offline by path:

    evaluate.load("<w2s checkout>/pipeline/metrics/pgr")
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Performance gap recovered, PGR = (transfer - weak) / (ceiling - weak), for accuracy and AUROC,
with paired-bootstrap confidence intervals (Burns et al. 2023). Inputs are P(class 1) of the three
models on the same test examples. PGR is None with a reason when ceiling - weak is within noise."""

_KWARGS = """
Args:
    references: gold labels (0/1).
    weak_scores, transfer_scores, ceiling_scores: P(class 1) of each model.
    n_boot (int, default 1000), ci (float, default 0.95), seed (int, default 0).
Returns:
    dict with `accuracy` and `auroc`, each {"value", "ci95", "gap", "gap_ci95"[, "reason"]}.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Pgr(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Burns et al., Weak-to-Strong Generalization, 2023",
            inputs_description=_KWARGS,
            features=datasets.Features({
                "references": datasets.Value("int64"),
                "weak_scores": datasets.Value("float64"),
                "transfer_scores": datasets.Value("float64"),
                "ceiling_scores": datasets.Value("float64"),
            }),
        )

    def _compute(self, references, weak_scores, transfer_scores, ceiling_scores, n_boot=1000, ci=0.95, seed=0):
        from pipeline.metrics import evaluate_predictions

        probs = {"weak": np.asarray(weak_scores), "transfer": np.asarray(transfer_scores),
                 "ceiling": np.asarray(ceiling_scores)}
        result = evaluate_predictions(np.asarray(references), probs, "weak", "ceiling", n_boot, ci, seed)
        return result["pgr"]["transfer"]

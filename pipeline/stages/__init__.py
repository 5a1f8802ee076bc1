"""The stages, one module each, and the plan: the order the runner executes them in.

Adding a stage is one module defining `STAGE` (see `pipeline.stages.base`) plus one line in `PLAN`.
"""

from pipeline.stages import ceiling, data, evaluate, report, theory, transfer, weak

PLAN = [data.STAGE, weak.STAGE, ceiling.STAGE, transfer.STAGE, evaluate.STAGE, theory.STAGE, report.STAGE]
STAGES = {s.name: s for s in PLAN}

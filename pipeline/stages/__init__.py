"""The stages, one module each, and the plan: the order the runner executes them in.

Adding a stage is one module defining `STAGE` (see `pipeline.stages.base`) plus one line in `PLAN`.
"""

from collections.abc import Mapping

from pipeline.stages import ceiling, data, evaluate, report, theory, transfer, weak

PLAN = [data.STAGE, weak.STAGE, ceiling.STAGE, transfer.STAGE, evaluate.STAGE, theory.STAGE, report.STAGE]


class _ByName(Mapping):
    """PLAN's stages by name, read from PLAN at each lookup: a stage added to PLAN needs no second line."""

    def __getitem__(self, name):
        return {s.name: s for s in PLAN}[name]

    def __iter__(self):
        return iter([s.name for s in PLAN])

    def __len__(self) -> int:
        return len(PLAN)


STAGES = _ByName()

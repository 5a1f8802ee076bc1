"""Theory stage: the synthetic settings (`pipeline/theory/`), seconds of CPU work on the main process;
cached by its own config alone (also run alone by `w2s theory`)."""

from pipeline import rundir, theory
from pipeline.stages.base import Job, Stage, once


def run(job: Job) -> dict:
    if not job.is_main:  # one process does it
        return {}
    m = theory.run(job.recipe.theory, job.folder, progress=job.progress)
    held = [p for p in m.get("predictions", []) if p.get("held") is not None]
    m["summary"] = f"{sum(p['held'] for p in held)}/{len(held)} theory predictions held" if held else "done"
    return m


STAGE = Stage(name="theory", inputs=(), units=once, key=lambda r, u: [rundir.as_data(r.theory)],
              folder=lambda run, unit: run.stage_dir("theory"), run=run, enabled=lambda r: r.theory.enabled)

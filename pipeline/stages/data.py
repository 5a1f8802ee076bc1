"""Data stage: load the source, map labels, draw the A / B / test split, save each split (`datasets` on
disk) and a manifest. Once per run, or once per training seed with `data.vary_split`."""

from pipeline import data, rundir, tasks
from pipeline.stages.base import Job, Stage, Unit, once, per_seed


def split_seed(recipe, seed) -> int:
    return recipe.data.seed + (seed if recipe.data.vary_split else 0)


def units(recipe) -> list[Unit]:
    return per_seed(recipe) if recipe.data.vary_split else once(recipe)


def key(recipe, unit: Unit) -> list:
    # the file's identity (path, size, mtime) as well as the settings: an edited file is a new split
    parts = [rundir.as_data(recipe.data), data.file_fingerprint(recipe.data), recipe.task]
    # weak models' own source data, once per split: which methods list a teacher does not change the split
    own = {split: src for _, split, src in data.weak_sources(recipe)}
    for split, src in sorted(own.items()):
        parts.append([split, rundir.as_data(src), data.file_fingerprint(data.source_cfg(recipe.data, src))])
    return parts + ([split_seed(recipe, unit.seed)] if recipe.data.vary_split else [])


def run(job: Job) -> dict:
    r = job.recipe
    task = tasks.of(r)
    seed = split_seed(r, job.unit.seed)
    source = task.load(r.data)
    parts = task.split(source, r.data, seed)
    manifest = {"source": source.info, "splits": {}}
    if r.task == "generation":  # answers have no classes to balance
        manifest["split"] = "random"
    else:
        manifest["balanced"] = r.data.balance
    splits = {name: (idx, [source.texts[i] for i in idx], source.labels[idx]) for name, idx in parts.items()}
    for split, (texts, labels, idx, info) in data.weak_source_splits(r, source, parts, seed).items():
        splits[split] = (idx, texts, labels)
        manifest.setdefault("weak_sources", {})[split] = info
    for name, (idx, split_texts, split_labels) in splits.items():
        if job.is_main:
            rundir.atomic_write(job.folder / name,
                                lambda p, t=split_texts, i=idx, y=split_labels: save_split(p, i, t, y))
        stats = {"size": len(idx)}
        if split_labels.dtype != object:  # 0/1 labels (a generation task's are reference answers)
            stats["positive_rate"] = float(split_labels.mean())
        manifest["splits"][name] = {**stats, "sha256_16": data.fingerprint(split_texts, split_labels)}
    sizes = ", ".join(f"{k} {v['size']}" for k, v in manifest["splits"].items())
    how = "random" if r.task == "generation" else "balanced" if r.data.balance else "natural class ratio"
    native = ", test from the data's own test split" if source.info.get("native_splits") else ""
    dropped = f"; {source.info['dropped']} row(s) dropped (empty text or missing label)" \
        if source.info.get("dropped") else ""
    own = "".join(f"; {k} drawn from {v['source']}" + (f" ({v['left_out_overlap']} text(s) also in B / test / "
                                                        "test_ood left out)" if v["left_out_overlap"] else "")
                  for k, v in manifest.get("weak_sources", {}).items())
    manifest["summary"] = f"{r.data.name or r.data.path}: {sizes} ({how}{native}, split seed {seed}){dropped}{own}"
    return manifest


def save_split(target, ids, texts: list, labels) -> None:
    """One split as a `datasets` folder: id, text, label (0/1, or a generation task's reference answer); a
    preference pair's second text as `text_b`."""
    import datasets

    columns = {"id": [int(i) for i in ids], **rundir.text_columns(texts),
               "label": [y if isinstance(y, str) else int(y) for y in labels]}
    datasets.Dataset.from_dict(columns).save_to_disk(str(target))


# the task's loaders are `pipeline.data`'s (imported here): training code in the task module is not the
# split's business, so editing it does not redraw the split
STAGE = Stage(name="data", inputs=(), units=units, key=key,
              folder=lambda run, unit: run.data_dir(unit.seed), run=run, task_code=False)

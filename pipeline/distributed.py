"""The one place an `Accelerator` is built from a recipe (precision, trackers); hardware comes from
`accelerate launch` and its config file (recipes/accelerate/)."""


def make_accelerator(recipe, run_dir=None):
    from accelerate import Accelerator

    kwargs = {}
    if recipe.runtime.mixed_precision is not None:
        kwargs["mixed_precision"] = recipe.runtime.mixed_precision
    return Accelerator(**kwargs)

"""Recipes: `schema` (the dataclasses, with help text) and `loading` (YAML, overrides, validation).

Import from the submodules; this package file stays empty so that low layers (losses, theory) can
use `pipeline.config.fields` without pulling in the loader and its registries.
"""

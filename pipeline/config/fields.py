"""The one helper every config dataclass uses: a field with help text (the source of `w2s keys`)."""

from dataclasses import field


def help_field(text: str, **kw):
    """`dataclasses.field` carrying `help` metadata."""
    return field(metadata={"help": text}, **kw)

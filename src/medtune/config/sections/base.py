"""One module per RunConfig section; each stage receives only its own section."""
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


class Section(BaseModel):
    """Base of every config section: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def split_commas(value: Any) -> Any:
    """``"f16, q8_0"`` -> ``["f16", "q8_0"]``; lists pass through with comma items split too.

    >>> split_commas("f16, q8_0"), split_commas(["mcq,open", "diagnosis"])
    (['f16', 'q8_0'], ['mcq', 'open', 'diagnosis'])
    """
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple):
        return [v.strip() for item in value for v in (item.split(",") if isinstance(item, str) else [item])
                if not isinstance(v, str) or v.strip()]
    return value


# A list of names that a YAML list, a comma-separated string or a repeated CLI flag can give.
CommaList = Annotated[list[str], BeforeValidator(split_commas)]

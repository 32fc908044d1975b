"""The one typed entry to ``pandas_udf`` used by every stage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pyspark.sql import functions as F
from pyspark.sql import types as T

Fn = TypeVar("Fn", bound=Callable[..., Any])


def pandas_udf(return_type: T.DataType) -> Callable[[Fn], Any]:
    """``F.pandas_udf(return_type)`` as a decorator; the kind (series or iterator) comes from the type hints."""
    # pyspark's stubs overload pandas_udf on literal function types only, so mypy cannot match a decorator
    # call with a DataType: the one suppression for every pandas UDF of the package lives here.
    return F.pandas_udf(return_type)  # type: ignore[call-overload]

"""The typed entries to Spark's Python UDFs used by every stage: ``pandas_udf`` and ``python_udf``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

Fn = TypeVar("Fn", bound=Callable[..., Any])


def python_udf(fn: Callable[..., Any], return_type: T.DataType) -> Callable[..., Column]:
    """A row-at-a-time Python UDF, fed in Arrow batches on every runtime: Spark 4.2 turns Arrow on by default
    (``spark.sql.execution.pythonUDF.arrow.enabled``) where 3.5 to 4.1 pickle rows, and asked without
    ``useArrow`` it tries to read a pandas signature from the type hints, warning on each plain one."""
    return F.udf(fn, return_type, useArrow=True)


def pandas_udf(return_type: T.DataType) -> Callable[[Fn], Any]:
    """``F.pandas_udf(return_type)`` as a decorator; the kind (series or iterator) comes from the type hints.
    The UDF itself is made when first applied (``_Deferred``), so a module's UDFs serve any session."""
    def wrap(fn: Fn) -> _Deferred:
        return _Deferred(fn, return_type)

    return wrap


class _Deferred:
    """A pandas UDF made when it is applied, not when its module is imported: Spark 3.5 fixes a UDF's kind
    (classic or Spark Connect) at creation, from whether a Connect session exists by then, and a module is
    imported before the session is built."""

    def __init__(self, fn: Callable[..., Any], return_type: T.DataType):
        functools.update_wrapper(self, fn)
        self.fn, self.return_type = fn, return_type
        self._made: dict[bool, Any] = {}

    def __call__(self, *cols: Column | str) -> Column:
        from pyspark.sql.utils import is_remote

        remote = bool(is_remote())
        if remote not in self._made:
            # pyspark's stubs overload pandas_udf on literal function types only, so mypy cannot match a call
            # with a DataType: the one suppression for every pandas UDF of the package lives here.
            self._made[remote] = F.pandas_udf(self.fn, self.return_type)  # type: ignore[call-overload]
        return self._made[remote](*cols)

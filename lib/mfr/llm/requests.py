"""Request rows: one chat request per row of a DataFrame (a prompt with the row's fields, the image as its own
message part, a deterministic ``request_key``), and an ``Ask``: one purpose's requests with their client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mfr.llm.client import ClientSettings
from mfr.vectorized import pandas_udf

# Columns of a request row handed to call_models.
REQUEST_COLUMNS = [
    "request_key", "sample_key", "purpose", "model", "prompt_version", "sample_index",
    "messages_json", "params_json", "image_id",
]
IMAGE_URL = "$IMAGE"  # the image part's URL until a call task puts the image's data URL there
IMAGE_PLACEHOLDER = {"type": "image_url", "image_url": {"url": IMAGE_URL}}


_BUILT = T.StructType(
    [T.StructField("request_key", T.StringType()), T.StructField("messages_json", T.StringType()),
     T.StructField("params_json", T.StringType())]
)


def build_requests(
    df: DataFrame,
    *,
    purpose: str,
    model: str,
    template: str,
    prompt_version: str,
    params: dict[str, Any],
    fields: list[str],
    with_image: bool,
    seed_base: int | None = None,
) -> DataFrame:
    """One chat request per row of ``df`` (sample_key, image_id, sample_index?, ``fields``).

    ``{field}`` placeholders of ``template`` are filled from the row (``<image>`` tags dropped: the image
    travels as its own message part). With ``seed_base`` the request's seed is seed_base + sample_index,
    so a resample is a new request with its own key.
    """
    from mfr.llm.keys import request_key

    index_col = F.col("sample_index") if "sample_index" in df.columns else F.lit(0)

    @pandas_udf(_BUILT)
    def build(values: pd.DataFrame) -> pd.DataFrame:
        out = []
        for row in values.to_dict("records"):
            text = template
            for f in fields:
                text = text.replace("{" + f + "}", str(row[f] or "").replace("<image>", "").strip())
            content = ([IMAGE_PLACEHOLDER] if with_image and row["image_id"] else []) + [{"type": "text", "text": text}]
            index = int(row["_index"])
            p = dict(params) if seed_base is None else {**params, "seed": seed_base + index}
            key = request_key(row["sample_key"], purpose, prompt_version, model, p, index)
            out.append((key, json.dumps([{"role": "user", "content": content}], ensure_ascii=False), json.dumps(p)))
        return pd.DataFrame(out, columns=["request_key", "messages_json", "params_json"])

    built = df.withColumn("_r", build(F.struct("sample_key", "image_id", index_col.alias("_index"), *fields)))
    return built.select(
        F.col("_r.request_key").alias("request_key"), "sample_key", F.lit(purpose).alias("purpose"),
        F.lit(model).alias("model"), F.lit(prompt_version).alias("prompt_version"),
        index_col.cast("int").alias("sample_index"), F.col("_r.messages_json").alias("messages_json"),
        F.col("_r.params_json").alias("params_json"), "image_id",
    )


def prompt_requests(df: DataFrame, *, purpose: str, settings: ClientSettings, prompt: str,
                    params: dict[str, Any], fields: list[str], with_image: bool) -> DataFrame:
    """One request per row of ``df`` with the prompt file ``prompt`` (its ``{field}`` slots filled)."""
    from mfr.prompts import load_prompt

    template, version = load_prompt(prompt)
    return build_requests(df, purpose=purpose, model=settings.model, template=template, prompt_version=version,
                          params=params, fields=fields, with_image=with_image)


@dataclass
class Ask:
    """One purpose's requests (REQUEST_COLUMNS) and the client that answers them; ``label`` is the
    requests' purpose (it names the call's journals, commits and progress line)."""
    requests: DataFrame
    settings: ClientSettings
    label: str

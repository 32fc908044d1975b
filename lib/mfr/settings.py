"""Typed configuration sections, built once from the validated YAML (``Config.settings``).

Why plain frozen dataclasses and not pydantic: ``mfr.config.SCHEMA`` already validates every key, type and
default (and names the file and key in its errors); these classes only give the validated values types that
mypy checks at every use. So they carry no defaults of their own: a default lives once, in the schema, and
a test keeps the fields of these classes equal to the schema's keys.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ClientConfig:
    api_base: str | list[str] | None
    model: str | None
    api_key_env: str | None
    max_concurrency: int
    timeout_s: float
    max_attempts: int
    connect_timeout_s: float
    backoff_base_s: float
    backoff_max_s: float
    breaker_cooldown_s: float
    requests_per_s: float | None
    tokens_per_min: float | None
    response_format: dict[str, Any] | None
    extra_body: dict[str, Any] | None

    @property
    def configured(self) -> bool:
        return bool(self.api_base)


@dataclass(frozen=True)
class LakehouseConfig:
    catalog: str | None
    schema: str
    warehouse: str
    location: str | None
    keep_versions_days: float | None


@dataclass(frozen=True)
class SparkConfig:
    master: str | None
    remote: str | None
    app_name: str
    shuffle_partitions: int | None
    conf: dict[str, Any]
    local_paths_shared: bool | None


@dataclass(frozen=True)
class CollectionConfig:
    source: str
    subsets: list[str] | None
    max_samples: int | None
    cache_dir: str | None
    download_workers: int
    revision: str | None
    cot_model: str
    caption_model: str


@dataclass(frozen=True)
class NearDupConfig:
    enabled: bool
    question_jaccard: float
    image_bits: int
    template_images: int
    template_bits: int
    num_perm: int
    bands: int
    max_bucket: int
    neighbours: int
    max_rounds: int
    source_priority: list[str]


@dataclass(frozen=True)
class CleaningConfig:
    max_image_size: int
    clean_images: bool
    max_image_pixels: int
    image_batch_rows: int
    input_column: str
    dedup: bool
    near_dup: NearDupConfig
    prompt: str
    answer_prompt: str
    max_tokens: int
    temperature: float
    llm_client: ClientConfig


@dataclass(frozen=True)
class DecontaminationConfig:
    benchmarks: list[dict[str, Any]]
    ngram: int
    short_min_words: int
    image_bits: int
    question_jaccard: float
    text_needs_image: bool


@dataclass(frozen=True)
class CotConfig:
    client: ClientConfig
    temperature: float
    top_p: float
    max_tokens: int
    thinking: bool
    seed: int
    max_resamples: int
    min_words: int
    prompt: str
    regenerate_on: list[str]
    max_regenerations: int


@dataclass(frozen=True)
class CaptionConfig:
    client: ClientConfig
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    max_resamples: int
    min_words: int | None
    prompt: str


@dataclass(frozen=True)
class DistillationConfig:
    overwrite: bool
    input_table: str | None
    cot: CotConfig
    caption: CaptionConfig


@dataclass(frozen=True)
class ContentConfig:
    min_response_words: int
    min_caption_words: int
    error_keyword: str


@dataclass(frozen=True)
class StructureConfig:
    no_answer_check_sources: list[str]


@dataclass(frozen=True)
class QualityConfig:
    ngram_n: int
    ngram_freq: int
    consistency: bool


@dataclass(frozen=True)
class ConsistencyConfig:
    gate: str


@dataclass(frozen=True)
class VerifyConfig:
    client: ClientConfig
    prompt: str
    max_tokens: int
    temperature: float


@dataclass(frozen=True)
class DifficultyConfig:
    threshold: float | None
    num_samples: int
    client: ClientConfig
    prompt: str
    max_tokens: int
    temperature: float
    top_p: float


@dataclass(frozen=True)
class SelectionConfig:
    content: ContentConfig
    structure: StructureConfig
    quality: QualityConfig
    consistency: ConsistencyConfig
    verify: VerifyConfig
    difficulty: DifficultyConfig


@dataclass(frozen=True)
class StorageConfig:
    options: dict[str, Any]


@dataclass(frozen=True)
class RunsConfig:
    incremental: bool
    heartbeat_s: float
    abandon_after_s: float
    single_writer: bool | None


@dataclass(frozen=True)
class LlmConfig:
    staging_dir: str | None
    shard_size: int
    commit_interval_s: float
    commit_mb: float
    progress_interval_s: float
    tasks: int | None


@dataclass(frozen=True)
class RlConfig:
    rows: int | None
    seed: int
    exclude_from_sft: bool


@dataclass(frozen=True)
class HfConfig:
    repo_id: str | None
    token_env: str | None
    private: bool
    endpoint: str | None


@dataclass(frozen=True)
class ExportConfig:
    out: str | None
    overwrite: bool
    subset: str
    formats: list[str]
    thinking: bool
    caption_in_answer: bool
    shard_rows: int
    table_version: int | None
    select_run: str | None
    rl: RlConfig
    hf: HfConfig


@dataclass(frozen=True)
class Settings:
    lakehouse: LakehouseConfig
    spark: SparkConfig
    collection: CollectionConfig
    cleaning: CleaningConfig
    decontamination: DecontaminationConfig
    distillation: DistillationConfig
    selection: SelectionConfig
    storage: StorageConfig
    runs: RunsConfig
    llm: LlmConfig
    export: ExportConfig


def build(cls: type[T], data: dict[str, Any]) -> T:
    """``cls`` from a validated mapping: nested sections become their dataclasses, leaves are taken as
    they are (the schema has checked their types)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # cls is a dataclass by construction
        hint = hints[f.name]
        values[f.name] = build(hint, data[f.name]) if isinstance(hint, type) and dataclasses.is_dataclass(hint) else data[f.name]
    return cls(**values)


def section_keys(cls: type) -> dict[str, Any]:
    """The key tree of a settings class (leaves None), to compare with the schema's."""
    hints = typing.get_type_hints(cls)
    return {f.name: section_keys(hints[f.name]) if dataclasses.is_dataclass(hints[f.name]) else None
            for f in dataclasses.fields(cls)}

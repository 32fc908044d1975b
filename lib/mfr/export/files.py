"""Writers that run inside Spark tasks: one partition → one deterministic file, written whole.

Nothing here talks to the driver; each function gets a partition's rows, the partition id and the
``Storage`` to write through (local folder, Volume or object store). Every file is one whole object
(``Storage.write_bytes``), so a retried task never leaves half a file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from mfr.storage import Storage, join


def write_jsonl_part(storage: Storage, rows: Iterable[Any], folder: str, part: int, column: str = "record") -> int:
    """Rows' ``column`` (JSON text) as ``<folder>/part-NNNNN.jsonl``; nothing for an empty partition."""
    lines = [r[column] for r in rows]
    if not lines:
        return 0
    storage.write_bytes(join(folder, f"part-{part:05d}.jsonl"), ("\n".join(lines) + "\n").encode("utf-8"))
    return len(lines)


def write_images(storage: Storage, rows: Iterable[Any], root: str) -> int:
    """Each row's ``bytes`` at ``<root>/<file>``; an existing file of the same size is left alone."""
    written = 0
    for r in rows:
        path = join(root, *r["file"].split("/"))
        data = r["bytes"]
        if storage.size(path) == len(data):
            continue
        storage.write_bytes(path, data)
        written += 1
    return written


def write_hf_part(storage: Storage, rows: Iterable[Any], folder: str, split: str, part: int, parts: int) -> int:
    """Rows (already in the dump's column names) as ``<folder>/<split>-NNNNN-of-MMMMM.parquet``.

    Every part is written, empty ones too, so the ``-of-MMMMM`` names always form a complete set.
    """
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mfr.dump.layout import dump_arrow_schema

    schema = dump_arrow_schema()
    records = [r.asDict(recursive=True) if hasattr(r, "asDict") else dict(r) for r in rows]
    columns = {f.name: [rec.get(f.name) for rec in records] for f in schema}
    table = pa.Table.from_pydict(columns, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=1000)
    storage.write_bytes(join(folder, f"{split}-{part:05d}-of-{parts:05d}.parquet"), buf.getvalue())
    return len(records)


def write_json(storage: Storage, path: str, value: Any) -> None:
    storage.write_text(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")

"""An embedding store as a Parquet table, for pandas, Polars, DuckDB and Ray.

One row per file (``path``, ``status``, ``error``, ``duration_s``, ``embedding``: a fixed-size
list of float32, null when failed) or per segment (``path``, ``start_s``, ``end_s``,
``embedding``). The store's root attributes go into the schema metadata under their own names
(non-string values as JSON). Rows are read from the HDF5 store and written a row group at a
time, so memory follows ``rows_per_group``, not the store's length; the file is written under
a temporary name and renamed, so ``OUT.parquet`` is never half-written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mclx.errors import StoreError, UsageError
from mclx.store.read import read_attrs

ROWS_PER_GROUP = 65_536
LEVELS = ("global", "segments")


def require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise UsageError("export needs pyarrow: pip install 'mclx[export]'") from None
    return pyarrow


def parquet_metadata(attrs: dict[str, Any]) -> dict[bytes, bytes]:
    """The store's root attributes as Parquet key/value metadata (strings as they are, else JSON)."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, np.generic):
            value = value.item()
        out[key.encode()] = (value if isinstance(value, str) else json.dumps(value)).encode()
    return out


def _strings(ds: Any, lo: int, hi: int) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in ds[lo:hi]]


def export_parquet(store: str, out: str, level: str = "global", rows_per_group: int = ROWS_PER_GROUP) -> int:
    """Writes ``out``; returns the number of rows written."""
    import h5py

    if level not in LEVELS:
        raise UsageError(f"--level {level}: choose global or segments")
    pa = require_pyarrow()
    import pyarrow.parquet as pq

    attrs = read_attrs(store)
    dim = int(attrs["dim"])
    vector = pa.list_(pa.float32(), dim)
    tmp = Path(out).with_name(f".{Path(out).name}.tmp-{os.getpid()}")
    with h5py.File(store, "r") as h:
        if level == "global" and "global" not in h:
            raise StoreError(f"{store}: made with --level {attrs['level']}: it has no global embeddings")
        if level == "segments" and "segments" not in h:
            raise StoreError(f"{store}: made with --level {attrs['level']}: it has no segment embeddings")
        if level == "global":
            fields = [("path", pa.string()), ("status", pa.string()), ("error", pa.string()),
                      ("duration_s", pa.float64()), ("embedding", vector)]  # fmt: skip
        else:
            fields = [("path", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64()),
                      ("embedding", vector)]  # fmt: skip
        schema = pa.schema(fields, metadata=parquet_metadata(attrs))
        rows = 0
        try:
            with pq.ParquetWriter(tmp, schema) as writer:
                for batch in (_file_batches if level == "global" else _segment_batches)(
                    h, rows_per_group, pa, vector
                ):
                    writer.write_table(
                        pa.Table.from_arrays(batch, schema=schema), row_group_size=rows_per_group
                    )
                    rows += len(batch[0])
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return rows


def _vectors(pa: Any, vector: Any, x: np.ndarray, ok: np.ndarray) -> Any:
    """(n, D) float32 -> a FixedSizeListArray, null where not ``ok``."""
    values = pa.array(np.ascontiguousarray(x, dtype=np.float32).reshape(-1))
    mask = pa.array(~ok)
    return pa.FixedSizeListArray.from_arrays(values, type=vector, mask=mask)


def _file_batches(h: Any, size: int, pa: Any, vector: Any) -> Any:
    f = h["files"]
    n = len(f["path"])
    for lo in range(0, n, size):
        hi = min(n, lo + size)
        status = _strings(f["status"], lo, hi)
        ok = np.asarray([s == "ok" for s in status])
        x = np.nan_to_num(h["global"][lo:hi])  # failed rows are NaN in the store, null here
        path, error = pa.array(_strings(f["path"], lo, hi)), pa.array(_strings(f["error"], lo, hi))
        yield [path, pa.array(status), error, pa.array(f["duration_s"][lo:hi]), _vectors(pa, vector, x, ok)]


def _segment_batches(h: Any, size: int, pa: Any, vector: Any) -> Any:
    s = h["segments"]
    n = len(s["file"])
    paths = h["files/path"]
    for lo in range(0, n, size):
        hi = min(n, lo + size)
        files = s["file"][lo:hi]
        first, last = int(files.min()), int(files.max()) + 1 if len(files) else 0
        names = _strings(paths, first, last) if len(files) else []
        owners = pa.array([names[int(i) - first] for i in files], type=pa.string())
        x = _vectors(pa, vector, s["embedding"][lo:hi], np.ones(hi - lo, bool))
        yield [owners, pa.array(s["start_s"][lo:hi]), pa.array(s["end_s"][lo:hi]), x]

"""The HDF5 embedding store, shared by every wing: embed writes it, search, export and probe read it.

``records`` (one input file's row, the settings two stores must share), ``journal`` (a run's
finished files before the store is built), ``read`` and ``write`` (build, merge). The names
below are the store's public parts; none imports h5py before it is used.
"""

from __future__ import annotations

from mclx.store.read import (
    FINGERPRINT,
    FORMAT,
    FORMAT_VERSION,
    MEANS,
    Fingerprint,
    MatrixRows,
    StoreData,
    read_attrs,
    read_keys,
    read_store,
    store_fingerprint,
    store_mean,
    summarize,
)
from mclx.store.records import SETTINGS_KEYS, FileRecord, RowRef, attr_value, settings_mismatch
from mclx.store.write import StoreWriter, merge_stores, walk_order, write_store

__all__ = [
    "FINGERPRINT",
    "FORMAT",
    "FORMAT_VERSION",
    "MEANS",
    "SETTINGS_KEYS",
    "FileRecord",
    "Fingerprint",
    "MatrixRows",
    "RowRef",
    "StoreData",
    "StoreWriter",
    "attr_value",
    "merge_stores",
    "read_attrs",
    "read_keys",
    "read_store",
    "settings_mismatch",
    "store_fingerprint",
    "store_mean",
    "summarize",
    "walk_order",
    "write_store",
]

"""A KV cache of independent rows in one preallocated buffer, for continuous batching.

Every row's tokens end at the same buffer column (rows are right-aligned, padding on the
left), so one decode step writes all rows' new keys at one column; each row's own length
says which columns its attention mask opens. Rows can be overwritten with another
request's prompt (``put``), shifted left to reclaim columns every row has left behind
(``shift_left``) and dropped (``select``) without touching the other rows.

``RowsLayer`` is a transformers ``CacheLayerMixin`` (through ``DynamicLayer``), so the
model's attention layers use it like any cache: ``update`` appends at the shared column and
returns the keys/values up to it. Attention masks are built by the caller (4D), so the
cache only reports its length.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer


class RowsLayer(DynamicLayer):
    """One model layer's keys/values for ``rows`` sequences in ``(rows, heads, capacity, dim)`` buffers."""

    def __init__(self, capacity: int, column: int = 0):
        super().__init__()
        self.capacity, self.column = capacity, column

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        rows, heads = key_states.shape[:2]
        self._allocate(rows, heads, key_states.shape[-1], value_states.shape[-1], key_states.dtype, key_states.device)

    def _allocate(self, rows: int, heads: int, k_dim: int, v_dim: int, dtype: torch.dtype, device: Any) -> None:
        self.dtype, self.device = dtype, device
        self.keys = torch.zeros((rows, heads, self.capacity, k_dim), dtype=dtype, device=device)
        self.values = torch.zeros((rows, heads, self.capacity, v_dim), dtype=dtype, device=device)
        self.is_initialized = True

    @classmethod
    def like(cls, other: RowsLayer, rows: int, capacity: int, column: int) -> RowsLayer:
        """An empty layer shaped like ``other`` (heads, dims, dtype, device) with ``rows`` rows."""
        layer = cls(capacity, column)
        k, v = other.keys, other.values
        layer._allocate(rows, k.shape[1], k.shape[-1], v.shape[-1], k.dtype, k.device)
        return layer

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, stop = self.column, self.column + key_states.shape[-2]
        if stop > self.capacity:
            raise RuntimeError(f"KV rows buffer full: column {stop} > capacity {self.capacity}")
        self.keys[:, :, start:stop] = key_states
        self.values[:, :, start:stop] = value_states
        self.column = stop
        return self.keys[:, :, :stop], self.values[:, :, :stop]

    def get_seq_length(self) -> int:
        return self.column

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.column + query_length, 0

    def get_max_length(self) -> int:
        return self.capacity


def rows_cache(layers: list[RowsLayer]) -> Cache:
    return Cache(layers=layers)


def empty_rows_cache(capacity: int) -> Cache:
    """A cache whose layers are allocated by the first forward pass (its batch size, ``capacity`` columns)."""
    return Cache(layer_class_to_replicate=lambda: RowsLayer(capacity))


def prefix_rows_cache(prefix: Cache, rows: int, capacity: int) -> Cache:
    """``rows`` copies of a one-row cache's columns, ready to append up to ``capacity`` columns."""
    layers = []
    for src in prefix.layers:
        layer = RowsLayer.like(src, rows, capacity, src.column)
        layer.keys[:, :, : src.column] = src.keys[:, :, : src.column]
        layer.values[:, :, : src.column] = src.values[:, :, : src.column]
        layers.append(layer)
    return Cache(layers=layers)


class KVRows:
    """The decode-time cache: ``rows`` slots right-aligned at ``column``, with helpers to move rows around."""

    def __init__(self, template: Cache, rows: int, capacity: int, column: int):
        self.cache = rows_cache([RowsLayer.like(t, rows, capacity, column) for t in template.layers])

    @property
    def layers(self) -> list[RowsLayer]:
        return self.cache.layers

    @property
    def column(self) -> int:
        return self.layers[0].column

    @property
    def capacity(self) -> int:
        return self.layers[0].capacity

    def put(self, row: int, src: Cache, src_row: int, spans: list[tuple[int, int]]) -> int:
        """Copy the columns ``spans`` of ``src``'s row ``src_row``, in order, to end at ``column``; returns their length."""
        length = sum(b - a for a, b in spans)
        for dst, s in zip(self.layers, src.layers, strict=True):
            at = dst.column - length
            for a, b in spans:
                dst.keys[row, :, at : at + b - a] = s.keys[src_row, :, a:b]
                dst.values[row, :, at : at + b - a] = s.values[src_row, :, a:b]
                at += b - a
        return length

    def shift_left(self, columns: int) -> None:
        """Drop the first ``columns`` columns of every row (the caller knows no live row uses them)."""
        if columns <= 0:
            return
        for layer in self.layers:
            end = layer.column
            layer.keys[:, :, : end - columns] = layer.keys[:, :, columns:end].clone()
            layer.values[:, :, : end - columns] = layer.values[:, :, columns:end].clone()
            layer.column = end - columns

    def select(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` (a 1-D index tensor), in that order."""
        for layer in self.layers:
            layer.keys, layer.values = layer.keys[rows], layer.values[rows]

    # -- growth, for a live queue (infer.live): prompts and answers are not known in advance
    def resize(self, capacity: int, column: int) -> None:
        """Reallocate every row to ``capacity`` columns, its content moved right to end at ``column``.

        ``column`` may not be left of the current column (content is never cut); the new columns
        on the left are empty (no live row's mask opens them).
        """
        old = self.column
        if column < old or capacity < column:
            raise ValueError(f"resize to column {column} / capacity {capacity} from column {old}")
        shift = column - old
        for layer in self.layers:
            k, v = layer.keys, layer.values
            layer.capacity = capacity
            layer._allocate(k.shape[0], k.shape[1], k.shape[-1], v.shape[-1], k.dtype, k.device)
            layer.keys[:, :, shift:column] = k[:, :, :old]
            layer.values[:, :, shift:column] = v[:, :, :old]
            layer.column = column

    def add_rows(self, count: int) -> None:
        """Append ``count`` empty rows."""
        for layer in self.layers:
            shape = (count, *layer.keys.shape[1:])
            layer.keys = torch.cat([layer.keys, layer.keys.new_zeros(shape)])
            layer.values = torch.cat([layer.values, layer.values.new_zeros((count, *layer.values.shape[1:]))])

    @property
    def rows(self) -> int:
        return self.layers[0].keys.shape[0]

"""Decoding of one sink batch: columns for most messages, ``decode_record`` for the rest.

The columnar reader (``columns``) takes the messages in the common encoding. Each message it
leaves is decoded on its own, which names an undecodable one by its offset and finds the
records of views the topology lacks. A view with such a leftover record in the batch is then
decoded record by record as a whole, so its rows keep their message order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from streamfeat.definitions.models import Topology
from streamfeat.errors import SerializationError
from streamfeat.featurelog.codec import decode_record
from streamfeat.featurelog.record import FeatureRecord
from streamfeat.sink.columns import LogDecoder, ViewRows

logger = logging.getLogger(__name__)


@dataclass
class DecodedRows:
    """A batch's archivable rows: decoded views, and records of the views decoded one by one."""

    views: list[ViewRows] = field(default_factory=list)
    records: list[FeatureRecord] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    """Messages not archived, by reason ``unknown_view:<name>``."""

    @property
    def count(self) -> int:
        return sum(len(rows.positions) for rows in self.views) + len(self.records)


class BatchDecoder:
    """Decodes the batches of one feature-log topic for the views of a topology."""

    def __init__(self, topology: Topology) -> None:
        self._topic = topology.feature_log
        self._views = {view.name for view in topology.feature_views}
        self._warned: set[str] = set()
        self._columns = LogDecoder(
            {
                view.name: (
                    len(topology.entity(view.entity).join_keys),
                    [feature.name for feature in view.features],
                )
                for view in topology.feature_views
            }
        )

    def decode(
        self, partition: int, values: Sequence[bytes], offsets: Sequence[int]
    ) -> DecodedRows:
        """Decode the messages ``values`` of ``partition``, read at ``offsets``.

        Raises SerializationError naming the offset of a message that is no feature record.
        """
        decoded = self._columns.decode(values)
        rows = DecodedRows()
        by_position: dict[int, FeatureRecord] = {}
        for position in decoded.leftovers:
            record = self._decode_one(partition, values[position], offsets[position])
            if record.view in self._views:
                by_position[position] = record
            else:
                self._skip_unknown(rows, partition, offsets[position], record.view)
        slow_views = {record.view for record in by_position.values()}
        for name, view_rows in decoded.views.items():
            if name not in slow_views:
                rows.views.append(view_rows)
                continue
            for position in view_rows.positions.tolist():
                by_position[position] = decode_record(values[position])
        rows.records = [by_position[position] for position in sorted(by_position)]
        return rows

    def _decode_one(self, partition: int, value: bytes, offset: int) -> FeatureRecord:
        try:
            return decode_record(value)
        except SerializationError as exc:
            logger.error(
                "sink_undecodable_record topic=%s partition=%s offset=%s error=%s",
                self._topic,
                partition,
                offset,
                exc,
            )
            raise SerializationError(
                f"feature-log record at {self._topic} partition {partition} offset {offset} "
                f"cannot be decoded ({exc}); the sink stops there so that no record is skipped "
                "unseen: fix the schema or the producer and run it again"
            ) from exc

    def _skip_unknown(self, rows: DecodedRows, partition: int, offset: int, view: str) -> None:
        reason = f"unknown_view:{view}"
        if view not in self._warned:
            self._warned.add(view)
            logger.warning(
                "sink_unknown_view topic=%s partition=%s offset=%s feature_view=%s",
                self._topic,
                partition,
                offset,
                view,
            )
        rows.skipped[reason] = rows.skipped.get(reason, 0) + 1

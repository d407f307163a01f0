"""The worker: reads source topics, keeps windowed state in RocksDB, writes feature records.

It runs in two stages. The *router* owns source-topic partitions: it decodes and checks events,
keeps each partition's watermark and emission clock, sends dead letters, and forwards accepted
events to one repartition topic per (source, entity), keyed by entity. The *aggregator* owns the
partitions of those topics: it updates the windows of every view of that entity and writes the
records to the feature log and the online store. Each stage keeps its input offset in the same
RocksDB write as the state it produced, so a restarted worker skips what it already applied.
"""

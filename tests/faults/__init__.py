"""Fault tests: crashes, outages and failovers of the real processes change no result.

Each test starts a Kafka broker and a Redis server of its own and runs ``streamfeat worker`` and
``streamfeat sink`` as processes on a replay of March 2013 flights. It injects its faults at
points chosen by a seed, then compares the archive and Redis with a backfill of the same events.

- ``make test`` runs the short variant: a week with two worker kills.
- ``make test-long`` runs the month variants (marker ``long``).
- ``-s`` prints each run's seed, fault figures and a table of lost and doubled counts.
- ``FAULT_SEED=<n>`` repeats a run's fault points. Kills still land wherever the processes are
  at that moment, so a seed fixes the plan, not the exact interleaving.

The kit: ``processes`` (start, kill, pause, logs), ``stack`` (a stack per test, service stops),
``pipeline`` (topology, producer, workers, sink, offsets), ``archive_watch`` (inotify on the
archive), ``archive_files`` and ``topics`` (read back what was written), ``results`` (the
comparison) and ``scenario`` (one run from start to verdict).
"""

"""The ``streamfeat`` command and its sub-commands."""

import typer

from streamfeat.cli import demo, get, offline, produce, sink, stack, worker

app = typer.Typer(
    help="streamfeat: streaming features from Kafka to Redis and a Parquet archive.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(stack.app, name="stack")
app.command("produce")(produce.produce)
app.command("worker")(worker.worker)
app.command("sink")(sink.sink)
app.command("get")(get.get)
app.command("demo", help=demo.HELP)(demo.demo)
app.command("backfill")(offline.backfill)
app.command("training-set")(offline.training_set)

"""``streamfeat get``: read feature values of entities from the online store."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import redis
import typer

from streamfeat.cli import _output
from streamfeat.definitions.loader import load_topology
from streamfeat.definitions.models import Topology
from streamfeat.errors import ConfigurationError, StreamfeatError
from streamfeat.featurelog.record import EntityKey
from streamfeat.online import OnlineValue, RedisOnlineStore
from streamfeat.online.store import datetime_from_ms
from streamfeat.serialization.times import parse_iso_ms
from streamfeat.settings import Settings


def get(
    topology: Annotated[
        Path, typer.Argument(help="Topology YAML file, such as topologies/flights.yml.")
    ],
    view: Annotated[str, typer.Option("--view", help="Feature view to read.")],
    entity: Annotated[
        list[str],
        typer.Option(
            "--entity",
            help="Entity key; repeat for several. A key of several join keys lists their "
            "values in join-key order, separated by ',' (such as JFK,LAX), so a value cannot "
            "hold a comma.",
        ),
    ],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Read as of this ISO 8601 time with an offset, such as 2013-01-07T12:00:00Z "
            "(default: now).",
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            help="Redis URL (default: STREAMFEAT_REDIS_URL or redis://127.0.0.1:16379/0).",
        ),
    ] = None,
) -> None:
    """Print each entity's status, values, as-of time and version, in request order.

    Status is ok, expired (the entity's latest event is older than the TTL), not_found
    (nothing stored) or too_old (the stored value is later than --as-of).
    """
    url = redis_url or Settings.from_env().redis_url
    try:
        definition = load_topology(topology)
        keys = [_entity_key(definition, view, text) for text in entity]
        moment = None if as_of is None else datetime_from_ms(parse_iso_ms(as_of))
        store = RedisOnlineStore.from_url(url, definition)
        try:
            results = store.read(view, keys, moment)
        finally:
            store.close()
    except StreamfeatError as error:
        _output.error(str(error))
        raise typer.Exit(1) from error
    except redis.RedisError as error:
        _output.error(
            f"cannot read from Redis at {_without_password(url)}: {error}; start it with "
            "`streamfeat stack up` or pass --redis-url"
        )
        raise typer.Exit(1) from error
    for text, result in zip(entity, results, strict=True):
        _output.info(_describe(text, result))


def _entity_key(topology: Topology, view: str, text: str) -> EntityKey:
    """Split a ``--entity`` value into one value per join key of the view's entity."""
    join_keys = next(
        (topology.entity(v.entity).join_keys for v in topology.feature_views if v.name == view),
        None,
    )
    if join_keys is None:
        return (text,)  # the store names the unknown view and the known ones
    values = tuple(text.split(","))
    if len(values) != len(join_keys):
        raise ConfigurationError(
            f"--entity {text!r} has {len(values)} value(s) but feature view {view!r} needs "
            f"one per join key ({', '.join(join_keys)}), separated by ','"
        )
    return values


def _describe(text: str, result: OnlineValue) -> str:
    as_of = "-" if result.as_of is None else _iso(result.as_of)
    version = "-" if result.version is None else str(result.version)
    line = f"entity={text} status={result.status.value} as_of={as_of} version={version}"
    if result.values is not None:
        line += f" values={json.dumps(result.values, ensure_ascii=False)}"
    if result.message is not None:
        line += f"\n  {result.message}"
    return line


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))

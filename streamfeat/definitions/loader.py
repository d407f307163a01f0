"""Load a topology from YAML and check it against the Avro schemas of its sources.

Every problem raises DefinitionError with one sentence naming the file, the field path (such as
``feature_views[1].window.hop``) and the fix. ``check_schemas`` runs the same schema checks on a
topology built in Python.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from streamfeat.definitions.models import Function, Source, Topology
from streamfeat.errors import DefinitionError, SerializationError
from streamfeat.serialization import SchemaStore, StoredSchema
from streamfeat.serialization._logical import INSTANT_TYPES, LOCAL_TYPES, timestamp_type

logger = logging.getLogger(__name__)

_NUMERIC = frozenset({"int", "long", "float", "double"})
_NUMERIC_FUNCTIONS = frozenset(
    {Function.SUM, Function.MEAN, Function.VARIANCE, Function.STDDEV, Function.PERCENTILE}
)
_ORDERED_FUNCTIONS = frozenset({Function.MIN, Function.MAX})
_KEY_KINDS = frozenset({"string", "int", "long", "boolean", "enum"})


def load_topology(path: str | Path) -> Topology:
    """Read, validate and schema-check the topology in a YAML file."""
    file = Path(path)
    data = _read_yaml(file)
    try:
        topology = Topology.model_validate(data)
    except ValidationError as error:
        raise DefinitionError(_describe_validation(file, error)) from None
    check_schemas(topology, file.parent / topology.schemas_dir, origin=file)
    logger.info(
        "topology_loaded path=%s topology=%s views=%d",
        file,
        topology.name,
        len(topology.feature_views),
    )
    return topology


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that rejects a key repeated in one mapping instead of keeping the last."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise DefinitionError(
                f"{loader.name}: line {line}: key {key!r} appears twice in one mapping; "
                "keep one of them"
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise DefinitionError(
            f"{file}: cannot read the topology file ({error.strerror}); check the path"
        ) from None
    loader = _UniqueKeyLoader(text)
    loader.name = str(file)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise DefinitionError(f"{file}: {where}invalid YAML ({problem}); fix the syntax") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise DefinitionError(
            f"{file}: the file must contain a mapping with name, entities, sources and "
            f"feature_views, not {type(data).__name__}"
        )
    return data


def _describe_validation(file: Path, error: ValidationError) -> str:
    errors = error.errors(include_url=False)
    locations = [tuple(e["loc"]) for e in errors]
    # A tuple whose items failed also reports itself as too short; that follows from the item.
    errors = [
        e
        for e in errors
        if not (
            e["type"] == "too_short"
            and any(other[: len(e["loc"])] == tuple(e["loc"]) != other for other in locations)
        )
    ]
    first = errors[0]
    sentence = f"{file}: {_problem(first)}"
    if len(errors) > 1:
        others = ", ".join(_path(e["loc"]) or "the top level" for e in errors[1:])
        sentence += f" (more problems at: {others})"
    return sentence


def _path(location: Sequence[int | str]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text:
            text += f".{part}"
        else:
            text = str(part)
    return text


def _problem(error: Any) -> str:
    path = _path(error["loc"])
    kind = error["type"]
    if kind == "missing":
        return f"{path} is missing; add it"
    if kind == "extra_forbidden":
        allowed = _allowed_fields(error["loc"][:-1])
        return f"{path} is not a known field; remove it or use one of: {allowed}"
    message = str(error["msg"])
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        return f"{path}: {message}" if path else message
    return f"{path} is invalid: {message}, got {error['input']!r}"


def _allowed_fields(location: Sequence[int | str]) -> str:
    annotation: Any = Topology
    for part in location:
        annotation = _step(annotation, part)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = annotation.model_fields
        return ", ".join(field.alias or name for name, field in fields.items())
    return "the fields of this section"


def _step(annotation: Any, part: int | str) -> Any:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _step(get_args(annotation)[0], part)
    if origin in (Union, UnionType):
        branches = [a for a in get_args(annotation) if a is not type(None)]
        return _step(branches[0], part) if len(branches) == 1 else None
    if isinstance(part, int):
        return get_args(annotation)[0] if origin in (tuple, list) else None
    if origin is dict:
        return get_args(annotation)[1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
    return None


@dataclass(frozen=True)
class _FieldType:
    """The type of a top-level Avro field, reduced to what the checks need."""

    kind: str
    """Avro type name, or ``instant``/``local`` for timestamps, or ``union`` for mixed types."""
    nullable: bool
    logical: str | None = None


def _field_types(schema: StoredSchema) -> dict[str, _FieldType]:
    names = schema.parsed["__named_schemas"]
    return {f["name"]: _reduce(f["type"], names) for f in schema.parsed["fields"]}


def _reduce(avro_type: Any, names: dict[str, Any]) -> _FieldType:
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        nullable = len(branches) < len(avro_type)
        if len(branches) != 1:
            return _FieldType("union", nullable)
        inner = _reduce(branches[0], names)
        return _FieldType(inner.kind, nullable, inner.logical)
    if isinstance(avro_type, str):
        return (
            _reduce(names[avro_type], names) if avro_type in names else _FieldType(avro_type, False)
        )
    logical = timestamp_type(avro_type)
    if logical in INSTANT_TYPES:
        return _FieldType("instant", False, logical)
    if logical in LOCAL_TYPES:
        return _FieldType("local", False, logical)
    kind = avro_type["type"]
    return _reduce(kind, names) if isinstance(kind, (list, dict)) else _FieldType(str(kind), False)


def check_schemas(topology: Topology, schemas_dir: str | Path, origin: Path | None = None) -> None:
    """Check the sources' fields against their Avro schemas; raise DefinitionError on a problem.

    ``origin`` is the topology file, named in messages; a topology built in Python has none.
    """
    folder = Path(schemas_dir)
    file_prefix = f"{origin}: " if origin else ""
    for index, source in enumerate(topology.sources):
        source_path = f"sources[{index}]"
        schema = _load_source_schema(folder, source, f"{file_prefix}{source_path}")
        fields = _field_types(schema)
        for path, problem in _source_problems(topology, source, source_path, fields):
            raise DefinitionError(f"{file_prefix}{path}: source {source.name!r}: {problem}")


def _load_source_schema(folder: Path, source: Source, prefix: str) -> StoredSchema:
    file = folder / source.schema_file
    if not file.is_file():
        raise DefinitionError(
            f"{prefix}.schema: schema file {source.schema_file!r} not found in {folder}; "
            "add it there or fix 'schema' (the folder is schemas_dir, relative to the topology)"
        )
    try:
        return SchemaStore.from_dir(folder).for_file(file.name)
    except SerializationError as error:
        raise DefinitionError(f"{prefix}.schema: {error}") from None


def _source_problems(
    topology: Topology, source: Source, source_path: str, fields: dict[str, _FieldType]
) -> Iterator[tuple[str, str]]:
    """Yield (field path, problem) pairs for a source and the views that read it."""
    for path, problem in _event_time_problems(source, fields):
        yield source_path + path, problem
    if source.event_id is not None and source.event_id not in fields:
        yield f"{source_path}.event_id", _missing(source.event_id, fields)
    for path, problem in _constraint_problems(source, fields):
        yield source_path + path, problem
    for view_index, view in enumerate(topology.feature_views):
        if view.source != source.name:
            continue
        view_path = f"feature_views[{view_index}]"
        for key in topology.entity(view.entity).join_keys:
            if key not in fields:
                yield (
                    f"{view_path}.entity",
                    f"join key {key!r} of entity {view.entity!r}: " + (_missing(key, fields)),
                )
            elif fields[key].kind not in _KEY_KINDS:
                yield (
                    f"{view_path}.entity",
                    (
                        f"join key {key!r} has type {fields[key].kind}; use a string, int, long, "
                        "boolean or enum field"
                    ),
                )
        for feature_index, feature in enumerate(view.features):
            column_problem = _column_problem(feature.function, feature.column, fields)
            if column_problem:
                yield f"{view_path}.features[{feature_index}].column", column_problem


def _missing(name: str, fields: dict[str, _FieldType]) -> str:
    return f"field {name!r} is not in the schema; use one of: {', '.join(fields)}"


def _event_time_problems(
    source: Source, fields: dict[str, _FieldType]
) -> Iterator[tuple[str, str]]:
    name, zone = source.event_time.field, source.event_time.zone
    field = fields.get(name)
    if field is None:
        yield ".event_time.field", _missing(name, fields)
    elif field.nullable:
        yield (
            ".event_time.field",
            (
                f"field {name!r} is nullable, but every event needs an event time; "
                "make it non-nullable in the schema"
            ),
        )
    elif field.kind not in ("instant", "local", "string"):
        yield (
            ".event_time.field",
            (
                f"field {name!r} has type {field.kind}, not a time; use a timestamp-millis, "
                "timestamp-micros, local-timestamp-millis, local-timestamp-micros or string field"
            ),
        )
    elif field.kind != "instant" and zone is None:
        yield (
            ".event_time.zone",
            (
                f"field {name!r} holds local times without a zone; declare event_time.zone, "
                "such as 'UTC' or 'Europe/Budapest'"
            ),
        )
    elif field.kind == "instant" and zone is not None:
        yield (
            ".event_time.zone",
            (
                f"field {name!r} holds UTC instants ({field.logical}), so zone {zone!r} would be "
                "ignored; remove event_time.zone"
            ),
        )


def _constraint_problems(
    source: Source, fields: dict[str, _FieldType]
) -> Iterator[tuple[str, str]]:
    constraints = source.constraints
    for name in constraints.required:
        if name not in fields:
            yield ".constraints.required", _missing(name, fields)
    for name in constraints.ranges:
        if name not in fields:
            yield f".constraints.ranges.{name}", _missing(name, fields)
        elif fields[name].kind not in _NUMERIC:
            yield (
                f".constraints.ranges.{name}",
                (f"field {name!r} has type {fields[name].kind}, but ranges need a numeric field"),
            )
    for name in constraints.allowed_values:
        if name not in fields:
            yield f".constraints.allowed_values.{name}", _missing(name, fields)
    for name in constraints.max_length:
        if name not in fields:
            yield f".constraints.max_length.{name}", _missing(name, fields)
        elif fields[name].kind not in ("string", "bytes"):
            yield (
                f".constraints.max_length.{name}",
                (f"field {name!r} has type {fields[name].kind}, but max_length needs a string"),
            )


def _column_problem(
    function: Function, column: str | None, fields: dict[str, _FieldType]
) -> str | None:
    if column is None:
        return None
    if column not in fields:
        return _missing(column, fields)
    kind = fields[column].kind
    if function in _NUMERIC_FUNCTIONS and kind not in _NUMERIC:
        return f"{function.value} needs a numeric column, but {column!r} has type {kind}"
    if function in _ORDERED_FUNCTIONS and kind not in _NUMERIC | {"instant", "local"}:
        return (
            f"{function.value} needs a numeric or timestamp column, but {column!r} has type {kind}"
        )
    return None

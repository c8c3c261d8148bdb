"""Is an input resource valid FHIR R4? HL7's own R4 JSON Schema, compiled once with jsonschema-rs.

Why a schema and not the ``fhir.resources`` models: validating a visit's Claim, Coverage, Encounter,
Procedure and DocumentReference with pydantic and fhir_core's per-element Python validators cost
~1.2 ms (up to 2.5 ms on a busy machine), a third of the whole evaluation; the compiled schema checks
the same resources in ~0.05 ms (docs/benchmarks.md, "FHIR input validation: decided with data"). The schema is the R4 (4.0.1)
``fhir.schema.json`` HL7 publishes, shipped byte for byte in ``plugin/fhir_r4/`` (its README gives
the source, hash and licence).

The schema alone says less than R4 does, so it is read with these additions, each from the R4 JSON
rules (hl7.org/fhir/R4/json.html, formats.html#choice) and each so that it judges input as the
models did:
- a complex element is a JSON object (the schema leaves ``type: object`` implied, so ``"code": 12``
  would pass), an ``xhtml`` div a string, ``base64Binary`` base64 (the pattern of the 4.0.0 schema);
- ``integer``, ``unsignedInt`` and ``positiveInt`` are whole numbers with their floor (the schema's
  pattern applies to strings only, so 1.5 or -1 would pass);
- required primitive elements (``status``, ``Claim.created``, ``item.sequence``: the schema lists
  only complex ones, because ``_status`` alone also satisfies R4) and one value per choice element
  (``performed[x]``), from ``plugin/fhir_r4/elements.json``;
- ``additionalProperties: false`` is dropped: vendor and unknown elements are tolerated, as the
  reader tolerates them;
- a contained resource is checked against its own type's schema, not against the schema's ``oneOf``
  of all 145 resource types (whose error says only "not valid under any of the schemas").

Where R4 is stricter than the models were, so is this: JSON ``null`` as a value, a number sent as a
string (or a date as a number), whitespace in a ``uri`` or ``code``, and a code outside the required
bindings the schema spells out (``Encounter.status``, ``DocumentReference.status``, ``Claim.use``).
"""
from __future__ import annotations

import json
import marshal
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

DATA = Path(__file__).with_name("fhir_r4")
SCHEMA_FILE = DATA / "fhir.schema.json"
SCHEMA_SHA256 = "2230406893b4cf002a4ee1e5e2bbeca22ac5d2d4931b3e9ef7b9594bbc376a01"
"""HL7's R4 4.0.1 ``fhir.schema.json`` (3,386,892 bytes); tests/plugin/test_fhir_input.py checks the file."""
ELEMENTS_FILE = DATA / "elements.json"
"""Per definition: the required primitive elements and the choice elements (prefix -> required)."""

_CONTAINED = {"type": "object", "required": ["resourceType"], "properties": {"resourceType": {"type": "string"}}}
"""What the schema of a resource asks of each ``contained`` entry; each is then checked on its own."""

_BASE64 = "^(\\s*([0-9a-zA-Z\\+/=]){4}\\s*)+$"
"""base64Binary as HL7's R4 4.0.0 schema wrote it (4.0.1 dropped the pattern; the models checked it)."""

_WHOLE_NUMBERS: Mapping[str, int | None] = {"integer": None, "unsignedInt": 0, "positiveInt": 1}

_WORDS = {"required": "missing", "type": "wrong type", "pattern": "wrong format", "enum": "code not allowed",
          "const": "wrong value", "minimum": "too small"}
"""JSON Schema keywords in the words of an input issue; any other keyword is named as it is."""


@cache
def _schema() -> Mapping[str, Any]:
    return json.loads(SCHEMA_FILE.read_bytes())  # type: ignore[no-any-return]


@cache
def _elements() -> Mapping[str, Any]:
    return json.loads(ELEMENTS_FILE.read_bytes())["definitions"]  # type: ignore[no-any-return]


@cache
def resource_types() -> frozenset[str]:
    """Every R4 resource type the schema defines (its discriminator)."""
    return frozenset(_schema()["discriminator"]["mapping"])


@cache
def validator(rtype: str) -> jsonschema_rs.Draft6Validator:
    """The compiled schema of one R4 resource type, from the definitions it reaches; built once per type."""
    if rtype not in resource_types():
        raise KeyError(rtype)
    reached = {name: _as_read(name) for name in _reached(rtype, _schema()["definitions"])}
    return jsonschema_rs.Draft6Validator({
        "$schema": "http://json-schema.org/draft-06/schema#",
        "definitions": reached,
        "$ref": f"#/definitions/{rtype}",
    })


@cache
def _as_read(name: str) -> Mapping[str, Any]:
    """One definition with the additions of the module docstring (and without its descriptions)."""
    if name == "ResourceList":
        return _CONTAINED
    if name == "xhtml":
        return {"type": "string"}
    if name == "base64Binary":
        return {"type": "string", "pattern": _BASE64}
    if name in _WHOLE_NUMBERS:
        floor = _WHOLE_NUMBERS[name]
        return {"type": "integer"} if floor is None else {"type": "integer", "minimum": floor}
    out: dict[str, Any] = _tolerant(_schema()["definitions"][name])
    if "properties" not in out:
        return out
    out["type"] = "object"
    required, exclusive = _element_rules(name, out["properties"])
    if required:
        out["allOf"] = required
    if exclusive:
        out["dependencies"] = exclusive
    return out


def _element_rules(name: str, properties: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """``allOf`` entries (an element that must be there, as itself or as its ``_`` extension form) and
    ``dependencies`` (a choice value that excludes the other choices) of one definition."""
    rules = _elements().get(name, {})
    required: list[Any] = [_present([element]) for element in rules.get("required", ())]
    exclusive: dict[str, Any] = {}
    for prefix, must in rules.get("choices", {}).items():
        variants = choice_variants(prefix, properties)
        if must:
            required.append(_present(variants))
        for variant in variants:
            exclusive[variant] = {"not": {"anyOf": [{"required": [other]} for other in variants if other != variant]}}
    return required, exclusive


def _present(elements: Iterable[str]) -> dict[str, Any]:
    return {"anyOf": [{"required": [form]} for element in elements for form in (element, "_" + element)]}


def choice_variants(prefix: str, properties: Iterable[str]) -> list[str]:
    """The names of a choice element in a definition: ``prefix`` + a title-cased type name (formats.html#choice)."""
    types = _schema()["definitions"]
    return [p for p in properties
            if p.startswith(prefix) and p[len(prefix):len(prefix) + 1].isupper()
            and (p[len(prefix):] in types or p[len(prefix)].lower() + p[len(prefix) + 1:] in types)]


def _tolerant(node: Any, names: bool = False) -> Any:
    """``node`` without ``additionalProperties: false`` (unknown elements are the reader's to ignore)
    and without ``description`` (prose: nothing to check, less to compile). ``names``: ``node`` is a
    ``properties`` map, whose keys are element names (``DocumentReference.description``), kept."""
    if isinstance(node, dict):
        return {k: _tolerant(v, names=not names and k == "properties") for k, v in node.items()
                if names or not (k == "description" or (k == "additionalProperties" and v is False))}
    if isinstance(node, list):
        return [_tolerant(v) for v in node]
    return node


def _reached(root: str, definitions: Mapping[str, Any]) -> set[str]:
    """The definitions ``root`` refers to, directly or not; ``ResourceList`` (contained) is not followed."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            if name != "ResourceList":
                todo.extend(_refs(definitions[name]))
    return seen


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            yield ref.removeprefix("#/definitions/")
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def first_problem(resource: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(location, what)`` of the first way ``resource`` is not valid R4, ``None`` when it is.

    The location is a dotted path of element names and array indexes (``item.0.quantity.value``),
    the problem a keyword in plain words (``wrong type``, ``missing``): neither carries a value from
    the resource, so the issue can be logged and shown without PHI.
    """
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or rtype not in resource_types():
        return "resourceType", "not an R4 resource type"
    _refuse_deep(resource)
    check = validator(rtype)
    if not check.is_valid(resource):
        return _described(rtype, resource, next(iter(check.iter_errors(resource))))
    return _contained_problem(resource)


def _refuse_deep(resource: Any) -> None:
    """Raise ``RecursionError`` for input nested more than ~2,000 levels deep.

    The compiled validator recurses on the native stack, and a Python object nested 20,000 deep
    overflows it (a segmentation fault, found by building one); the models' validation raised
    ``RecursionError`` instead, as Python's JSON parser does past ~1,000 levels. ``marshal`` walks an
    object in C and refuses one deeper than 2,000 levels (CPython's MAX_MARSHAL_STACK_DEPTH): a depth
    check at ~0.03 ms a visit where a Python walk costs 0.1-0.2 ms, more than the validation itself.
    """
    try:
        marshal.dumps(resource)
    except ValueError as exc:  # too deep, or a value that is no JSON (which the validator refuses too)
        raise RecursionError("nested too deep to validate, or not JSON data") from exc


def _described(rtype: str, resource: Mapping[str, Any], error: jsonschema_rs.ValidationError) -> tuple[str, str]:
    """Location and plain words of the validator's first error. Which element is missing, or which
    choice has two values, is read off the resource (from the definition at the error's location),
    not off the error's schema path, whose form differs between jsonschema-rs releases."""
    steps = list(error.instance_path)
    path = [str(p) for p in steps]
    keyword = str(error.schema_path[-1]) if len(error.schema_path) else "schema"
    what = _WORDS.get(keyword, keyword)
    definition, here = _definition_at(rtype, resource, steps)
    if definition is None or not isinstance(here, Mapping):
        return ".".join(path) or "root", what
    node, rules = _schema()["definitions"][definition], _elements().get(definition, {})
    choices = {prefix: choice_variants(prefix, node.get("properties", {})) for prefix in rules.get("choices", {})}
    if keyword == "required":
        path += [name for name in node.get("required", ()) if name not in here][:1]
    elif keyword == "anyOf":  # a required primitive, or a required choice (_element_rules)
        absent = [name for name in rules.get("required", ()) if name not in here and "_" + name not in here]
        absent += [prefix + "[x]" for prefix, must in rules.get("choices", {}).items()
                   if must and not any(v in here or "_" + v in here for v in choices[prefix])]
        path, what = path + absent[:1], "missing"
    elif keyword == "not":  # two values of one choice element (dependencies)
        doubled = [name for variants in choices.values() if sum(v in here for v in variants) > 1
                   for name in variants if name in here]
        path, what = path + doubled[1:2], "more than one value of a choice element"
    return ".".join(path) or "root", what


def _definition_at(rtype: str, resource: Any, steps: Iterable[str | int]) -> tuple[str | None, Any]:
    """The schema definition and the value at ``steps`` (an error's instance path) in ``resource``."""
    definitions = _schema()["definitions"]
    name: str | None = rtype
    here = resource
    for step in steps:
        if isinstance(here, list):
            here = here[int(step)]
            continue
        if not isinstance(here, Mapping) or name is None:
            return None, None
        spec = definitions[name].get("properties", {}).get(str(step), {})
        ref = spec.get("$ref") or spec.get("items", {}).get("$ref")
        name = ref.rsplit("/", 1)[-1] if isinstance(ref, str) else None
        here = here.get(str(step))
    return name, here


def _contained_problem(resource: Mapping[str, Any]) -> tuple[str, str] | None:
    contained = resource.get("contained")
    if not isinstance(contained, list):
        return None
    for n, inner in enumerate(contained):
        if "contained" in inner:  # the schema made each entry an object with a resourceType
            return f"contained.{n}.contained", "not allowed (a contained resource contains none: dom-2)"
        found = first_problem(inner)
        if found:
            return f"contained.{n}.{found[0]}", found[1]
    return None


def load(rtypes: Iterable[str]) -> None:
    """Compile the schemas of ``rtypes`` now (a worker's warm-up), not on its first visit."""
    for rtype in rtypes:
        validator(rtype)

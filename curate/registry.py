"""Registries: one home for each kind of method.

A kind of thing the workflow lets a config choose between (a scorer kind, a fusion method, a
selection method, a sampler, a trainer, an evaluation task type) is a :class:`Registry`; each
choice is one :class:`Entry` in it, registered beside its implementation. An entry holds, in one
place, the parameters a config entry of that choice takes (with their defaults and JSON-schema
checks), what the choice runs, the files it reads (as a function of the workflow's paths, given
to it when called) and its config check. The workflow completes every config entry through its
registry (:meth:`Registry.complete`: unknown keys are errors that name the key, defaults are
filled in), so the code that runs an entry reads ``entry[key]`` and never guesses a default.

Adding a choice is one registration: ``@FUSIONS.register("max")`` above a function, say. A
researcher's own choices live in their own modules, listed under ``plugins`` in the config; the
workflow and every job import them before reading the config (:func:`load_plugins`).

Nothing here imports torch: the workflow parses its registries without it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

REQUIRED = object()


class ConfigError(ValueError):
    """A config key is wrong (unknown, missing, invalid or dangling); the message names the key."""


@dataclass(frozen=True)
class Param:
    """One parameter of a registry entry: its JSON schema, its default (or REQUIRED, or None =
    optional without a value), a line saying what it is, and ``ref``: the config section its value
    names an entry of (a name, or a list of names). With ``paper``, a reference may also be one of
    the papers' names that only a scale's stand-ins know: the entry is then not built at scales
    where nothing stands in for it, and the paper tables say why."""

    schema: Mapping = field(default_factory=dict)
    default: Any = None
    doc: str = ""
    ref: str | None = None
    paper: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def required(schema: Mapping | None = None, doc: str = "", ref: str | None = None, paper: bool = False) -> Param:
    return Param(schema or {}, REQUIRED, doc, ref, paper)


def optional(
    schema: Mapping | None = None, default: Any = None, doc: str = "", ref: str | None = None, paper: bool = False
) -> Param:
    return Param(schema or {}, default, doc, ref, paper)


def require_entry(config: Mapping, section: str, name: str, where: str) -> None:
    """Raise ConfigError at ``where`` unless ``name`` is an entry of ``config[section]``."""
    if name not in config.get(section, {}):
        known = ", ".join(sorted(config.get(section, {}))) or "none"
        raise ConfigError(f"{where}: {name!r} is not an entry of `{section}` (known: {known})")


NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"}
FRACTION = {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
SEED = {"type": "integer", "minimum": 0}
POSITIVE_INT = {"type": "integer", "minimum": 1}


@dataclass
class Entry:
    """A registered choice. ``params`` are the keys its config entries take beside the registry's
    common ones; ``extra_params(entry, where)`` adds keys that depend on the entry itself (a sampler's,
    say); ``check(config, where, entry)`` checks references once the whole config is complete.
    Kind-specific attributes go in ``spec`` and read as attributes (``entry.fuse``)."""

    name: str
    params: Mapping[str, Param] = field(default_factory=dict)
    doc: str = ""
    check: Callable[[dict, str, dict], None] | None = None
    extra_params: Callable[[dict, str], Mapping[str, Param]] | None = None
    spec: dict = field(default_factory=dict)

    def __getattr__(self, name):
        spec = self.__dict__.get("spec", {})
        if name in spec:
            return spec[name]
        raise AttributeError(f"{type(self).__name__} {self.__dict__.get('name')!r} has no {name!r}")

    def all_params(self, entry: Mapping, where: str = "") -> dict[str, Param]:
        params = dict(self.params)
        if self.extra_params is not None:
            params.update(self.extra_params(entry, where))
        return params


class Registry:
    """The entries of one kind, found by the config key ``key`` (``method``, ``library``, ...).

    ``common``: parameters every entry of the kind takes (a fusion's ``scorers``, say);
    ``default``: the entry used when a config entry names none (a recipe without ``trainer`` is
    open_clip's).
    """

    def __init__(self, kind: str, key: str, common: Mapping[str, Param] | None = None, default: str | None = None):
        self.kind, self.key, self.default = kind, key, default
        self.common = dict(common or {})
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        *,
        params: Mapping[str, Param] | None = None,
        doc: str = "",
        check=None,
        extra_params=None,
        **spec,
    ):
        """Register ``name``. Used plainly it returns the entry; as a decorator
        (``@REGISTRY.register("name", ...)``) the decorated function becomes ``spec["run"]``."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        entry = Entry(name, dict(params or {}), doc, check, extra_params, dict(spec))
        self._entries[name] = entry

        def attach(function):
            entry.spec.setdefault("run", function)
            if not entry.doc and function.__doc__:
                entry.doc = function.__doc__.strip().splitlines()[0]
            return function

        attach.entry = entry
        return attach

    def unregister(self, name: str) -> None:
        self._entries.pop(name)

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self):
        return self._entries.items()

    def __getitem__(self, name: str) -> Entry:
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}")
        return self._entries[name]

    def of(self, entry: Mapping, where: str = "") -> Entry:
        """The registry entry a config entry chooses (by ``key``, else the default)."""
        name = entry.get(self.key, self.default)
        if name not in self._entries:
            known = ", ".join(sorted(self._entries))
            raise ConfigError(f"{where}.{self.key}: unknown {self.kind} {name!r} (known: {known})")
        return self._entries[name]

    def complete(self, entry: Mapping, where: str) -> dict:
        """``entry`` checked against its choice's parameters, with every default filled in.

        Raises ConfigError naming ``where.<key>`` for an unknown key, a missing required one or a
        value its schema rejects. Keys keep the entry's order; defaults follow in the order the
        parameters are declared (common ones first)."""
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(entry).__name__}")
        chosen = self.of(entry, where)
        params = {**self.common, **chosen.all_params(entry, where)}
        unknown = [key for key in entry if key != self.key and key not in params]
        if unknown:
            raise ConfigError(
                f"{where}.{unknown[0]}: not a parameter of {self.kind} {chosen.name!r} "
                f"(its parameters: {', '.join(params) or 'none'})"
            )
        completed = dict(entry)
        completed.setdefault(self.key, chosen.name)
        for key, param in params.items():
            if key in completed:
                completed[key] = _check_value(completed[key], param.schema, f"{where}.{key}")
            elif param.required:
                raise ConfigError(f"{where}.{key}: required by {self.kind} {chosen.name!r}")
            else:
                completed[key] = param.default
        return completed

    def params_of(self, entry: Mapping) -> dict[str, Param]:
        """Every parameter a (completed) config entry of this kind takes."""
        return {**self.common, **self.of(entry).all_params(entry)}

    def references(self, entry: Mapping) -> list[tuple[str, Param, list[str]]]:
        """``(key, param, names)`` of each parameter of ``entry`` that names other config entries."""
        out = []
        for key, param in self.params_of(entry).items():
            value = entry.get(key)
            if param.ref and value is not None:
                out.append((key, param, [value] if isinstance(value, str) else list(value)))
        return out

    def check_references(self, config: Mapping, entry: Mapping, where: str, paper_names=frozenset()) -> None:
        """Every reference of ``entry`` names an entry of its section (or, where the parameter
        allows it, a paper name), then the entry's own check."""
        for key, param, names in self.references(entry):
            for name in names:
                if name in config.get(param.ref, {}) or (param.paper and name in paper_names):
                    continue
                require_entry(config, param.ref, name, f"{where}.{key}")
        chosen = self.of(entry, where)
        if chosen.check is not None:
            chosen.check(config, where, entry)

    def describe(self) -> list[dict]:
        """Each entry's name, line of doc and parameters (for docs and `--help`-like listings)."""
        return [
            {
                "name": name,
                "doc": entry.doc,
                "params": {key: ("required" if p.required else p.default) for key, p in entry.params.items()},
            }
            for name, entry in self._entries.items()
        ]


def defaults_validator(schema: Mapping):
    """A JSON-schema validator that also fills the ``default`` of absent properties (in place)."""
    import copy

    import jsonschema

    base = jsonschema.Draft202012Validator

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from base.VALIDATORS["properties"](validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})(dict(schema))


def _check_value(value, schema: Mapping, where: str):
    """``value`` checked against ``schema``, with the schema's nested defaults filled (a copy)."""
    if not schema or value is None:
        return value
    import copy

    value = copy.deepcopy(value)
    errors = sorted(defaults_validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        path = "".join(f".{p}" for p in errors[0].absolute_path)
        raise ConfigError(f"{where}{path}: {errors[0].message}")
    return value


def load_plugins(modules: Iterable[str]) -> None:
    """Import the config's ``plugins`` (module names): their registrations join the registries."""
    for module in modules or ():
        importlib.import_module(module)

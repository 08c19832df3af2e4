"""Read a format file (YAML) into a `core.formats.FileFormat`, with errors that name file, field and line.

The YAML is composed into its node tree rather than loaded, for two reasons:
every node keeps its line, so an error says 'conn.yaml:14: field ...'; and
scalars stay the text written (`no`, `08`, `1e3` are words, not YAML 1.1's
false, 8 or 1000), which is what a lookup key or a delimiter means. A key
given twice is an error, not a silent overwrite.

The file's shape (see config/formats/ and the README, "Your own file format"):

    name: my_cdr                      # lower-case letters, digits, _
    target: call_records              # a canonical source (core.schemas.SOURCES)
    description: ...
    layout: {kind: csv, delimiter: ";", header: true}
    columns:                          # canonical column -> rule
      account_id: {from: CALLING_NBR}
      start_time: {from: START_TS, convert: timestamp, pattern: "dd/MM/yyyy HH:mm:ss"}
    dropped:                          # input field -> why it is not carried
      IMSI: "SIM identity: not carried"
    options:                          # optional: values given at read time
      timezone: {kind: timezone, default: UTC, help: ...}
"""

from __future__ import annotations

from pathlib import Path

import yaml

from core.formats import (
    CONVERSIONS,
    FORMAT_NAME,
    LAYOUTS,
    LOOKUP_OTHERWISE,
    OPTION_KINDS,
    ColumnRule,
    FileFormat,
    FormatFileError,
    FormatOption,
    Layout,
    check_option_value,
    check_timezone,
)
from core.schemas import SOURCES

_TOP_KEYS = ("name", "target", "description", "layout", "columns", "dropped", "options")
_RULE_KEYS = ("from", "convert", "fallback")
_LAYOUT_KEYS = {"csv": ("delimiter", "header", "fields"), "tsv": ("header", "fields"), "zeek": ("path",),
                "combined_log": (), "json_lines": (), "parquet": ()}
_TRUE, _FALSE = ("true", "yes"), ("false", "no")


def load_format_file(path: Path) -> FileFormat:
    """The format described by the YAML file at `path`; FormatFileError naming file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatFileError(f"{path}: format file not found") from None
    except IsADirectoryError:
        raise FormatFileError(f"{path}: a folder, not a format file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatFileError(f"{path}: format file cannot be read ({type(exc).__name__})") from None
    return FormatFileReader(str(path)).read(text)


class FormatFileReader:
    """Checks one format file's node tree; `origin` (its path) starts every error."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.option_names: set[str] = set()

    def fail(self, node: yaml.Node | None, problem: str, field: str | None = None) -> FormatFileError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        about = f"field '{field}': " if field is not None else ""
        return FormatFileError(f"{self.origin}{line}: {about}{problem}")

    # --- node helpers ---

    def mapping(self, node: yaml.Node, what: str, field: str | None = None) -> dict[str, tuple]:
        """key -> (key node, value node) of a mapping node; an error for anything else or a repeated key."""
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping (key: value lines)", field)
        entries: dict[str, tuple] = {}
        for key, value in node.value:
            name = self.text(key, f"a key of {what}", field)
            if name in entries:
                raise self.fail(key, f"'{name}' is given twice in {what}", field)
            entries[name] = (key, value)
        return entries

    def text(self, node: yaml.Node, what: str, field: str | None = None) -> str:
        if not isinstance(node, yaml.ScalarNode) or (node.value == "" and node.tag.endswith(":null")):
            raise self.fail(node, f"{what} must be a single value", field)
        return node.value

    def text_list(self, node: yaml.Node, what: str, field: str | None = None) -> tuple[str, ...]:
        if isinstance(node, yaml.SequenceNode):
            items = tuple(self.text(n, what, field) for n in node.value)
        else:
            items = (self.text(node, what, field),)
        if not items:
            raise self.fail(node, f"{what} is empty", field)
        return items

    def only_keys(self, entries: dict, allowed: tuple[str, ...], what: str, field: str | None = None) -> None:
        for name, (key, _) in entries.items():
            if name not in allowed:
                raise self.fail(key, f"unknown key '{name}' in {what} (expected {', '.join(allowed)})", field)

    # --- the file ---

    def read(self, text: str) -> FileFormat:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = exc.problem or exc.context
            raise FormatFileError(f"{self.origin}{line}: not valid YAML ({problem})") from None
        except yaml.YAMLError as exc:
            raise FormatFileError(f"{self.origin}: not valid YAML ({type(exc).__name__})") from None
        if root is None:
            raise FormatFileError(f"{self.origin}: empty format file")
        top = self.mapping(root, "the format file")
        self.only_keys(top, _TOP_KEYS, "the format file")
        for needed in ("name", "target", "layout", "columns"):
            if needed not in top:
                raise self.fail(root, f"the format file lacks '{needed}'")
        name = self.text(top["name"][1], "name")
        if not FORMAT_NAME.fullmatch(name) or name == "canonical":
            raise self.fail(top["name"][1], f"name '{name}' must be lower-case letters, digits and _ "
                            "(and not 'canonical')")
        target = self.text(top["target"][1], "target")
        if target not in SOURCES:
            raise self.fail(top["target"][1], f"target '{target}' is not a canonical source "
                            f"(one of {', '.join(SOURCES)})")
        options = self.options(top["options"][1]) if "options" in top else ()
        self.option_names = {o.name for o in options}
        columns = self.columns(*top["columns"], target)
        dropped = self.dropped(top["dropped"][1], columns) if "dropped" in top else ()
        description = self.text(top["description"][1], "description") if "description" in top else ""
        return FileFormat(name, target, description, self.layout(top["layout"][1]), columns, dropped,
                          options, self.origin)

    def layout(self, node: yaml.Node) -> Layout:
        entries = self.mapping(node, "layout")
        if "kind" not in entries:
            raise self.fail(node, f"layout lacks 'kind' (one of {', '.join(LAYOUTS)})")
        kind = self.text(entries["kind"][1], "layout kind")
        if kind not in LAYOUTS:
            raise self.fail(entries["kind"][1], f"unknown layout kind '{kind}' (one of {', '.join(LAYOUTS)})")
        self.only_keys(entries, ("kind", *_LAYOUT_KEYS[kind]), f"a {kind} layout")
        delimiter = "\t" if kind == "tsv" else ","
        if "delimiter" in entries:
            delimiter = self.text(entries["delimiter"][1], "delimiter")
            if len(delimiter) != 1 or delimiter in ('"', "\n", "\r"):
                raise self.fail(entries["delimiter"][1], "delimiter must be one character (not a quote)")
        header = True
        if "header" in entries:
            flag = self.text(entries["header"][1], "header").lower()
            if flag not in _TRUE + _FALSE:
                raise self.fail(entries["header"][1], "header must be true or false")
            header = flag in _TRUE
        path = self.text(entries["path"][1], "path") if "path" in entries else None
        fields = self.text_list(entries["fields"][1], "layout fields") if "fields" in entries else ()
        if not header and not fields:
            raise self.fail(node, "a layout without a header line needs 'fields' (the fields in order)")
        if header and fields:
            raise self.fail(entries["fields"][1], "'fields' is for files without a header (header: false)")
        return Layout("csv" if kind == "tsv" else kind, delimiter, header, path, fields)

    def options(self, node: yaml.Node) -> tuple[FormatOption, ...]:
        found = []
        for name, (_, value) in self.mapping(node, "options").items():
            entries = self.mapping(value, f"option '{name}'")
            self.only_keys(entries, ("kind", "default", "help"), f"option '{name}'")
            kind = self.text(entries["kind"][1], "option kind") if "kind" in entries else "text"
            if kind not in OPTION_KINDS:
                raise self.fail(entries["kind"][1], f"option '{name}': kind '{kind}' is not one of "
                                f"{', '.join(OPTION_KINDS)}")
            default = self.text(entries["default"][1], "default") if "default" in entries else None
            option = FormatOption(name, kind, default, self.text(entries["help"][1], "help")
                                  if "help" in entries else "")
            if default is not None:
                self.checked_value(option, default, entries["default"][1])
            found.append(option)
        return tuple(found)

    def checked_value(self, option: FormatOption, value: str, node: yaml.Node) -> None:
        try:
            check_option_value(option, value)
        except ValueError as exc:
            raise self.fail(node, f"option '{option.name}': {exc}") from None

    def columns(self, key: yaml.Node, node: yaml.Node, target: str) -> tuple[ColumnRule, ...]:
        known = SOURCES[target].column_names
        rules = []
        for column, (column_key, value) in self.mapping(node, "columns").items():
            if column not in known:
                raise self.fail(column_key, f"unknown canonical column '{column}' of {target} "
                                f"(one of {', '.join(known)})")
            rules.append(self.rule(column, value))
        subscriber = SOURCES[target].subscriber_column
        if subscriber not in {r.column for r in rules}:
            raise self.fail(key, f"columns: the privacy unit '{subscriber}' of {target} is not mapped "
                            "(every row must say whose it is)")
        return tuple(sorted(rules, key=lambda r: known.index(r.column)))

    def rule(self, column: str, node: yaml.Node) -> ColumnRule:
        entries = self.mapping(node, f"column '{column}'")
        where = f"column '{column}'" + self.from_label(entries)
        convert = self.text(entries["convert"][1], "convert") if "convert" in entries else "text"
        if convert not in CONVERSIONS:
            raise self.fail(entries["convert"][1], f"{where}: unknown conversion '{convert}' "
                            f"(one of {', '.join(CONVERSIONS)})")
        conversion = CONVERSIONS[convert]
        self.only_keys(entries, (*_RULE_KEYS, *conversion.params), f"{where} (conversion {convert})")
        for needed in conversion.required:
            if needed not in entries:
                raise self.fail(node, f"{where}: conversion {convert} needs '{needed}'")
        params = tuple((name, self.param(entries[name][1], name, conversion, where))
                       for name in conversion.params if name in entries)
        inputs = self.inputs(entries, conversion, params, node, where)
        fallback = self.rule(column, entries["fallback"][1]) if "fallback" in entries else None
        return ColumnRule(column, convert, inputs, params, fallback, node.start_mark.line + 1)

    def from_label(self, entries: dict) -> str:
        """' (from field, ...)' for errors about a rule, so they name the input field(s) too."""
        if "from" not in entries:
            return ""
        node = entries["from"][1]
        values = node.value if isinstance(node, yaml.SequenceNode) else [node]
        return f" (from field {', '.join(str(v.value) for v in values if isinstance(v, yaml.ScalarNode))})"

    def inputs(self, entries: dict, conversion, params: tuple, node: yaml.Node,
               where: str) -> tuple[str, ...]:
        if conversion.inputs == "flags":
            inputs = tuple(dict(dict(params)["flags"]))
        elif "from" in entries:
            inputs = self.text_list(entries["from"][1], f"{where}: from")
        else:
            inputs = ()
        expected = {"none": (0, 0), "one": (1, 1), "many": (1, 99), "flags": (1, 99)}[conversion.inputs]
        flags_with_from = conversion.inputs == "flags" and "from" in entries
        if not expected[0] <= len(inputs) <= expected[1] or flags_with_from:
            how = {"none": "no 'from'", "one": "one field in 'from'", "many": "a list of fields in 'from'",
                   "flags": "its fields as the keys of 'flags' (no 'from')"}[conversion.inputs]
            raise self.fail(node, f"{where}: conversion {conversion.name} takes {how}")
        return inputs

    def param(self, node: yaml.Node, name: str, conversion, where: str):
        if name in conversion.mappings:
            entries = self.mapping(node, f"{where}: {name}")
            return tuple((k, self.text(v, f"{where}: a value of {name}", k)) for k, (_, v) in entries.items())
        value = self.text(node, f"{where}: {name}")
        if value.startswith("$"):
            if value[1:] not in self.option_names:
                raise self.fail(node, f"{where}: {name} refers to option '{value[1:]}', which 'options' "
                                "does not declare")
        elif name == "timezone":
            try:
                check_timezone(value)
            except ValueError as exc:
                raise self.fail(node, f"{where}: {exc}") from None
        elif name == "otherwise" and value not in LOOKUP_OTHERWISE:
            raise self.fail(node, f"{where}: otherwise must be one of {', '.join(LOOKUP_OTHERWISE)}")
        return value

    def dropped(self, node: yaml.Node, columns: tuple[ColumnRule, ...]) -> tuple[tuple[str, str], ...]:
        mapped = {f: r.column for r in columns for f in r.all_inputs}
        found = []
        for field, (key, value) in self.mapping(node, "dropped").items():
            if field in mapped:
                raise self.fail(key, f"both mapped (to {mapped[field]}) and dropped: give it one place",
                                field)
            reason = value.value.strip() if isinstance(value, yaml.ScalarNode) else ""
            if not reason or value.tag.endswith(":null"):
                raise self.fail(value, "dropped without a reason (say why it is not carried)", field)
            found.append((field, reason))
        return tuple(found)

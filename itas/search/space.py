"""Search space YAML: which architectures a search may build, and the constraints they must meet.

```yaml
name: default
max_tokens: 256                 # output length of every component unless a stage says otherwise
stages:                         # in order; each becomes zero or more layers
  - generate:
      models: [smollm2, gemma3] # ranked: `count` picks how many of them (from the top) generate
      count: [1, 2]
      samples: [1, 3, 5]        # per generating model (a choice for each)
      temperature: [0.7]
  - critic:   {optional: true, model: [smollm2, gemma3]}
  - ranker:   {optional: true, model: smollm2, top_k: [1, 3]}
  - fuse:     {layers: [0, 1, 2], fusers: [1, 2], model: [smollm2, gemma3], critic: [false, true],
               ranker: false, top_k: 3, final_fuser: [false, true]}
  - verifier: {optional: true, model: smollm2}
  - unit_tests: {optional: true, model: smollm2, n_tests: [3, 5]}
  - vote:     {optional: true}
  - best_of_n: {optional: true, model: smollm2, mode: best}
  - augment_vote: {optional: true, augmentations: [4, 8]}          # grid tasks: generators vote over augmentations
  - ttt: {optional: true, steps: [40, 80], rank: 16, learning_rate: 0.0003}   # grid tasks: test-time training
constraints:
  max_calls_per_query: 32
  max_tokens_per_query: 40000
```

Every parameter is either a fixed value or a list to choose from. Choices map onto Optuna suggestions with
dotted names (``generate.count``, ``generate.gemma3.samples``, ``fuse.2.model``, ``critic.enabled``); a
conditional choice is only suggested when its parent is chosen (``fuse.2.*`` only when ``fuse.layers >= 2``,
``critic.model`` only when ``critic.enabled``). A ``fuse`` stage builds, for each of its layers: a critic layer
(when ``critic``), a ranker layer keeping ``top_k`` (when ``ranker``), and a layer of ``fusers`` fusers of one
model (a model chosen per layer); ``final_fuser`` adds one last single fuser. ``unit_tests`` writes tests
alongside the first layer and orders the candidates by tests passed at its position. ``augment_vote`` and
``ttt`` (grid tasks) turn the generators of the first layer into ``augment_vote`` or ``ttt`` components with the
chosen parameters (both: ``ttt`` components that vote over augmentations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itas.config import Node, did_you_mean, load_yaml
from itas.errors import ConfigError

STAGE_PARAMS: dict[str, dict[str, str]] = {
    # stage -> parameter -> kind (model | models | int | float | bool | str)
    "generate": {"models": "models", "count": "int", "samples": "int", "temperature": "float",
                 "max_tokens": "int", "system": "str"},
    "critic": {"optional": "flag", "model": "model", "max_tokens": "int"},
    "ranker": {"optional": "flag", "model": "model", "top_k": "int", "max_tokens": "int"},
    "fuse": {"layers": "int", "fusers": "int", "model": "model", "critic": "bool", "ranker": "bool",
             "top_k": "int", "final_fuser": "bool", "temperature": "float", "max_tokens": "int",
             "critic_model": "model", "ranker_model": "model"},
    "verifier": {"optional": "flag", "model": "model", "max_tokens": "int"},
    "unit_tests": {"optional": "flag", "model": "model", "n_tests": "int", "max_tokens": "int"},
    "vote": {"optional": "flag"},
    "best_of_n": {"optional": "flag", "model": "model", "mode": "str", "max_tokens": "int"},
    # grid tasks: these two turn the first layer's generators into augment_vote / ttt components
    "augment_vote": {"optional": "flag", "augmentations": "int", "transforms": "str"},
    "ttt": {"optional": "flag", "steps": "int", "rank": "int", "learning_rate": "float",
            "train_augmentations": "int", "transforms": "str"},
}
REQUIRED = {"generate": ["models"], "critic": ["model"], "ranker": ["model"], "fuse": ["model"],
            "verifier": ["model"], "unit_tests": ["model"], "best_of_n": ["model"]}


@dataclass(frozen=True)
class Choice:
    """A parameter: ``values`` has one element when it is fixed."""

    values: tuple

    @property
    def fixed(self) -> bool:
        return len(self.values) == 1


@dataclass(frozen=True)
class Stage:
    kind: str
    name: str  # prefix of its Optuna parameters
    optional: bool
    params: dict = field(hash=False)  # str -> Choice (frozen by convention: never mutated after parsing)

    def choice(self, key: str, default: Any = None) -> Choice:
        return self.params.get(key) or Choice((default,))


@dataclass(frozen=True)
class Constraints:
    max_calls_per_query: int | None = None
    max_tokens_per_query: int | None = None


@dataclass(frozen=True)
class SearchSpace:
    name: str
    source: str
    stages: tuple[Stage, ...]
    constraints: Constraints
    max_tokens: int
    description: str | None = None
    text: str = ""  # the YAML it came from, kept in the results directory

    @property
    def models(self) -> list[str]:
        names: list[str] = []
        for s in self.stages:
            for key, ch in s.params.items():
                kind = STAGE_PARAMS[s.kind].get(key)
                if kind == "models":
                    vals = [m for v in ch.values for m in (v if isinstance(v, (list, tuple)) else [v])]
                elif kind == "model":
                    vals = list(ch.values)
                else:
                    continue
                names += [v for v in vals if v not in names]
        return names

    def check_models(self, pool_names: list[str]) -> None:
        for m in self.models:
            if m not in pool_names:
                raise ConfigError(f"model '{m}' is not in the pool{did_you_mean(m, pool_names)}",
                                  source=self.source, key="stages")

    @property
    def baseline_temperature(self) -> float:
        gen = next(s for s in self.stages if s.kind == "generate")
        return float(gen.choice("temperature", 0.7).values[0])

    def baseline_models(self) -> list[str]:
        return list(next(s for s in self.stages if s.kind == "generate").params["models"].values[0])

    # ---- sampling -------------------------------------------------------------------------------------------
    def suggest(self, trial: Any) -> dict:
        """Build an architecture (as a dict of layers) from an Optuna trial's suggestions."""
        first: list[dict] = []
        layers: list[list[dict]] = [first]
        for st in self.stages:
            if st.optional and not _pick(trial, f"{st.name}.enabled", Choice((False, True))):
                continue
            def mt(key: str, st: Stage = st) -> int:
                return int(_pick(trial, f"{st.name}.{key}", st.choice(key, self.max_tokens)))

            if st.kind == "generate":
                ranked = list(st.params["models"].values[0])
                count = int(_pick(trial, f"{st.name}.count", st.choice("count", len(ranked))))
                temp = float(_pick(trial, f"{st.name}.temperature", st.choice("temperature", 0.7)))
                max_tokens = mt("max_tokens")
                system = st.params.get("system")
                for m in ranked[:count]:
                    k = int(_pick(trial, f"{st.name}.{m}.samples", st.choice("samples", 1)))
                    spec = {"type": "generator", "model": m, "samples": k, "temperature": temp,
                            "max_tokens": max_tokens}
                    if system is not None:
                        spec["system"] = system.values[0]
                    first.append(spec)
            elif st.kind in ("critic", "verifier"):
                layers.append([{"type": st.kind, "model": _pick(trial, f"{st.name}.model", st.choice("model")),
                                "max_tokens": mt("max_tokens")}])
            elif st.kind == "ranker":
                layers.append([{"type": "ranker", "model": _pick(trial, f"{st.name}.model", st.choice("model")),
                                "top_k": int(_pick(trial, f"{st.name}.top_k", st.choice("top_k", 3))),
                                "max_tokens": mt("max_tokens")}])
            elif st.kind == "fuse":
                layers += self._fuse(trial, st)
            elif st.kind == "unit_tests":
                model = _pick(trial, f"{st.name}.model", st.choice("model"))
                first.append({"type": "unit_test_generator", "model": model,
                              "n_tests": int(_pick(trial, f"{st.name}.n_tests", st.choice("n_tests", 5))),
                              "max_tokens": mt("max_tokens")})
                layers.append([{"type": "unit_test_evaluator", "model": model, "max_tokens": mt("max_tokens")}])
            elif st.kind == "vote":
                layers.append([{"type": "vote"}])
            elif st.kind == "best_of_n":
                layers.append([{"type": "best_of_n", "model": _pick(trial, f"{st.name}.model", st.choice("model")),
                                "mode": _pick(trial, f"{st.name}.mode", st.choice("mode", "best")),
                                "max_tokens": mt("max_tokens")}])
            elif st.kind in ("augment_vote", "ttt"):
                chosen = {key: _pick(trial, f"{st.name}.{key}", ch) for key, ch in st.params.items()}
                first[:] = _grid_generation(first, st.kind, chosen)
        return {"layers": [layer for layer in layers if layer]}

    def _fuse(self, trial: Any, st: Stage) -> list[list[dict]]:
        out: list[list[dict]] = []
        n_layers = int(_pick(trial, f"{st.name}.layers", st.choice("layers", 1)))
        final = bool(_pick(trial, f"{st.name}.final_fuser", st.choice("final_fuser", False)))
        temp = st.choice("temperature", 0.7).values[0]
        max_tokens = int(st.choice("max_tokens", self.max_tokens).values[0])
        top_k = st.choice("top_k", 3)
        for i in range(1, n_layers + 1):
            p = f"{st.name}.{i}"
            model = _pick(trial, f"{p}.model", st.choice("model"))
            if _pick(trial, f"{p}.critic", st.choice("critic", False)):
                cm = _pick(trial, f"{p}.critic_model", st.params.get("critic_model") or Choice((model,)))
                out.append([{"type": "critic", "model": cm, "max_tokens": max_tokens}])
            if _pick(trial, f"{p}.ranker", st.choice("ranker", False)):
                rm = _pick(trial, f"{p}.ranker_model", st.params.get("ranker_model") or Choice((model,)))
                out.append([{"type": "ranker", "model": rm, "top_k": int(_pick(trial, f"{p}.top_k", top_k)),
                             "max_tokens": max_tokens}])
            n = int(_pick(trial, f"{p}.fusers", st.choice("fusers", 1)))
            out.append([{"type": "fuser", "model": model, "temperature": temp, "max_tokens": max_tokens}
                        for _ in range(n)])
        if final:
            model = _pick(trial, f"{st.name}.final.model", st.choice("model"))
            out.append([{"type": "fuser", "model": model, "temperature": temp, "max_tokens": max_tokens}])
        return out

    def baseline(self, model: str) -> dict:
        """The single-call baseline of a pool model: one sample, the space's first temperature."""
        return {"name": f"baseline-{model}", "layers": [[{
            "type": "generator", "model": model, "samples": 1, "temperature": self.baseline_temperature,
            "max_tokens": self.max_tokens}]]}


def _grid_generation(first: list[dict], kind: str, chosen: dict) -> list[dict]:
    """The first layer with its generators sampling under augmentations (``augment_vote``) or with a test-time
    trained adapter (``ttt``); both stages together give ttt components that vote over augmentations. Each keeps
    the generator's model, samples, temperature and max_tokens (a ``system`` prompt is not carried over)."""
    out = []
    for spec in first:
        base = {k: spec[k] for k in ("model", "samples", "temperature", "max_tokens") if k in spec}
        if kind == "augment_vote" and spec["type"] == "generator":
            spec = {"type": "augment_vote", **base, **chosen}
        elif kind == "augment_vote" and spec["type"] == "ttt":
            spec = {**{k: v for k, v in chosen.items() if k == "transforms"}, **spec,
                    "augmentations": chosen.get("augmentations", 4)}
        elif kind == "ttt" and spec["type"] in ("generator", "augment_vote"):
            voting = {"augmentations": spec["augmentations"]} if spec["type"] == "augment_vote" else {}
            inherited = {"transforms": spec["transforms"]} if "transforms" in spec else {}
            spec = {"type": "ttt", **base, **inherited, **voting, **chosen}
        out.append(spec)
    return out


def _pick(trial: Any, name: str, choice: Choice) -> Any:
    if choice.fixed:
        return choice.values[0]
    return trial.suggest_categorical(name, list(choice.values))


# ---- parsing ----------------------------------------------------------------------------------------------------
def parse_space(data: Any, source: str, text: str = "") -> SearchSpace:
    root = Node(data, source).mapping(allowed=["name", "description", "max_tokens", "stages", "constraints"],
                                      required=["stages"])
    name = root.child("name").str() if root.has("name") else Path(source).stem
    description = root.child("description").str() if root.has("description") else None
    max_tokens = root.child("max_tokens").int(min=1, max=32768) if root.has("max_tokens") else 256
    stages: list[Stage] = []
    seen: set[str] = set()
    for node in root.child("stages").list(min_len=1):
        stage = _parse_stage(node)
        if stage.name in seen:
            raise node.error(f"stage '{stage.name}' appears twice; give the second one a 'name'")
        seen.add(stage.name)
        stages.append(stage)
    kinds = [s.kind for s in stages]
    if kinds.count("generate") != 1 or kinds[0] != "generate":
        raise root.child("stages").error("the first stage must be 'generate', and there must be exactly one")
    constraints = Constraints()
    if root.has("constraints"):
        c = root.child("constraints").mapping(allowed=["max_calls_per_query", "max_tokens_per_query"])
        constraints = Constraints(
            max_calls_per_query=c.child("max_calls_per_query").int(min=1) if c.has("max_calls_per_query") else None,
            max_tokens_per_query=c.child("max_tokens_per_query").int(min=1) if c.has("max_tokens_per_query")
            else None)
    return SearchSpace(name=name, source=source, stages=tuple(stages), constraints=constraints,
                       max_tokens=max_tokens, description=description, text=text)


def _parse_stage(node: Node) -> Stage:
    if isinstance(node.value, str):
        node = Node({node.value: {}}, node.source, node.path)
    node.mapping()
    if len(node.value) != 1:
        raise node.error("each stage is a mapping with one key, its kind (e.g. '- critic: {model: smollm2}')")
    kind = next(iter(node.value))
    if kind not in STAGE_PARAMS:
        raise Node(None, node.source, f"{node.path}.{kind}").error(
            f"unknown stage '{kind}'{did_you_mean(kind, STAGE_PARAMS)}")
    body = node.child(kind)
    if body.value is None:
        body = Node({}, body.source, body.path)
    allowed = list(STAGE_PARAMS[kind]) + ["name"]
    body.mapping(allowed=allowed, required=REQUIRED.get(kind, []))
    name = body.child("name").str() if body.has("name") else kind
    optional = body.child("optional").bool() if body.has("optional") else False
    params: dict[str, Choice] = {}
    for key, kind_of in STAGE_PARAMS[kind].items():
        if key == "optional" or not body.has(key):
            continue
        params[key] = _parse_choice(body.child(key), kind_of)
    if kind == "generate":
        ranked = params["models"].values[0]
        for c in params.get("count", Choice((len(ranked),))).values:
            if not 1 <= c <= len(ranked):
                raise body.child("count").error(f"{c} is out of range; must be between 1 and {len(ranked)} "
                                                f"(the number of models listed)")
    if kind == "best_of_n":
        for v in params.get("mode", Choice(("best",))).values:
            if v not in ("best", "worst"):
                raise body.child("mode").error(f"'{v}' is not allowed; allowed: best, worst")
    if kind in ("augment_vote", "ttt"):
        from itas.arc.augment import TRANSFORMS

        for v in params.get("transforms", Choice(("all",))).values:
            if v not in TRANSFORMS:
                raise body.child("transforms").error(f"'{v}' is not allowed; allowed: {', '.join(TRANSFORMS)}")
    if kind == "fuse":
        for v in params.get("layers", Choice((1,))).values:
            if not 0 <= v <= 8:
                raise body.child("layers").error(f"{v} is out of range; must be between 0 and 8")
    return Stage(kind=kind, name=name, optional=optional, params=params)


def _parse_choice(node: Node, kind: str) -> Choice:
    if kind == "models":
        items = node.list(min_len=1)
        models = tuple(i.str() for i in items)
        if len(set(models)) != len(models):
            raise node.error("a model is listed twice")
        return Choice((models,))
    values = node.list(min_len=1) if isinstance(node.value, list) else [node]
    out = []
    for v in values:
        if kind == "int":
            out.append(v.int(min=0))
        elif kind == "float":
            out.append(v.float(min=0))
        elif kind == "bool":
            out.append(v.bool())
        else:
            out.append(v.str())
    if len(set(out)) != len(out):
        raise node.error("a value is listed twice")
    return Choice(tuple(out))


BENCHMARK_SPACES = {"gsm8k": "gsm8k", "math": "math", "math500": "math", "humaneval": "code",
                    "humanevalplus": "code", "mbpp": "code", "arc": "arc", "arc-agi-1": "arc", "arc-agi-2": "arc",
                    "arc2": "arc", "arc-synthetic": "arc-synthetic"}


def default_space_for(benchmark: str) -> str:
    """The shipped space a search uses when no --space is given: the benchmark's own, else ``default``."""
    return BENCHMARK_SPACES.get(benchmark, "default")


def load_space(ref: str | Path | None) -> SearchSpace:
    """A search space file, or a shipped one by name (``default``, ``math``, ``gsm8k``, ``code``, ``archon``)."""
    from itas.paths import shipped_dir

    if ref is None:
        ref = "default"
    path = Path(ref)
    if not path.exists() and path.suffix == "" and "/" not in str(ref):
        shipped = shipped_dir("search_spaces") / f"{ref}.yaml"
        if shipped.exists():
            path = shipped
        else:
            names = sorted(p.stem for p in shipped_dir("search_spaces").glob("*.yaml"))
            raise ConfigError(f"no search space file or shipped space named '{ref}'{did_you_mean(str(ref), names)}",
                              key="--space")
    data = load_yaml(path)
    return parse_space(data, str(path), text=path.read_text())

"""Pool YAML: the models an architecture may use and where they are served.

```yaml
models:
  smollm2:                       # the name used in architectures and search spaces
    model: smollm2-135m-instruct # the model id the endpoint serves
    context_length: 2048
    max_concurrency: 256         # requests in flight per endpoint
    endpoints:                   # several = replicas (unless `serve` is given)
      - url: http://127.0.0.1:8000/v1
    api_key_env: OPENAI_API_KEY  # optional; the key itself is never written anywhere
    price: {input: 0.10, output: 0.40}   # USD per million tokens; all models priced or none
    turns: cpu                   # optional: models of one group share compute; they send requests in turns
    serve:                       # optional: itas starts the server itself (instead of `endpoints`)
      replicas: 1
      args: ["{python}", "-m", "vllm.entrypoints.openai.api_server", "--port", "{port}", ...]
      env: {VLLM_CPU_KVCACHE_SPACE: "2"}
      ready_timeout: 600
      lora: {max_rank: 16, max_loras: 4}  # optional: how to serve LoRA adapters (test-time training)
```

In `serve.args` and `serve.env`, `{python}` is the serving environment's interpreter, `{models_dir}` the
prepared-models folder, `{port}` a free port chosen at start, `{cpu_dtype}` what a vLLM CPU server computes in
fastest on this machine (bfloat16 with AVX-512, float32 on an x86 CPU without it; ``ITAS_CPU_DTYPE`` overrides).

`serve.lora` says how the server loads LoRA adapters at runtime, which the ``ttt`` component needs. It is
applied only when a run needs adapters of that model (a search space with a ``ttt`` stage that uses it, an
architecture with a ``ttt`` component on it, ``itas pool up --lora``), since LoRA slows base generation by
30-40% on the CPU: the server then gets ``--enable-lora --max-lora-rank R --max-loras N`` and the environment
variable ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` (see ``itas.pool.serving.server_command``). ``max_rank``
(vLLM allows 1, 8, 16, 32, 64, 128, 256, 320, 512) must be at least the rank of every adapter trained;
``max_loras`` is how many adapters one batch may use (default 4).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

from itas.config import Node, load_yaml
from itas.errors import ConfigError

DEFAULT_POOL_NAME = "default (embedded)"


@dataclass(frozen=True)
class Price:
    input: float  # USD per million prompt tokens
    output: float  # USD per million completion tokens


@dataclass(frozen=True)
class Endpoint:
    url: str
    max_concurrency: int


LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's allowed --max-lora-rank values
LORA_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"


@dataclass(frozen=True)
class LoraSpec:
    """How a managed server serves LoRA adapters, when a run needs them (``serve.lora``)."""

    max_rank: int = 16
    max_loras: int = 4

    def to_dict(self) -> dict:
        return {"max_rank": self.max_rank, "max_loras": self.max_loras}


@dataclass(frozen=True)
class ServeSpec:
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    replicas: int = 1
    ready_timeout: float = 600.0
    lora: LoraSpec | None = None

    def spec_hash(self, model_name: str) -> str:
        """Identifies the server's command line (not its LoRA settings: a record says whether LoRA is on), with
        what ``{cpu_dtype}`` stands for here."""
        parts: list = [model_name, self.args, self.env]
        if any("{cpu_dtype}" in a for a in self.args) or any("{cpu_dtype}" in v for _, v in self.env):
            from itas.pool.serving import cpu_dtype

            parts.append(cpu_dtype())
        blob = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def lora_in_args(self) -> LoraSpec | None:
        """LoRA settings written into ``args`` by hand (``--enable-lora`` ...): such a server always has LoRA."""
        args = list(self.args)
        if "--enable-lora" not in args:
            return None

        def value(flag: str, default: int) -> int:
            for i, a in enumerate(args):
                if a == flag and i + 1 < len(args) and str(args[i + 1]).isdigit():
                    return int(args[i + 1])
                if a.startswith(flag + "=") and a.split("=", 1)[1].isdigit():
                    return int(a.split("=", 1)[1])
            return default

        return LoraSpec(max_rank=value("--max-lora-rank", 16), max_loras=value("--max-loras", 1))

    @property
    def lora_available(self) -> LoraSpec | None:
        """The LoRA settings a server of this spec runs with when a run needs adapters (None: it cannot)."""
        return self.lora_in_args or self.lora


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model: str
    context_length: int
    max_concurrency: int
    endpoints: tuple[Endpoint, ...] = ()
    api_key_env: str | None = None
    price: Price | None = None
    serve: ServeSpec | None = None
    supports_n: bool = True
    turns: str | None = None  # models of the same group share compute: their requests go in turns

    @property
    def managed(self) -> bool:
        return self.serve is not None


@dataclass(frozen=True)
class PoolConfig:
    models: tuple[ModelSpec, ...]
    source: str = DEFAULT_POOL_NAME
    _by_name: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        self._by_name.update({m.name: m for m in self.models})

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def __getitem__(self, name: str) -> ModelSpec:
        try:
            return self._by_name[name]
        except KeyError:
            from itas.config import did_you_mean

            raise ConfigError(f"unknown model '{name}'{did_you_mean(name, self.names)}", source=self.source) from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    @property
    def priced(self) -> bool:
        return bool(self.models) and self.models[0].price is not None

    @property
    def cost_unit(self) -> str:
        return "USD" if self.priced else "tokens"

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """Cost of one call: money when the pool is priced, tokens otherwise."""
        spec = self[model]
        if spec.price is None:
            return float(prompt_tokens + completion_tokens)
        return (prompt_tokens * spec.price.input + completion_tokens * spec.price.output) / 1e6

    def only(self, names) -> PoolConfig:
        """The pool restricted to ``names`` (so only the servers an architecture uses are started)."""
        names = set(names)
        return PoolConfig(models=tuple(m for m in self.models if m.name in names), source=self.source)

    def with_endpoints(self, endpoints: dict[str, list[str]]) -> PoolConfig:
        """The same pool with managed models pointed at running servers (used once they are up)."""
        models = []
        for m in self.models:
            if m.name in endpoints:
                eps = tuple(Endpoint(url=u, max_concurrency=m.max_concurrency) for u in endpoints[m.name])
                m = ModelSpec(**{**m.__dict__, "endpoints": eps})
            models.append(m)
        return PoolConfig(models=tuple(models), source=self.source)

    def to_dict(self) -> dict:
        out: dict = {"models": {}}
        for m in self.models:
            d: dict = {"model": m.model, "context_length": m.context_length, "max_concurrency": m.max_concurrency}
            if m.endpoints and not m.managed:
                d["endpoints"] = [{"url": e.url, "max_concurrency": e.max_concurrency} for e in m.endpoints]
            if m.api_key_env:
                d["api_key_env"] = m.api_key_env
            if m.price:
                d["price"] = {"input": m.price.input, "output": m.price.output}
            if m.serve:
                d["serve"] = {"args": list(m.serve.args), "env": dict(m.serve.env), "replicas": m.serve.replicas,
                              "ready_timeout": m.serve.ready_timeout}
                if m.serve.lora is not None:
                    d["serve"]["lora"] = m.serve.lora.to_dict()
            if not m.supports_n:
                d["supports_n"] = False
            if m.turns is not None:
                d["turns"] = m.turns
            out["models"][m.name] = d
        return out


_MODEL_KEYS = ["model", "context_length", "max_concurrency", "endpoints", "api_key_env", "price", "serve",
               "supports_n", "turns"]


def parse_pool(data: object, source: str) -> PoolConfig:
    root = Node(data, source).mapping(allowed=["models"], required=["models"])
    models_node = root.child("models").mapping()
    if not models_node.value:
        raise models_node.error("the pool has no models; add at least one under 'models'")
    models = [_parse_model(name, node) for name, node in models_node.items()]
    priced = [m.name for m in models if m.price is not None]
    if priced and len(priced) != len(models):
        unpriced = [m.name for m in models if m.price is None]
        raise ConfigError(
            f"either every model has a price or none has; priced: {', '.join(priced)}; "
            f"unpriced: {', '.join(unpriced)}",
            source=source, key=f"models.{unpriced[0]}.price",
        )
    return PoolConfig(models=tuple(models), source=source)


def _parse_model(name: str, node: Node) -> ModelSpec:
    node.mapping(allowed=_MODEL_KEYS, required=["model"])
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise node.error(f"model name '{name}' may contain only letters, digits, '-', '_' and '.'")
    model = node.child("model").str()
    context_length = node.child("context_length").int(min=16) if node.has("context_length") else 4096
    max_conc = node.child("max_concurrency").int(min=1) if node.has("max_concurrency") else 256
    api_key_env = node.child("api_key_env").str() if node.has("api_key_env") else None
    if api_key_env and not api_key_env.replace("_", "").isalnum():
        raise node.child("api_key_env").error(
            "must be the NAME of an environment variable (letters, digits, '_'), never the key itself")
    price = None
    if node.has("price"):
        p = node.child("price").mapping(allowed=["input", "output"], required=["input", "output"])
        price = Price(input=p.child("input").float(min=0), output=p.child("output").float(min=0))
    endpoints: list[Endpoint] = []
    if node.has("endpoints"):
        for ep in node.child("endpoints").list(min_len=1):
            if isinstance(ep.value, str):
                ep = Node({"url": ep.value}, ep.source, ep.path)
            ep.mapping(allowed=["url", "max_concurrency"], required=["url"])
            url = ep.child("url").str()
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ep.child("url").error(f"'{url}' is not an http(s) URL such as http://127.0.0.1:8000/v1")
            conc = ep.child("max_concurrency").int(min=1) if ep.has("max_concurrency") else max_conc
            endpoints.append(Endpoint(url=url.rstrip("/"), max_concurrency=conc))
    serve = None
    if node.has("serve"):
        s = node.child("serve").mapping(allowed=["args", "env", "replicas", "ready_timeout", "lora"],
                                        required=["args"])
        args = [a.value for a in s.child("args").list(min_len=1)]
        for i, a in enumerate(args):
            if not isinstance(a, (str, int, float)) or isinstance(a, bool):
                raise s.child("args").child(i).error("each argument must be a string or a number")
        if not any("{port}" in str(a) for a in args):
            raise s.child("args").error("must contain '{port}' so itas can choose a free port")
        env = {}
        if s.has("env"):
            for k, v in s.child("env").mapping().items():
                if not isinstance(v.value, (str, int, float)) or isinstance(v.value, bool):
                    raise v.error("environment values must be strings or numbers")
                env[k] = str(v.value)
        serve = ServeSpec(
            args=tuple(str(a) for a in args),
            env=tuple(sorted(env.items())),
            replicas=s.child("replicas").int(min=1, max=16) if s.has("replicas") else 1,
            ready_timeout=s.child("ready_timeout").float(min=1) if s.has("ready_timeout") else 600.0,
            lora=_parse_lora(s.child("lora")) if s.has("lora") else None,
        )
    if serve and endpoints:
        raise node.error("give either 'endpoints' (servers you run) or 'serve' (itas starts them), not both")
    if not serve and not endpoints:
        raise node.error("needs 'endpoints' (a list of URLs) or 'serve' (how itas starts the server)")
    supports_n = node.child("supports_n").bool() if node.has("supports_n") else True
    turns = None
    if node.has("turns"):
        turns = node.child("turns").str()
        if not turns.replace("-", "").replace("_", "").isalnum():
            raise node.child("turns").error(f"'{turns}' is not a group name (letters, digits, '-', '_'), such as cpu")
    return ModelSpec(name=name, model=model, context_length=context_length, max_concurrency=max_conc,
                     endpoints=tuple(endpoints), api_key_env=api_key_env, price=price, serve=serve,
                     supports_n=supports_n, turns=turns)


def _parse_lora(node: Node) -> LoraSpec:
    node.mapping(allowed=["max_rank", "max_loras"])
    rank = LoraSpec.max_rank
    if node.has("max_rank"):
        r = node.child("max_rank")
        rank = r.int()
        if rank not in LORA_RANKS:
            raise r.error(f"{rank} is not a LoRA rank vLLM serves; allowed: {', '.join(map(str, LORA_RANKS))}")
    loras = node.child("max_loras").int(min=1, max=256) if node.has("max_loras") else LoraSpec.max_loras
    return LoraSpec(max_rank=rank, max_loras=loras)


def load_pool(path: str | Path | None = None) -> PoolConfig:
    """The pool at ``path``, or the embedded default pool when no path is given."""
    if path is None:
        text = resources.files("itas.pool").joinpath("default_pool.yaml").read_text()
        import yaml

        return parse_pool(yaml.safe_load(text), DEFAULT_POOL_NAME)
    return parse_pool(load_yaml(path), str(path))

"""The parts of benches/llm_peers/run.py that know the programs under test: the fake
OpenAI-compatible provider (nginx), the install of LiteLLM (a venv) and of Portkey's
gateway (npm, in a scratch directory), and the configuration and command line of each
gateway (microgateway, LiteLLM proxy, Portkey)."""

import json
import os
import shutil
import subprocess
import sys

from helpers import free_port  # benches/load/helpers.py (run.py puts it on sys.path)

# Provider key the gateways inject and the fake provider checks (a 401 otherwise), and
# the key clients present to the gateways that authenticate them.
PROVIDER_KEY = "sk-fake-provider-key"
CLIENT_KEY = "sk-bench-client"
MODELS = {"json": "bench-json", "sse": "bench-sse"}

# LiteLLM 1.82.7 and 1.82.8 on PyPI were the credential-stealing uploads of March 2026
# (BerriAI/litellm#24518); they are refused whatever --litellm-version says.
LITELLM_BAD = {"1.82.7", "1.82.8"}

# @portkey-ai/gateway asks for @hono/node-server ^1.3.3, and npm picks the newest 1.x. From
# 1.14.2 on, node-server's Response keeps the upstream fetch's immutable Headers, and
# Portkey's updateHeaders then fails every request with `TypeError: immutable` (a 500;
# Portkey-AI/gateway#1389). 1.14.1 is the last release that copies them.
PORTKEY_OVERRIDES = {"@hono/node-server": "1.14.1"}


def chat_completion():
    """The non-streaming answer: an OpenAI chat.completion with usage (~330 bytes)."""
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello! This is the fake provider answering."},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30},
        },
        separators=(",", ":"),
    )


def sse_stream():
    """The streaming answer: 20 chat.completion.chunk events (a role chunk, 17 content
    chunks, a finish_reason chunk, a usage chunk with empty choices) and `data: [DONE]`."""

    def chunk(choices, usage=None):
        body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
                "model": "gpt-4o-mini-2024-07-18", "choices": choices}
        if usage is not None:
            body["usage"] = usage
        return "data: " + json.dumps(body, separators=(",", ":")) + "\n\n"

    events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    events += [chunk([{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}]) for i in range(17)]
    events.append(chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    events.append(chunk([], {"prompt_tokens": 21, "completion_tokens": 17, "total_tokens": 38}))
    return "".join(events) + "data: [DONE]\n\n"


def request_body(mode):
    body = {
        "model": MODELS[mode],
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say hello in a few words."},
        ],
        "max_tokens": 32,
    }
    if mode == "sse":
        body["stream"] = True
    return json.dumps(body, separators=(",", ":"))


def nginx_literal(text):
    """``text`` as a single-quoted nginx string (no variables in it: it has no ``$``)."""
    assert "$" not in text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def provider_server_block(port, mode):
    """One nginx server of the fake provider: POST /v1/chat/completions answers the fixed
    chat.completion (json) or SSE stream (sse) when the provider key is presented, 401
    otherwise; a GET / answers "ok" (readiness)."""
    if mode == "json":
        kind, body = "application/json", chat_completion()
    else:
        kind, body = "text/event-stream", sse_stream()
    return (
        f"server {{ listen 127.0.0.1:{port} backlog=4096; keepalive_requests 1000000; "
        f"location = / {{ return 200 'ok'; }} "
        f"location /v1/chat/completions {{ default_type {kind}; "
        f'if ($http_authorization != "Bearer {PROVIDER_KEY}") {{ return 401 \'{{"error":{{"message":"bad key"}}}}\'; }} '
        f"return 200 {nginx_literal(body)}; }} }}"
    )


# --- installs (outside the network namespace: the registries are needed) -------------


def install_litellm(peers_dir, version, log):
    """A venv with ``litellm[proxy]==version`` under ``peers_dir``, reused when present.
    Returns (litellm executable, installed version) or raises RuntimeError."""
    if version in LITELLM_BAD:
        raise RuntimeError(f"litellm {version} is one of the compromised uploads (BerriAI/litellm#24518)")
    venv = os.path.join(peers_dir, f"litellm-{version}")
    exe = os.path.join(venv, "bin", "litellm")
    py = os.path.join(venv, "bin", "python")
    if not os.access(exe, os.X_OK):
        log(f"== installing litellm[proxy]=={version} into {venv} (pip, a few minutes)")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        res = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              f"litellm[proxy]=={version}"], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"pip install litellm[proxy]=={version} failed: {res.stderr.strip()[-800:]}")
    got = subprocess.run([py, "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")})
    if got.returncode != 0:
        raise RuntimeError(f"the litellm venv {venv} is broken: {got.stderr.strip()[-400:]}")
    installed = got.stdout.strip()
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    if installed in LITELLM_BAD or os.path.exists(os.path.join(site, "litellm_init.pth")):
        raise RuntimeError(f"{venv} holds a compromised litellm ({installed}); delete it")
    return exe, installed


def install_portkey(peers_dir, version, log):
    """``npm install @portkey-ai/gateway@version`` (no install scripts) in a scratch
    directory under ``peers_dir``, reused when present. Returns (start-server.js, version,
    the versions of the Hono packages it runs on)."""
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} not found (apt-get install nodejs npm)")
    root = os.path.join(peers_dir, f"portkey-{version}")
    pkg = os.path.join(root, "node_modules", "@portkey-ai", "gateway")
    entry = os.path.join(pkg, "build", "start-server.js")
    manifest_path = os.path.join(root, "package.json")
    try:
        with open(manifest_path) as f:
            current = json.load(f).get("overrides")
    except (OSError, ValueError):
        current = None
    if not os.path.exists(entry) or current != PORTKEY_OVERRIDES:
        log(f"== installing @portkey-ai/gateway@{version} into {root} (npm, with {PORTKEY_OVERRIDES})")
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        with open(manifest_path, "w") as f:
            json.dump({"private": True, "overrides": PORTKEY_OVERRIDES}, f)
        res = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts",
                              f"@portkey-ai/gateway@{version}"], cwd=root, capture_output=True, text=True)
        if res.returncode != 0 or not os.path.exists(entry):
            raise RuntimeError(f"npm install @portkey-ai/gateway@{version} failed: {res.stderr.strip()[-800:]}")
    versions = []
    for name in ("@portkey-ai/gateway", "@hono/node-server", "hono"):
        with open(os.path.join(root, "node_modules", name, "package.json")) as f:
            versions.append(json.load(f)["version"])
    return entry, versions[0], f"@hono/node-server {versions[1]}, hono {versions[2]}"


# --- configurations and command lines (inside the namespace) -------------------------


def microgateway_toml(work, name, port, providers, policy):
    """Two OpenAI upstreams (one per fake-provider port) behind `/v1`, told apart by the
    Host header (`json.llm`, `sse.llm`) so that clients use the same path as on every other
    gateway. ``policy``: the production-like route, `builtin://api_key` in `auth` and
    `builtin://llm_policy` in `post_auth` (allowlist, request-size limit, request and token
    budgets per app); without it the bare LLM route (key injection and usage metering only)."""
    upstreams = routes = ""
    for mode, provider in providers.items():
        upstreams += f"""[[upstreams]]
name = "llm-{mode}"
targets = ["http://127.0.0.1:{provider}"]
llm = {{ provider = "openai", api_key_env = "MG_BENCH_OPENAI_KEY" }}
"""
        routes += f"""[[routes]]
name = "{mode}"
host = "{mode}.llm"
path_prefix = "/v1"
upstream = "llm-{mode}"
"""
    plugins = ""
    if policy:
        models = json.dumps(list(MODELS.values()))
        plugins = f"""[[plugins]]
name = "client-keys"
command = "builtin://api_key"
hook_type = "auth"
config = {{ keys = [{{ key = "{CLIENT_KEY}", identity = "bench", app_id = "bench-app" }}] }}
[[plugins]]
name = "llm-policy"
command = "builtin://llm_policy"
hook_type = "post_auth"
config = {{ models = {models}, window = "1h", max_request_tokens = 8000, apps = {{ "bench-app" = {{ models = {models}, tokens_per_window = 1000000000000, requests_per_window = 1000000000 }} }} }}
"""
    path = os.path.join(work, f"{name}.toml")
    with open(path, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
shutdown_timeout = "1s"
[admin]
listen = "127.0.0.1:{free_port()}"
data_dir = "{work}/{name}-data"
watch_config = false
[log]
level = "warn"
{upstreams}{routes}{plugins}""")
    return path


def litellm_yaml(work, providers):
    """LiteLLM's proxy config: one model per fake-provider port, the master key as the
    clients' key (no database: no virtual keys, budgets or spend logs), telemetry off."""
    lines = ["model_list:"]
    for mode, provider in providers.items():
        lines += [
            f"  - model_name: {MODELS[mode]}",
            "    litellm_params:",
            "      model: openai/gpt-4o-mini",
            f"      api_base: http://127.0.0.1:{provider}/v1",
            "      api_key: os.environ/BENCH_OPENAI_KEY",
        ]
    lines += [
        "litellm_settings:",
        "  telemetry: false",
        "  drop_params: true",
        "general_settings:",
        f"  master_key: {CLIENT_KEY}",
        "  disable_spend_logs: true",
    ]
    path = os.path.join(work, "litellm.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def litellm_env(work):
    """The environment LiteLLM runs with: nothing of the caller's but PATH, and every
    switch that keeps it from reaching out (telemetry, the remote model-cost map, the
    feedback box), plus a scratch HOME."""
    home = os.path.join(work, "litellm-home")
    os.makedirs(home, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "LANG": "C.UTF-8",
        "BENCH_OPENAI_KEY": PROVIDER_KEY,
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
        "LITELLM_LOG": "ERROR",
        "ANONYMIZED_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "DISABLE_SCHEMA_UPDATE": "True",
        "HF_HUB_OFFLINE": "1",
        "TIKTOKEN_CACHE_DIR": os.path.join(home, "tiktoken"),
    }


def portkey_env(work):
    home = os.path.join(work, "portkey-home")
    os.makedirs(home, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "NODE_ENV": "production",
        "DO_NOT_TRACK": "1",
    }

"""``radvlm-verl doctor``: does verl load the plugin, and what does this machine have?

verl imports plugins inside ``import verl`` and logs failures only at DEBUG level, so a broken
install otherwise shows up hours later as ``Unknown reward manager: radvlm`` in a Ray worker. The
check runs in a fresh interpreter (as a Ray worker would) and, if the manager is missing, imports
the plugin module directly to show the real exception.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from radvlm_verl.checks.result import CheckResult

# Runs in a fresh interpreter; prints one JSON object on its last line.
_PROBE = textwrap.dedent(
    """
    import json, importlib, importlib.metadata as md, traceback
    report = {}
    try:
        import verl
        from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER
        report["managers"] = sorted(REWARD_MANAGER)
        report["verl_import_error"] = None
    except Exception:
        report["managers"] = []
        report["verl_import_error"] = traceback.format_exc()
    report["entry_points"] = [f"{ep.name} = {ep.value}" for ep in md.entry_points(group="verl.plugins")]
    report["plugin_error"] = None
    if "radvlm" not in report["managers"]:
        try:
            importlib.import_module("radvlm_verl.integration.reward_manager")  # what the plugin registers
        except Exception:
            report["plugin_error"] = traceback.format_exc()
    versions = {}
    for dist in ("radvlm-verl", "verl", "torch", "torchvision", "transformers", "ray", "vllm", "qwen-vl-utils",
                 "bert-score", "radgraph", "pycocotools"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    report["versions"] = versions
    try:
        import torch
        report["cuda"] = torch.cuda.is_available()
        report["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as exc:
        report["cuda"], report["gpus"] = False, [f"torch unavailable: {exc}"]
    print(json.dumps(report))
    """
)


def _weights() -> list[dict]:
    """Which metric weights are found (``RADVLM_VERL_WEIGHTS`` or the HF cache), checked against the manifest."""
    from radvlm_verl.scorers.weights import describe_weights

    return describe_weights(verify=True)


def run_probe(env: dict[str, str] | None = None) -> dict:
    """Run the probe in a fresh interpreter; what it found, or ``probe_error`` when it did not finish."""
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"managers": [], "probe_error": proc.stderr[-4000:] or f"probe exited {proc.returncode}"}
    return json.loads(lines[-1])


def main(as_json: bool = False) -> int:
    """Print the report; return 0 when the ``radvlm`` manager is registered by ``import verl``."""
    report = run_probe()
    report["weights"] = _weights()
    ok = "radvlm" in report.get("managers", [])
    report["ok"] = ok
    if as_json:
        print(json.dumps(report, indent=2))
        return 0 if ok else 1

    mark = "OK " if ok else "FAIL"
    print(f"[{mark}] plugin loaded by `import verl`: {'yes' if ok else 'no'}")
    print(f"       registered reward managers: {', '.join(report.get('managers', [])) or '(none)'}")
    print(f"       verl.plugins entry points: {', '.join(report.get('entry_points', [])) or '(none)'}")
    for key in ("probe_error", "verl_import_error", "plugin_error"):
        if report.get(key):
            print(f"       {key.replace('_', ' ')}:\n" + textwrap.indent(report[key].rstrip(), "         "))
    if not ok and not report.get("plugin_error"):
        print("       hint: is radvlm-verl installed in this Python (pip show radvlm-verl), and is "
              "VERL_USE_EXTERNAL_PLUGINS unset or 'auto'?")
    print("versions:")
    for dist, version in report.get("versions", {}).items():
        print(f"       {dist:<14} {version or '-'}")
    gpus = report.get("gpus") or []
    print(f"accelerator: {'CUDA, ' + ', '.join(gpus) if report.get('cuda') else 'none (CPU only: rewards, converters and tests run; training needs a GPU)'}")
    print("metric weights:")
    if not report["weights"]:
        print("       (no model-based scorer weights configured)")
    for item in report["weights"]:
        if item["present"]:
            print(f"       {item['name']:<22} found    {item['path']}  {item['status']}: {item['detail']}  "
                  f"(used by {item['used_by']})")
        else:
            print(f"       {item['name']:<22} missing  (used by {item['used_by']}; radvlm-verl weights fetch "
                  f"--only {item['name']}, or by hand: {item['how_to_get']})")
    return 0 if ok else 1


def check_plugin(result: CheckResult) -> None:
    """Preflight check: verl registers the radvlm manager on ``import verl`` in a fresh process (as in Ray workers)."""
    probe = run_probe()
    if "radvlm" in probe.get("managers", []):
        result.notes.append("plugin: verl registers the radvlm reward manager")
        return
    detail = probe.get("plugin_error") or probe.get("verl_import_error") or probe.get("probe_error") or ""
    last = detail.strip().splitlines()[-1] if detail.strip() else "no error was raised"
    result.errors.append(
        f"verl does not load the radvlm-verl plugin ({last}); run `radvlm-verl doctor`, and check that "
        "radvlm-verl is installed in this Python and VERL_USE_EXTERNAL_PLUGINS is unset or 'auto'"
    )

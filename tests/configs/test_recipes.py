"""The shipped GRPO configs compose with verl 0.9.1's ppo_trainer, set only keys verl has, no legacy key,
the paper's settings, and pass verl's own validate_config for the paper's GPU layouts."""

import functools
import re
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from radvlm_verl.checks import config as preflight_config
from radvlm_verl.checks.config import REQUIRED_MARK, config_groups, unset_required

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "radvlm_verl" / "configs"
GROUPS = {g: sorted(p.stem for p in (CONFIGS / g).glob("*.yaml")) for g in ("task", "policy", "placement", "reward_service")}
FILLED = ["data.train_files=/d/train.parquet", "data.val_files=/d/val.parquet"]
# The scorer service's configuration (reward kwarg `scorer_service`), as agreed with its developer.
SCORER_SERVICE_KEYS = {"enabled", "namespace", "replicas", "num_gpus", "num_cpus", "resources", "max_batch_size",
                       "max_wait_ms", "call_timeout_s", "max_retries", "ready_timeout_s", "max_restarts",
                       "fallback_score"}
# Read by the radvlm reward manager (and verl's DAPO manager), and by verl's get_custom_reward_fn
# (task=report_green); absent from verl's reward.yaml.
EXTRA_PREFIXES = ("reward.reward_kwargs.", "reward.custom_reward_function.reward_kwargs")


# Which reward each task must select (paper.md §4; docs/rewards.md, docs/grounding.md).
TASK_REWARD = {"report_radcliq": ("report_reward", "radcliq"), "report_bertscore": ("report_reward", "bertscore"),
               "report_gleu": ("report_reward", "gleu"), "report_radgraph_complete": ("report_reward", "radgraph"),
               "grounding_soft_f1": ("grounding_reward", "soft_f1"), "report_green": ("report_reward", "green")}


@functools.lru_cache(maxsize=None)
def _compose_cached(config_name, overrides):
    return preflight_config.compose(config_name, overrides)


def compose(config_name, overrides):
    """Composition is ~1 s each on the dev machine: compose each distinct override list once."""
    return _compose_cached(config_name, tuple(overrides))


def paper_runs():
    """(task, policy) of every command in recipes/README.md's paper table."""
    text = (REPO / "recipes" / "README.md").read_text()
    return re.findall(r"`bash recipes/run\.sh (\w+) (\w+)`", text)


@pytest.fixture(scope="module")
def verl_baseline():
    """verl's own ppo_trainer, composed exactly as main_ppo does with no recipe."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        cfg = hydra_compose(config_name="ppo_trainer")
    GlobalHydra.instance().clear()
    return OmegaConf.to_container(cfg, resolve=False)


def leaves(node, prefix=""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def lookup(tree, dotted):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def unknown_keys(raw, baseline):
    """Keys of ``raw`` verl does not have: not in ppo_trainer, not under a free-form {} of it, not ours."""
    bad = []
    for key, _ in leaves(raw):
        if key.startswith(EXTRA_PREFIXES) or lookup(baseline, key)[0]:
            continue
        parts = key.split(".")
        prefixes = (".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1))
        if not any(lookup(baseline, p) == (True, {}) for p in prefixes):
            bad.append(key)
    return bad


def combos():
    """Every paper run, with the placement and reward-service options cycled through them (all covered)."""
    placements, services = GROUPS["placement"], GROUPS["reward_service"]
    return [(f"task={t}", f"policy={p}", f"placement={placements[i % len(placements)]}",
             f"reward_service={services[i % len(services)]}") for i, (t, p) in enumerate(paper_runs())]


def test_combos_cover_every_option():
    used = {o for c in combos() for o in c}
    assert used == {f"{g}={o}" for g, options in GROUPS.items() for o in options}


def test_readme_table_covers_every_task_and_policy():
    runs = paper_runs()
    assert len(runs) == 12 and len(set(runs)) == 12  # the paper's 11 rows and report_green
    assert {t for t, _ in runs} == set(GROUPS["task"])
    assert {p for _, p in runs} == set(GROUPS["policy"])


@pytest.mark.parametrize("choice", combos(), ids=lambda c: "+".join(x.split("=")[1] for x in c))
def test_every_key_exists_in_verl(choice, verl_baseline):
    cfg, choices = compose("grpo", [*choice, *FILLED])
    for override in choice:
        group, option = override.split("=")
        assert choices[group] == option
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert unknown_keys(raw, verl_baseline) == []
    # legacy sections untouched: verl 0.9.x ignores them, so a recipe value there would be lost silently
    for section in ("custom_reward_function", "reward_model", "sandbox_fusion"):
        assert raw[section] == verl_baseline[section], section
    assert raw["reward"]["reward_manager"] == {**verl_baseline["reward"]["reward_manager"], "name": "radvlm"}
    assert raw["data"]["image_patch_size"] == 16
    key, value = TASK_REWARD[choices["task"]]
    assert raw["reward"]["reward_kwargs"][key] == value


def test_unknown_key_detector_catches_typos(verl_baseline):
    """The key check can fail: a misspelt key and an invented section are reported, free-form dicts are not."""
    cfg, _ = compose("grpo", [*FILLED, "+actor_rollout_ref.rollout.temprature=1.0", "+trainer.v2.x=1",
                              "+actor_rollout_ref.rollout.engine_kwargs.vllm.mm_processor_cache_gb=0",
                              "+reward.reward_kwargs.report_min_chars=6"])
    bad = unknown_keys(OmegaConf.to_container(cfg, resolve=False), verl_baseline)
    assert bad == ["actor_rollout_ref.rollout.temprature", "trainer.v2.x"]


def test_paper_settings():
    """Values of paper.md §2 stage 3, per task and policy."""
    report, _ = compose("grpo", FILLED)
    grounding, _ = compose("grpo", ["task=grounding_soft_f1", "policy=qwen3vl_8b_thinking", *FILLED])
    thinking_report, _ = compose("grpo", ["task=report_radcliq", "policy=radvlm_thinking", "placement=one_node_8gpu",
                                           "reward_service=dedicated_node", *FILLED])
    for cfg in (report, grounding):
        actor, rollout = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout
        assert cfg.algorithm.adv_estimator == "grpo" and cfg.algorithm.use_kl_in_reward is False
        assert (cfg.data.train_batch_size, rollout.n, actor.ppo_mini_batch_size) == (512, 8, 128)
        assert (actor.optim.lr, actor.kl_loss_coef, actor.kl_loss_type) == (1e-6, 0.01, "low_var_kl")
        assert (actor.clip_ratio_low, actor.clip_ratio_high, actor.entropy_coeff) == (0.20, 0.28, 0)
        assert (rollout.temperature, rollout.top_p, rollout.top_k, rollout.tensor_model_parallel_size) == (1.0, 1.0, -1, 1)
        assert cfg.actor_rollout_ref.rollout.val_kwargs.do_sample is False
    assert (report.data.max_prompt_length, report.data.max_response_length) == (3072, 1024)
    assert report.actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu == 4
    assert report.trainer.total_epochs == 1
    assert report.reward.reward_kwargs == {"report_reward": "radcliq", "grounding_box_format": "qwen_rel1000"}
    assert (grounding.data.max_prompt_length, grounding.data.max_response_length) == (4096, 4096)
    assert grounding.actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu == 8
    assert grounding.trainer.total_epochs == 10
    assert grounding.actor_rollout_ref.model.path == "Qwen/Qwen3-VL-8B-Thinking"
    assert thinking_report.data.max_response_length == 4096 and thinking_report.data.max_prompt_length == 3072


def test_required_values_are_marked_not_defaulted():
    """Unset paths stay SET_ME (verl's gsm8k defaults never leak through) and fail on resolution."""
    cfg, _ = compose("grpo", ["policy=radvlm", "placement=multi_node"])
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert sorted(unset_required(raw)) == ["actor_rollout_ref.model.path", "data.train_files", "data.val_files",
                                           "trainer.nnodes"]
    assert REQUIRED_MARK in raw["data"]["train_files"] and "gsm8k" not in str(raw["data"])
    with pytest.raises(Exception, match="SET_ME.data.train_files"):
        _ = cfg.data.train_files


@pytest.mark.parametrize("service", ["spare_gpu", "dedicated_node"])
def test_reward_service_keys(service):
    cfg, _ = compose("grpo", [f"reward_service={service}", *FILLED])
    settings = OmegaConf.to_container(cfg.reward.reward_kwargs.scorer_service)
    assert settings["enabled"] is True and set(settings) <= SCORER_SERVICE_KEYS
    if service == "dedicated_node":
        assert settings["resources"] == {"reward_node": 1}
    else:
        assert settings["replicas"] * settings["num_gpus"] == 1.0 and not settings.get("resources")


def test_default_reward_service_sets_nothing():
    cfg, _ = compose("grpo", FILLED)
    assert "scorer_service" not in cfg.reward.reward_kwargs


def test_grpo_report_alias_equals_grpo_defaults():
    alias, _ = compose("grpo_report", FILLED)
    base, _ = compose("grpo", FILLED)
    assert OmegaConf.to_container(alias, resolve=False) == OmegaConf.to_container(base, resolve=False)


@pytest.mark.parametrize("placement,nodes,gpus", [("one_node_8gpu", 1, 8), ("multi_node", 8, 4)])
@pytest.mark.parametrize("task", ["report_radcliq", "grounding_soft_f1"])
def test_verl_validate_config_accepts_paper_layouts(placement, nodes, gpus, task):
    """verl's driver-side validation (batch divisibility etc.) for 8 GPUs and the paper's 8 x 4 GH200."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    cfg, _ = compose("grpo", [f"task={task}", f"placement={placement}", f"trainer.nnodes={nodes}",
                              f"trainer.n_gpus_per_node={gpus}", *FILLED])
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    assert need_reference_policy(cfg) and not need_critic(cfg)


def _legacy_patterns():
    """Top-level keys of verl's legacy_reward_impl.yaml (ignored by main_ppo 0.9.x), plus older removed ones."""
    import verl.trainer.config as config_pkg

    legacy = yaml.safe_load((Path(config_pkg.__file__).parent / "legacy_reward_impl.yaml").read_text())
    names = sorted(legacy) + ["reward_manager"]
    # an override or yaml path starting at the top level (not reward.<name>, not a parquet column like reward_model.ground_truth)
    return re.compile(r"(?:^|[\s\"'+~])(" + "|".join(names) + r")\.(?!ground_truth|style)\w+")


@pytest.mark.parametrize(
    "path",
    sorted((REPO / "recipes").rglob("*.sh")) + sorted((REPO / "recipes").rglob("*.sbatch"))
    + [REPO / "recipes" / "README.md"],
    ids=lambda p: p.name,
)
def test_no_legacy_reward_key_in_launchers(path):
    pattern = _legacy_patterns()
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    if path.suffix == ".md":  # prose names the legacy keys to warn about them; commands must not use them
        lines = [line for line in lines if "recipes/run.sh" in line or "verl.trainer" in line or "=" in line]
        lines = [line for line in lines if "ignores" not in line and "legacy" not in line]
    offending = [line for line in lines if pattern.search(line)]
    assert offending == [], f"{path}: legacy reward keys in {offending}"


def test_legacy_pattern_catches_legacy_overrides():
    pattern = _legacy_patterns()
    for bad in ("  custom_reward_function.path=/x.py", "reward_model.reward_manager=dapo",
                "+reward_model.reward_kwargs.a=1", "sandbox_fusion.url=http://x"):
        assert pattern.search(bad), bad
    for good in ("reward.custom_reward_function.path=pkg://m", "reward.reward_model.enable=true",
                 "  reward_model.ground_truth is the report"):
        assert not pattern.search(good), good


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_no_legacy_section_in_config_files(path):
    """Group files are `_global_`: their top-level keys are config roots, so no legacy section may appear."""
    top = yaml.safe_load(path.read_text()) or {}
    assert not {"custom_reward_function", "reward_model", "sandbox_fusion", "reward_manager"} & set(top), path
    if path.parent != CONFIGS:
        assert path.read_text().startswith("# @package _global_"), f"{path}: group files must be _global_"


@pytest.mark.parametrize("combo", combos(), ids=lambda c: "-".join(o.split("=")[1] for o in c))
def test_rollout_context_and_memory_release(combo):
    """vLLM is sized for prompt + response (not the model's 262,144 positions) and sleeps during the update."""
    cfg, _ = compose("grpo", [*combo, "trainer.nnodes=1", *FILLED])
    rollout = cfg.actor_rollout_ref.rollout
    assert rollout.max_model_len == cfg.data.max_prompt_length + cfg.data.max_response_length
    assert rollout.free_cache_engine is True
    sampler = cfg.trainer.v1.sampler
    assert (sampler.custom_sampler.path, sampler.custom_sampler.name) == (
        "pkg://radvlm_verl.integration.sampler", "FailFastReplayBuffer")
    assert sampler.sampler_kwargs.max_failed_fraction == 0.0


def test_rollout_context_resolves_in_verl_dataclass():
    """verl's own rollout dataclass accepts the resolved context (what the vLLM server reads)."""
    from verl.utils.config import omega_conf_to_dataclass

    cfg, _ = compose("grpo", ["task=grounding_soft_f1", "policy=qwen3vl_8b_thinking", *FILLED])
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    assert rollout.max_model_len == 4096 + 4096


@pytest.mark.parametrize("policy,box_format", [("qwen3vl_8b_instruct", "qwen_rel1000"),
                                               ("qwen3vl_8b_thinking", "qwen_rel1000"),
                                               ("radvlm", "radvlm_norm01"), ("radvlm_thinking", "radvlm_norm01")])
def test_policy_states_its_box_format(policy, box_format):
    cfg, _ = compose("grpo", ["task=grounding_soft_f1", f"policy={policy}", *FILLED])
    assert cfg.reward.reward_kwargs.grounding_box_format == box_format


@pytest.mark.parametrize("policy,thinking", [("qwen3vl_8b_instruct", None), ("qwen3vl_8b_thinking", "native"),
                                             ("radvlm", None), ("radvlm_thinking", "suffix")])
def test_policy_states_its_thinking_mode(policy, thinking):
    """A thinking policy selects, in its defaults, the --thinking mode its data is converted with."""
    _, choices = compose("grpo", [f"policy={policy}", *FILLED])
    assert choices.get("thinking") == thinking


def test_config_groups_are_read_from_the_config_folder():
    assert config_groups() == sorted([*GROUPS, "thinking"])

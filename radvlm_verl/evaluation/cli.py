"""``radvlm-verl evaluate``: score a predictions file (CPU) or a checkpoint (GPU, vLLM).

Examples::

    radvlm-verl evaluate --test-parquet data/test.parquet --predictions run/predictions.jsonl \\
        --out-dir eval/radvlm-rl --metrics rouge_l,radvlm_map,coco_map
    radvlm-verl evaluate --test-parquet data/test.parquet --model ckpt/global_step_300/huggingface \\
        --out-dir eval/step300 --weights-dir /data/weights --compare eval/baseline
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Metric names for --help only (validated by evaluation.score.parse_metrics, which is imported
# lazily: it pulls in the metric stack, and `radvlm-verl --help` should stay fast).
_METRICS_HELP = "rouge_l,bertscore,chexbert,radgraph,radcliq,green,radvlm_map,coco_map"


def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def add_evaluate_command(subparsers) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to an ``argparse`` subparsers object; returns its parser."""
    p = subparsers.add_parser(
        "evaluate",
        help="score predictions (or generate them with vLLM) on a test parquet: tables with bootstrap CIs, plots",
        description="Evaluate report generation and grounding on a converted test parquet.",
    )
    p.add_argument("--test-parquet", required=True, type=Path, help="converted test parquet (row contract)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", type=Path, help='JSONL of {"id": ..., "prediction": ...} (or .parquet/.csv)')
    source.add_argument("--model", help="checkpoint (HF directory) to generate with vLLM (GPU)")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--name", help="run name in the tables (default: the out-dir name)")
    p.add_argument("--metrics", default="all",
                   help=f"comma-separated subset of {_METRICS_HELP} (default all; GREEN runs only with --green-url)")
    p.add_argument("--weights-dir", help="scorer weights directory (default $RADVLM_VERL_WEIGHTS)")
    p.add_argument("--device", help="torch device of the scorers (default cuda if available)")
    p.add_argument("--report-option", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                   help="report scorer option as for the reward (e.g. bertscore_num_layers=2); repeatable")
    p.add_argument("--grounding-option", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                   help="grounding option as for the reward (e.g. box_format=qwen_rel1000, resize_factor=32)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0: no intervals)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals")
    p.add_argument("--compare", nargs="*", default=[], type=Path, metavar="RUN_DIR",
                   help="earlier evaluate out-dirs: added as table rows, with paired differences on shared ids")
    p.add_argument("--batch-size", type=int, default=64, help="pairs per scorer call")
    p.add_argument("--format", dest="table_format", choices=("project", "rexrank"), default="project",
                   help="rexrank: also write rexrank.md/.csv, the report metrics in ReXrank's definitions and "
                        "column names (BertScore, SembScore, RadGraph, 1/RadCliQ-v1, GREEN), next to the table")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    green = p.add_argument_group("GREEN (judge model behind an OpenAI-compatible endpoint)")
    green.add_argument("--green-url", help="e.g. http://localhost:8000/v1 (vllm serve StanfordAIMI/GREEN-radllama2-7b)")
    green.add_argument("--green-model", help="model name served by the endpoint")
    green.add_argument("--green-api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key")
    green.add_argument("--green-prompt-file", type=Path, help="prompt template with {reference} and {candidate}")
    green.add_argument("--green-workers", type=int, default=8)
    gen = p.add_argument_group("generation (--model)")
    gen.add_argument("--temperature", type=float, default=0.0)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--max-new-tokens", type=int, default=1024)
    gen.add_argument("--tensor-parallel-size", type=int, default=1)
    gen.add_argument("--gpu-memory-utilization", type=float, default=0.7)
    gen.add_argument("--max-model-len", type=int)
    gen.add_argument("--image-patch-size", type=int, help="14 Qwen2/2.5-VL, 16 Qwen3-VL (default: the processor's)")
    gen.add_argument("--chat-template-kwarg", action="append", default=[], type=_key_value, metavar="KEY=VALUE",
                     help="apply_chat_template kwarg, e.g. enable_thinking=true")
    p.set_defaults(_run=run_evaluate)
    return p


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``evaluate`` from parsed arguments; prints the Markdown table; returns the exit code.

    Bad input (files, flags, weights) is one ``error: <what, where>`` line on stderr and exit
    status 2, as for ``convert``; the library functions raise typed errors that say what and where.
    """
    from radvlm_verl.scorers.registry import ScorerError

    try:
        return _evaluate(args)
    except (ValueError, OSError, ScorerError) as exc:  # ValueError includes JSON, Unicode and Arrow errors
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _evaluate(args: argparse.Namespace) -> int:
    from radvlm_verl.evaluation.green import judge_from_options
    from radvlm_verl.evaluation.pipeline import evaluate
    from radvlm_verl.evaluation.score import ScoreConfig, parse_metrics
    from radvlm_verl.scorers.green import check_template

    metrics = parse_metrics(args.metrics)
    report_options = dict(args.report_option)
    if args.weights_dir:
        report_options["weights_dir"] = args.weights_dir
    if args.device:
        report_options["device"] = args.device
    template = None
    if args.green_prompt_file:
        template = check_template(args.green_prompt_file.read_text(encoding="utf-8"))
    judge = judge_from_options(args.green_url, args.green_model, args.green_api_key_env, workers=args.green_workers)
    config = ScoreConfig(
        metrics=metrics, report_options=report_options, grounding_options=dict(args.grounding_option),
        green_judge=judge if "green" in metrics else None, green_template=template,
        batch_size=args.batch_size, progress=not args.no_progress,
    )
    generation = None
    if args.model:
        from radvlm_verl.evaluation.generate import GenerationConfig

        generation = GenerationConfig(
            temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=args.seed,
            tensor_parallel_size=args.tensor_parallel_size, gpu_memory_utilization=args.gpu_memory_utilization,
            max_model_len=args.max_model_len, image_patch_size=args.image_patch_size,
            apply_chat_template_kwargs=dict(args.chat_template_kwarg),
        )
    evaluate(
        args.test_parquet, args.out_dir, predictions=args.predictions, model=args.model, score_config=config,
        generation_config=generation, n_resamples=args.bootstrap, seed=args.seed, level=args.level,
        compare=args.compare, name=args.name, make_plots=not args.no_plots, table_format=args.table_format,
    )
    print((args.out_dir / "table.md").read_text(encoding="utf-8"))
    if args.table_format == "rexrank":
        print((args.out_dir / "rexrank.md").read_text(encoding="utf-8"))
    print(f"outputs in {args.out_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m radvlm_verl.evaluation.cli``)."""
    parser = argparse.ArgumentParser(prog="radvlm-verl")
    add_evaluate_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args._run(args)


if __name__ == "__main__":
    sys.exit(main())

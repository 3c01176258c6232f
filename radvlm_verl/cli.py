"""``radvlm-verl`` command line: doctor, weights fetch, demo, preflight, convert, evaluate, coldstart-traces."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radvlm_verl.converters.cli import add_convert_commands
from radvlm_verl.converters.coldstart_traces import add_coldstart_traces_command
from radvlm_verl.evaluation.cli import add_evaluate_command
from radvlm_verl.scorers.radgraph import RADGRAPH_MODEL_TYPES
from radvlm_verl.scorers.weights import WEIGHTS, WEIGHTS_ENV


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radvlm-verl", description="GRPO for chest X-ray VLMs on verl")
    commands = parser.add_subparsers(dest="command", required=True)

    doctor = commands.add_parser("doctor", help="check that verl loads the plugin; list versions, GPUs, weights")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")

    weights = commands.add_parser("weights", help="scorer weights: fetch them from the Hugging Face hub")
    weights_commands = weights.add_subparsers(dest="weights_command", required=True)
    fetch = weights_commands.add_parser(
        "fetch", help="download every scorer artifact into a weights directory, with a sha256 manifest; "
        "re-running skips what is complete")
    fetch.add_argument("--dest", type=Path, default=None, help=f"weights directory (default: ${WEIGHTS_ENV})")
    fetch.add_argument("--only", nargs="+", choices=list(WEIGHTS), metavar="NAME",
                       help=f"fetch only these artifacts: {', '.join(WEIGHTS)}")
    fetch.add_argument("--radgraph-model", nargs="+", choices=RADGRAPH_MODEL_TYPES, default=["radgraph-xl"],
                       metavar="TYPE", help="RadGraph archives to fetch (default radgraph-xl; RadCliQ-v1 was fit "
                       f"with radgraph): {', '.join(RADGRAPH_MODEL_TYPES)}")

    demo = commands.add_parser("demo", help="CPU demo: convert the bundled sample and score it through verl's reward loop")
    demo.add_argument("--out-dir", type=Path, default=None)
    demo.add_argument("--report-reward", default="rouge_l", help="report reward to demo (weight-free: rouge_l, gleu)")

    # Listed for --help only: main() hands everything after "preflight" to the preflight's own parser.
    commands.add_parser("preflight", help="check a recipe's inputs (parquet, model path, plugin, cluster) "
                        "before starting verl; radvlm-verl preflight --help")

    add_convert_commands(commands)
    add_evaluate_command(commands)
    add_coldstart_traces_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["preflight"]:
        from radvlm_verl.checks import preflight

        return preflight.main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "doctor":
        from radvlm_verl.checks import doctor

        return doctor.main(as_json=args.json)
    if args.command == "weights":
        from radvlm_verl.scorers import fetch

        return fetch.main(args.dest, only=args.only, radgraph_models=args.radgraph_model)
    if args.command == "demo":
        from radvlm_verl.demo.run import run_demo

        run_demo(args.out_dir, report_reward=args.report_reward)
        return 0
    if args.command in ("convert", "evaluate", "coldstart-traces"):
        return args._run(args)
    return 1


if __name__ == "__main__":
    sys.exit(main())

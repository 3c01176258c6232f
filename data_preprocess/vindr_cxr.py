"""Convert vindr-cxr to verl parquet: same as `radvlm-verl convert vindr-cxr ...` (run with --help for the flags)."""

import sys

from radvlm_verl.converters.cli import main

if __name__ == "__main__":
    sys.exit(main(["vindr-cxr", *sys.argv[1:]]))

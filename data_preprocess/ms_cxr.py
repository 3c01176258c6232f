"""Convert ms-cxr to verl parquet: same as `radvlm-verl convert ms-cxr ...` (run with --help for the flags)."""

import sys

from radvlm_verl.converters.cli import main

if __name__ == "__main__":
    sys.exit(main(["ms-cxr", *sys.argv[1:]]))

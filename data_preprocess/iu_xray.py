"""Convert iu-xray to verl parquet: same as `radvlm-verl convert iu-xray ...` (run with --help for the flags)."""

import sys

from radvlm_verl.converters.cli import main

if __name__ == "__main__":
    sys.exit(main(["iu-xray", *sys.argv[1:]]))

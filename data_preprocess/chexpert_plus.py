"""Convert chexpert-plus to verl parquet: same as `radvlm-verl convert chexpert-plus ...` (run with --help for the flags)."""

import sys

from radvlm_verl.converters.cli import main

if __name__ == "__main__":
    sys.exit(main(["chexpert-plus", *sys.argv[1:]]))

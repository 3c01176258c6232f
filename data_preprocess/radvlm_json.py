"""Convert radvlm-json to verl parquet: same as `radvlm-verl convert radvlm-json ...` (run with --help for the flags)."""

import sys

from radvlm_verl.converters.cli import main

if __name__ == "__main__":
    sys.exit(main(["radvlm-json", *sys.argv[1:]]))

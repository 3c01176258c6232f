"""Convert padchest-gr to verl parquet: same as `radvlm-verl convert padchest-gr ...` (run with --help for the flags)."""

import sys

from radvlm_verl.converters.cli import main

if __name__ == "__main__":
    sys.exit(main(["padchest-gr", *sys.argv[1:]]))

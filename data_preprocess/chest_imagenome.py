"""Convert chest-imagenome to verl parquet: same as `radvlm-verl convert chest-imagenome ...` (run with --help for the flags)."""

import sys

from radvlm_verl.converters.cli import main

if __name__ == "__main__":
    sys.exit(main(["chest-imagenome", *sys.argv[1:]]))

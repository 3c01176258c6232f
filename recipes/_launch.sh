# Shared by the recipe launchers (sourced, not run): the input checks, then verl.
# Reads PYTHON, CONFIG_NAME, PREFLIGHT, PREFLIGHT_ARGS and DRY_RUN (see recipes/run.sh).

# check_inputs WHAT OVERRIDES...: radvlm-verl's preflight on CONFIG_NAME with these overrides;
# exits 2, naming WHAT, when a check fails. PREFLIGHT=0 skips it.
check_inputs() {
  local what=$1
  shift
  [[ "${PREFLIGHT:-1}" == 0 ]] && return 0
  # shellcheck disable=SC2086  # PREFLIGHT_ARGS is a list of options
  if ! "$PYTHON" -m radvlm_verl.checks.preflight --config-name="$CONFIG_NAME" ${PREFLIGHT_ARGS:-} "$@"; then
    echo "error: preflight checks failed for $what (see the lines above); nothing was started" >&2
    exit 2
  fi
}

# start_or_print CMD...: replace this shell with CMD, or with DRY_RUN=1 print it and exit.
start_or_print() {
  if [[ "${DRY_RUN:-0}" != 0 ]]; then
    printf '%q ' "$@"
    echo
    exit 0
  fi
  exec "$@"
}

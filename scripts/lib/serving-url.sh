# Shared by the benchmark scripts (sourced, not run): `. scripts/lib/serving-url.sh`.

# serving_url OUT PID: waits up to 30 s for the gateway PID, whose standard output goes to OUT,
# to print its first line, and prints the URL that line announces. Says why on standard error
# and returns 1 when the gateway exits first, prints something else, or prints nothing.
serving_url() {
  local out=$1 pid=$2 line url
  for _ in $(seq 1 300); do
    line=$(head -n 1 "$out" 2>/dev/null || true)
    if [ -n "$line" ]; then
      url=$(printf '%s\n' "$line" | sed -n 's/^portcullis is serving on \(https:\/\/[^;]*\);.*$/\1/p')
      [ -n "$url" ] || { echo "unexpected first line from the server: $line" >&2; return 1; }
      printf '%s\n' "$url"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "the server exited early" >&2; return 1; }
    sleep 0.1
  done
  echo "the server printed nothing within 30s" >&2
  return 1
}

#!/bin/sh
# Bytes per dependency of the release microgateway binary, as a markdown table.
#
# Runs `cargo bloat --release --crates` (crates.io `cargo-bloat`:
# `cargo install cargo-bloat --locked`) and prints the top crates by size in .text with
# their share of .text and of the file. cargo bloat reads the symbol table, so it builds
# the binary itself with the release profile and CARGO_PROFILE_RELEASE_STRIP=false: that
# build never shares artifacts with a plain `cargo build --release` (the first run is a
# full release build), so it goes to target/bloat and leaves target/release alone.
#
# Usage: benches/bloat.sh [N] [extra cargo bloat args, e.g. --features X]
#   N  number of crates to list (default 20); the rest are summed in one row.
# Environment: BLOAT_TARGET_DIR (default target/bloat).
set -eu
cd "$(dirname "$0")/.."
n=20
case "${1:-}" in
    ''|-*) ;;
    *) n=$1; shift ;;
esac
command -v cargo-bloat >/dev/null || {
    echo "cargo-bloat missing: cargo install cargo-bloat --locked" >&2
    exit 2
}
target_dir=${BLOAT_TARGET_DIR:-target/bloat}
mkdir -p "$target_dir"
cargo bloat --release --locked --bin microgateway --crates -n 0 --message-format json \
    --target-dir "$target_dir" "$@" > "$target_dir/bloat.json"
python3 - "$n" "$target_dir/bloat.json" <<'PY'
import json
import sys

n = int(sys.argv[1])
with open(sys.argv[2]) as f:
    data = json.load(f)
text, file_size = data["text-section-size"], data["file-size"]
crates = sorted(data["crates"], key=lambda c: -c["size"])


def mb(b):
    return f"{b / 1e6:.2f} MB" if b >= 1e5 else f"{b / 1e3:.1f} kB"


print(f"`microgateway` (release profile, unstripped): file {mb(file_size)}, .text {mb(text)} "
      "(the table splits .text; the rest of the file is read-only data, unwind tables and symbols)\n")
print("| crate | .text bytes | size | % of .text | % of file |")
print("|---|---:|---:|---:|---:|")
for c in crates[:n]:
    print(f"| {c['name']} | {c['size']:,} | {mb(c['size'])} | {100 * c['size'] / text:.1f} % | "
          f"{100 * c['size'] / file_size:.1f} % |")
rest = crates[n:]
if rest:
    size = sum(c["size"] for c in rest)
    print(f"| the other {len(rest)} | {size:,} | {mb(size)} | {100 * size / text:.1f} % | "
          f"{100 * size / file_size:.1f} % |")
PY

#!/bin/sh
# Builds an ocfo release into dist/v<version>/ — run from the repository root.
#
#   1. The standby binaries: static Linux (musl) builds for x86_64 and
#      aarch64, named ocfo-<version>-<arch>-linux, and their SHA256SUMS.
#   2. The laptop binaries, built with that SHA256SUMS compiled in
#      (OCFO_MONITOR_SHA256SUMS), so each one vouches for exactly these
#      standby binaries: `ocfo deploy` from a Mac or from another
#      architecture has the standby fetch its build and refuses any other.
#
# Stage 1 must come first: a binary cannot hold its own checksum, so the
# laptop builds of stage 2 are different files from the standby builds of
# stage 1 (a Linux laptop on the standby's architecture uploads itself, as
# before). Publish everything under dist/v<version>/ at the address that
# inventories name as `monitor.binary_source` (for example a GitHub release:
# https://github.com/OWNER/ocfo/releases/download, whose tags are v<version>).
#
# Needs: rustup targets x86_64-unknown-linux-musl and aarch64-unknown-linux-musl,
# cargo-zigbuild and zig (ring needs a C cross compiler for aarch64 musl).
# The macOS laptop builds need a Mac (Apple's SDK): see release.yml.
set -eu

version=$(cargo metadata --no-deps --format-version 1 |
  sed -n 's/.*"name":"ocfo","version":"\([^"]*\)".*/\1/p')
[ -n "$version" ] || { echo "cannot read the version from Cargo.toml" >&2; exit 1; }
out=dist/v$version
rm -rf "$out"; mkdir -p "$out"

# Stage 1: the standby binaries (no checksums compiled in: they never vouch).
for arch in x86_64 aarch64; do
  env -u OCFO_MONITOR_SHA256SUMS \
    cargo zigbuild --locked --profile dist --no-default-features --target "$arch-unknown-linux-musl"
  cp "target/$arch-unknown-linux-musl/dist/ocfo" "$out/ocfo-$version-$arch-linux"
done
(cd "$out" && sha256sum "ocfo-$version-x86_64-linux" "ocfo-$version-aarch64-linux" > SHA256SUMS)

# Stage 2: laptop binaries that vouch for stage 1. Linux laptops here; the
# Mac ones on a Mac with the same SHA256SUMS (release.yml).
OCFO_MONITOR_SHA256SUMS=$(cat "$out/SHA256SUMS")
export OCFO_MONITOR_SHA256SUMS
for arch in x86_64 aarch64; do
  cargo zigbuild --locked --profile dist --no-default-features --target "$arch-unknown-linux-musl" \
    --target-dir target/laptop
  cp "target/laptop/$arch-unknown-linux-musl/dist/ocfo" "$out/ocfo-$version-$arch-linux-laptop"
done
echo "built $out:"; ls -l "$out"; cat "$out/SHA256SUMS"

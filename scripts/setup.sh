#!/usr/bin/env bash
# Install what ptimers needs to build and test, from Debian's packages.
# Idempotent: installs only what is missing.  Run as root (or with sudo).
set -euo pipefail
packages=(
  meson ninja-build pkg-config gcc libc6-dev   # build
  liburcu-dev                                  # RCU for lock-free lookups and readout
  libprotobuf-c-dev protobuf-c-compiler        # checkpoint images (CRIU's posix_timer_entry)
  criu                                         # crit, to show CRIU reads and writes those images
  # CRIU 4.2 built from tests/criu for the CRIU suite (Debian's 3.17 cannot
  # start on Linux 6.13 and later)
  build-essential libprotobuf-dev protobuf-compiler python3-protobuf libcap-dev
  libnl-3-dev libnet1-dev libaio-dev libgnutls28-dev libnftables-dev libbsd-dev uuid-dev
  clang libclang-rt-14-dev                     # libFuzzer, for the image decoder
  libcmocka-dev                                # unit and conformance tests
  valgrind                                     # leak checks in the test run
  python3                                      # test summary (meson needs it anyway)
  coreutils util-linux vim shellcheck          # real programs run on the drop-in (real-programs.sh)
  systemtap-sdt-dev                            # <sys/sdt.h>: the USDT probes
  linux-perf                                   # the probes attached to, in the tests
  man-db groff-base                            # the man pages rendered, in the tests
  bash-completion                              # the completion's directory, and loading it in the tests
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: need root to install: ${missing[*]} (run: sudo $0)" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# kernel_deb: deb:PACKAGE with Debian's cloud kernel (an EEVDF baseline):
# `kernel build --deb` fetches it with apt-get download into the cache
# (source kind deb, key {release}-deb-x86_64, its config and System.map),
# a second build reuses it, `kernel resolve deb:...` finds it cached, and
# one `run --kernel deb:...` cell on the null executor carries its version.
# Skips only when apt cannot fetch the package here.
# Env: KT_COORD (set by meson); KT_DEB_META (default linux-image-6.12-cloud-amd64).
set -uo pipefail

if [ -z "${KT_COORD:-}" ] || [ ! -x "${KT_COORD:-}" ]; then
    echo "SKIP: ktstr-coord is not built (KT_COORD unset)"
    exit 77
fi
for tool in apt-get apt-cache dpkg-deb jq; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIP: '$tool' is not installed"
        exit 77
    fi
done
meta=${KT_DEB_META:-linux-image-6.12-cloud-amd64}
# The exact versioned package the meta package depends on.
pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ] || ! apt-get download --print-uris "$pkg" 2>/dev/null | grep -q "\.deb"; then
    echo "SKIP: apt cannot fetch '$meta' here (no package list entry or no source)"
    exit 77
fi
rel=${pkg#linux-image-}

tmp=$(mktemp -d /tmp/kt-kernel-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export KTSTR_CACHE_DIR=$tmp/cache
fails=0
check() {
    local what=$1
    shift
    if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fails=$((fails + 1)); fi
}

key=$("$KT_COORD" kernel build --deb "$pkg" 2>"$tmp/err")
rc=$?
if [ "$rc" -ne 0 ] && grep -q "apt-get download" "$tmp/err"; then
    echo "SKIP: apt-get download $pkg failed here:"
    cat "$tmp/err"
    exit 77
fi
check "kernel build --deb exits 0 (got $rc: $(tail -n 2 "$tmp/err"))" test "$rc" -eq 0
check "its key is {release}-deb-x86_64 ($key)" test "$key" = "$rel-deb-x86_64"
entry=$KTSTR_CACHE_DIR/kernels/$key
check "bzImage, config and System.map in the entry" \
    test -s "$entry/bzImage" -a -s "$entry/config" -a -s "$entry/System.map"
check "metadata: source kind deb, the package, the release" \
    test "$(jq -r '"\(.source.kind) \(.source.path) \(.version)"' "$entry/metadata.json")" = "deb $pkg $rel"
check "a second build reuses it" test "$("$KT_COORD" kernel build --deb "$pkg" 2>/dev/null)" = "$key (cached)"
out=$("$KT_COORD" kernel resolve "deb:$pkg" --json)
check "resolve deb:PACKAGE finds it cached" \
    test "$(echo "$out" | jq -r '.[0] | "\(.cached) \(.key)"')" = "true $key"

cat >"$tmp/g.yaml" <<YAML
kernels: ["deb:$pkg"]
schedulers: [{name: eevdf}]
topologies: [tiny-1llc]
scenarios: [steady]
duration: 100ms
YAML
"$KT_COORD" run --gauntlet "$tmp/g.yaml" --executor null --results "$tmp/res" \
    --progress plain >"$tmp/run.out" 2>&1
rc=$?
check "a gauntlet with the deb: spec runs (got $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || tail -n 20 "$tmp/run.out"
run_id=$(sed -n 's/^run \([^ :]*\): .*/\1/p' "$tmp/run.out" | head -n1)
check "run.json: the Debian kernel's version" \
    test "$(jq -r '.kernels[0].version' "$tmp/res/$run_id/run.json")" = "$rel"

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"

#!/usr/bin/env bash
# kernel_specs: `ktstr-coord kernel resolve|list|clean` and `run --kernel`
# without a VM or a kernel build. A synthetic kernel repository (top-level
# Kconfig and a Makefile with VERSION/PATCHLEVEL/SUBLEVEL, release tags
# lightweight and annotated, one tag that is no release) checks range
# expansion in version order (-rc before the release), short commits, a
# dirty tree and bad specs (exit 2, the spec named). A cache seeded through
# the cache's own install (kt-kcache-seed) from the fixture bzImages checks
# versions, keys, ranges over the cache, corrupt entries and clean; then one
# `run --kernel KEY` cell on the null executor carries the kernel's version
# and commit into run.json and the sidecar.
# Env: KT_COORD, KT_KCACHE_SEED, KT_SRC (set by meson).
set -uo pipefail

if [ -z "${KT_COORD:-}" ] || [ ! -x "${KT_COORD:-}" ]; then
    echo "SKIP: ktstr-coord is not built (KT_COORD unset)"
    exit 77
fi
: "${KT_KCACHE_SEED:?KT_KCACHE_SEED must name kt-kcache-seed}"
: "${KT_SRC:?KT_SRC must name the source tree}"
for tool in git jq; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIP: '$tool' is not installed (deploy/setup.sh installs it)"
        exit 77
    fi
done

tmp=$(mktemp -d /tmp/kt-kernel-specs.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export KTSTR_CACHE_DIR=$tmp/cache
export KTSTR_KCONFIG=$tmp/ktstr.kconfig
printf 'CONFIG_SCHED_CLASS_EXT=y\nCONFIG_BPF_SYSCALL=y\n' >"$KTSTR_KCONFIG"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git_() { git -C "$repo" -c user.name=t -c user.email=t@ktstr.invalid -c tag.gpgSign=false "$@"; }

fails=0
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then
        echo "ok: $what"
    else
        echo "FAIL: $what"
        fails=$((fails + 1))
    fi
}

# ---- the synthetic kernel repository ----
repo=$tmp/linux
mkdir -p "$repo"
git_ init -q
echo 'mainmenu "fake kernel"' >"$repo/Kconfig"
release() { # release VERSION PATCHLEVEL SUBLEVEL EXTRAVERSION
    printf 'VERSION = %s\nPATCHLEVEL = %s\nSUBLEVEL = %s\nEXTRAVERSION = %s\nNAME = Baby Opossum Posse\n' \
        "$@" >"$repo/Makefile"
    git_ add Kconfig Makefile
    git_ commit -qm "Linux $1.$2.$3$4"
}
release 6 12 110 ""
git_ tag v6.12.110
release 6 12 111 ""
git_ tag -a v6.12.111 -m "Linux 6.12.111"
release 6 12 112 -rc1
git_ tag v6.12.112-rc1
release 6 12 112 ""
git_ tag -a v6.12.112 -m "Linux 6.12.112"
release 6 13 0 ""
git_ tag v6.13
git_ tag not-a-release v6.12.110
short() { git_ rev-parse --short=7 "$1^{commit}"; }

out=$("$KT_COORD" kernel resolve 6.12.110..6.12.112 --kernel-repo "$repo" --json 2>"$tmp/err")
rc=$?
check "resolve over the repo's tags exits 0 (got $rc: $(cat "$tmp/err"))" test "$rc" -eq 0
labels=$(echo "$out" | jq -r '[.[].label] | join(" ")')
check "the range is exactly its tags in version order ($labels)" \
    test "$labels" = "6.12.110 6.12.111 6.12.112-rc1 6.12.112"
want=$(for t in v6.12.110 v6.12.111 v6.12.112-rc1 v6.12.112; do short "$t"; done | tr '\n' ' ')
got=$(echo "$out" | jq -r '.[].commit' | tr '\n' ' ')
check "commits are the tags' commits as sha7, annotated tags peeled ($got)" test "$got" = "$want"
check "none is cached; each needs a build" \
    test "$(echo "$out" | jq '[.[] | select(.cached == false and .needs == "build")] | length')" -eq 4
key=$(echo "$out" | jq -r '.[0].key')
# With the build pipeline the key's kc is kt_kbuild_kconfig_hash (the
# fragment's settings, normalised, after the recipe); without it the
# file's sha256.
if [ -f "$KT_SRC/coordinator/kt_kbuild.c" ]; then
    kc=$("$KT_KBUILD_TOOL" hash "$KTSTR_KCONFIG" | cut -c1-8)
else
    kc=$(sha256sum "$KTSTR_KCONFIG" | cut -c1-8)
fi
check "a tag's key is {ref}-git-{sha7}-{arch}-kc{h} ($key)" \
    test "$key" = "v6.12.110-git-$(short v6.12.110)-x86_64-kc$kc"

out=$("$KT_COORD" kernel resolve 6.13 "git+file://$repo#v6.12.111" --kernel-repo "$repo" --json)
check "a version not cached is the repo's tag (6.13 -> v6.13, version 6.13.0)" \
    test "$(echo "$out" | jq -r '.[0].version + " " + .[0].commit')" = "6.13.0 $(short v6.13)"
check "git+file://REPO#TAG resolves to the tag's commit" \
    test "$(echo "$out" | jq -r '.[1].commit')" = "$(short v6.12.111)"

echo "# local change" >>"$repo/Makefile"
out=$("$KT_COORD" kernel resolve "$repo" --json)
check "a dirty source tree is marked dirty and has no key" \
    test "$(echo "$out" | jq -r '.[0].commit + " " + (.[0].key // "none")')" = "$(short HEAD)-dirty none"
git_ checkout -q -- Makefile

for bad in ".." "a.." "git+#x" "git+$repo" "6.12.x" "6.13..6.12" "bzImage" \
    "6.12.1..6.12.9"; do
    "$KT_COORD" kernel resolve "$bad" --kernel-repo "$repo" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    check "bad spec '$bad' exits 2 (got $rc)" test "$rc" -eq 2
    check "its error names the spec: $(head -c 160 "$tmp/err")" grep -qF "kernel spec '$bad'" "$tmp/err"
done

# ---- cached kernels ----
fixture=${KT_FIXTURE_BZIMAGE:-$KT_SRC/../shared/kernels/sched-ext-6.12.117/bzImage}
if [ ! -f "$fixture" ]; then
    echo "SKIP: the fixture kernel '$fixture' is missing (../shared/kernels; set KT_FIXTURE_BZIMAGE)"
    exit 77
fi
fake=$KT_SRC/tests/fixtures/gauntlets/fake
k_git=$("$KT_KCACHE_SEED" "$fixture" git v6.12.117 abcdef1 "$KTSTR_KCONFIG" 2025-01-02T00:00:00Z)
k_fake=$("$KT_KCACHE_SEED" "$fake/bzImage" tarball 6.12.117-fake - "$KTSTR_KCONFIG" \
    2025-01-01T00:00:00Z)
k_old=$("$KT_KCACHE_SEED" "$fake/bzImage-other" local - 1234567 "$KTSTR_KCONFIG" \
    2025-01-03T00:00:00Z)
check "seeded three cache entries" test -n "$k_git" -a -n "$k_fake" -a -n "$k_old"
check "the local key reads local-{sha7}-x86_64-kc{h} ($k_old)" \
    test "$k_old" = "local-1234567-x86_64-kc$kc"

out=$("$KT_COORD" kernel resolve "$k_git" 6.12 6.1.0 6.1..6.13 --json)
rc=$?
check "resolve of cached specs exits 0 (got $rc)" test "$rc" -eq 0
check "a key resolves to its entry, cached, commit from the metadata" \
    test "$(echo "$out" | jq -r '.[0] | "\(.cached) \(.commit) \(.version)"')" = "true abcdef1 6.12.117"
check "6.12 is the newest cached 6.12.x (built last among equals)" \
    test "$(echo "$out" | jq -r '.[1].key')" = "$k_git"
check "6.1.0 is the 6.1.0 entry" test "$(echo "$out" | jq -r '.[2].key')" = "$k_old"
check "a range over the cache lists its versions in order" \
    test "$(echo "$out" | jq -r '[.[3:][] | .version] | join(" ")')" = "6.1.0-fake 6.12.117 6.12.117-fake"

# stale: another fragment than the entries'
n_stale=$("$KT_COORD" kernel list --json --kconfig "$KT_SRC/README.md" | jq '[.[] | select(.stale)] | length')
check "list marks all 3 stale against another fragment ($n_stale)" test "$n_stale" -eq 3

# corrupt: a truncated bzImage
truncate -s 100 "$KTSTR_CACHE_DIR/kernels/$k_fake/bzImage"
"$KT_COORD" kernel list >"$tmp/list" 2>&1
rc=$?
check "list exits 1 with a corrupt entry (got $rc)" test "$rc" -eq 1
check "list marks it corrupt" grep -q "^$k_fake .*corrupt: bzImage: sha256 differs" "$tmp/list"
"$KT_COORD" kernel resolve "$k_fake" >"$tmp/out" 2>"$tmp/err"
check "a corrupt entry is never used (exit 2, named)" grep -q "kernel spec '$k_fake': the cache entry is corrupt" "$tmp/err"
out=$("$KT_COORD" kernel resolve 6.12.117..6.12.117 --json)
check "ranges skip the corrupt entry" test "$(echo "$out" | jq -r '[.[].key] | join(" ")')" = "$k_git"

# ---- run --kernel KEY: one cell, no VM ----
cat >"$tmp/g.yaml" <<YAML
kernels: [$fake/bzImage-other]
schedulers: [{name: eevdf}]
topologies: [tiny-1llc]
scenarios: [steady]
duration: 100ms
YAML
"$KT_COORD" run --kernel "$k_git" --gauntlet "$tmp/g.yaml" --executor null \
    --results "$tmp/res" --progress plain >"$tmp/run.out" 2>&1
rc=$?
check "run --kernel KEY exits 0 (got $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || tail -n 20 "$tmp/run.out"
run_id=$(sed -n 's/^run \([^ :]*\): .*/\1/p' "$tmp/run.out" | head -n1)
rj=$tmp/res/$run_id/run.json
check "run.json: the one kernel is the cached one (label, version, commit)" \
    test "$(jq -r '.kernels | length as $n | .[0] | "\($n) \(.label) \(.version) \(.commit)"' "$rj")" = "1 6.12.117 6.12.117 abcdef1"
check "run.json inputs keep the specs (for --resume)" \
    test "$(jq -r '.inputs.kernels | join(" ")' "$rj")" = "$k_git"
sidecar=$(find "$tmp/res/$run_id" -name '*.ktstr.json' | head -n1)
check "the sidecar carries label, version and commit" \
    test "$(jq -r '"\(.kernel_label) \(.kernel_version) \(.kernel_commit)"' "$sidecar")" = "6.12.117 6.12.117 abcdef1"
check "the sidecar lies in {label}-{commit}/" test -n "$(find "$tmp/res/$run_id/6.12.117-abcdef1" -name '*.ktstr.json')"
if command -v sqlite3 >/dev/null; then
    check "the run store's cells carry label, version and commit" \
        test "$(sqlite3 -readonly -batch -noheader "$tmp/res/ktstr.db" \
            "SELECT DISTINCT kernel_label || ' ' || kernel_version || ' ' || kernel_commit FROM cells")" = "6.12.117 6.12.117 abcdef1"
fi

# A spec that fails stops the run before anything runs.
"$KT_COORD" run --kernel "$k_git" --kernel 6.12..nope --gauntlet "$tmp/g.yaml" --executor null \
    --results "$tmp/res2" >"$tmp/run2.out" 2>&1
rc=$?
check "a bad --kernel exits 2 (got $rc)" test "$rc" -eq 2
check "naming the spec" grep -qF "kernel spec '6.12..nope'" "$tmp/run2.out"
check "and nothing ran" test ! -e "$tmp/res2/ktstr.db"
if [ ! -f "$KT_SRC/coordinator/kt_kbuild.c" ]; then
    "$KT_COORD" run --kernel-repo "$repo" --kernel 6.12.110..6.12.111 --gauntlet "$tmp/g.yaml" \
        --executor null --results "$tmp/res3" >"$tmp/run3.out" 2>&1
    rc=$?
    check "a range needing builds without the build pipeline exits 2 (got $rc)" test "$rc" -eq 2
    check "saying so, the spec named" grep -qF "kernel spec '6.12.110..6.12.111': needs a build" "$tmp/run3.out"
    check "and nothing ran" test ! -e "$tmp/res3/ktstr.db"
    "$KT_COORD" kernel build --source "$repo" >"$tmp/b.out" 2>&1
    rc=$?
    check "kernel build without the pipeline exits 2 (got $rc)" test "$rc" -eq 2
    check "saying so" grep -q "built without the kernel build pipeline" "$tmp/b.out"
fi

# ---- clean ----
# A staging folder a crashed build left (no process holds its lock).
mkdir "$KTSTR_CACHE_DIR/kernels/.tmp-crashed" && : >"$KTSTR_CACHE_DIR/kernels/.tmp-crashed/bzImage"
"$KT_COORD" kernel list >"$tmp/list" 2>&1
check "list mentions the leftover staging folder" \
    grep -q "^1 staging folder(s) left over by interrupted builds" "$tmp/list"
out=$("$KT_COORD" kernel clean --corrupt)
check "clean --corrupt removes the corrupt one and the leftover ($out)" \
    test "$out" = "removed 1 kernel(s) from $KTSTR_CACHE_DIR/kernels
removed 1 leftover staging folder(s)"
check "the leftover is gone" test ! -e "$KTSTR_CACHE_DIR/kernels/.tmp-crashed"
out=$("$KT_COORD" kernel clean --keep 1)
check "clean --keep 1 removes all but the newest ($out)" test "$out" = "removed 1 kernel(s) from $KTSTR_CACHE_DIR/kernels"
check "the newest built stays" test "$("$KT_COORD" kernel list --json | jq -r '[.[].key] | join(" ")')" = "$k_old"

# ---- build --force over a cached kernel ----
# A fake source tree in git (enough for kernel build to accept it; its
# Makefile has no targets, so the build fails at its first make), its key
# seeded with the fixture: build reuses it; --force tries to rebuild, fails
# in make, and the cached entry is still there, intact and unchanged.
if [ -f "$KT_SRC/coordinator/kt_kbuild.c" ]; then
    src=$tmp/fake-src
    mkdir -p "$src/scripts/kconfig"
    echo 'mainmenu "fake kernel"' >"$src/Kconfig"
    printf 'VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\n' >"$src/Makefile"
    printf '#!/bin/sh\nexit 1\n' >"$src/scripts/kconfig/merge_config.sh"
    repo=$src git_ init -q
    repo=$src git_ add -A
    repo=$src git_ commit -qm "fake kernel"
    sha=$(repo=$src short HEAD)
    k_src=$("$KT_KCACHE_SEED" "$fixture" local - "$sha" "$KTSTR_KCONFIG" 2025-01-04T00:00:00Z)
    check "seeded the fake tree's key ($k_src)" test "$k_src" = "local-$sha-x86_64-kc$kc"
    before=$(sha256sum "$KTSTR_CACHE_DIR/kernels/$k_src/bzImage" "$KTSTR_CACHE_DIR/kernels/$k_src/metadata.json")
    "$KT_COORD" kernel build --source "$src" -q >"$tmp/b.out" 2>&1
    rc=$?
    check "kernel build of a cached tree exits 0 (got $rc)" test "$rc" -eq 0
    check "and reuses the entry: $(head -c 200 "$tmp/b.out")" grep -qx "$k_src (cached)" "$tmp/b.out"
    "$KT_COORD" kernel build --source "$src" --force -q >"$tmp/b.out" 2>&1
    rc=$?
    check "kernel build --force exits 2 when the rebuild fails (got $rc)" test "$rc" -eq 2
    check "it tried: the error names the failed build step: $(head -c 200 "$tmp/b.out")" \
        grep -q "make tinyconfig failed" "$tmp/b.out"
    check "the cached entry is unchanged" \
        test "$(sha256sum "$KTSTR_CACHE_DIR/kernels/$k_src/bzImage" "$KTSTR_CACHE_DIR/kernels/$k_src/metadata.json")" = "$before"
    check "and intact" test "$("$KT_COORD" kernel list --json | jq -r --arg k "$k_src" '.[] | select(.key == $k) | .corrupt')" = false
    check "the failed build left no staging folder" \
        test -z "$(find "$KTSTR_CACHE_DIR/kernels" -maxdepth 1 -name '.tmp-*')"
    "$KT_COORD" kernel build --source "$src" -q >"$tmp/b.out" 2>&1
    check "a build after it still reuses the entry" grep -qx "$k_src (cached)" "$tmp/b.out"
fi

if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all checks passed"

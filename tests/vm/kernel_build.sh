# A kernel and its sched_ext schedulers built from Debian's linux-source-6.12
# with `ktstr-coord kernel build` (deploy/ktstr.kconfig onto tinyconfig),
# then one cell on that kernel under the scx_simple of the same build.
# The build takes minutes, so it is cached per machine: the unpacked source
# and the kernel cache live in KTSTR_TEST_CACHE_DIR (default
# /var/cache/ktstr-test) and a second run reuses both and takes seconds.
# Set KTSTR_VM_LOCK=FILE to hold that flock around the VM cell only (not
# around the compile).
source "$(dirname "$0")/lib.sh"
: "${KT_COORD:?}" "${KT_KBUILD_TOOL:?}"

cache=${KTSTR_TEST_CACHE_DIR:-/var/cache/ktstr-test}
if ! mkdir -p "$cache" 2> /dev/null || [ ! -w "$cache" ]; then
    cache=${XDG_CACHE_HOME:-$HOME/.cache}/ktstr-test
    mkdir -p "$cache" || { echo "cannot create a cache dir at '$cache'"; exit 1; }
fi
export KTSTR_CACHE_DIR=$cache
src=$cache/linux-source-6.12
tarball=/usr/src/linux-source-6.12.tar.xz

# The source and what building it needs (deploy/setup.sh's kernel-build
# list; the schedulers' BPF code needs clang >= 16: Debian 12's clang-19).
pkgs=(linux-source-6.12 make gcc binutils flex bison bc libelf-dev libssl-dev dwarves
      clang-19 llvm-19 libzstd-dev zlib1g-dev xz-utils git)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
    echo "# installing ${missing[*]}"
    if ! { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
               "${missing[@]}" > "$TMP/apt.log" 2>&1 ||
           { $sudo apt-get update -qq >> "$TMP/apt.log" 2>&1 &&
             DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
               "${missing[@]}" >> "$TMP/apt.log" 2>&1; }; }; then
        echo "SKIP: could not install ${missing[*]} with apt:"; tail -n 5 "$TMP/apt.log"
        exit 77
    fi
fi
if [ ! -f "$tarball" ]; then
    echo "linux-source-6.12 is installed but '$tarball' is missing"; exit 1
fi

# Unpack once per package version, atomically (a half-unpacked tree left by
# a killed run is never used), under a lock against concurrent runs. The
# tree is committed to a git repository of its own: ktstr-coord caches a
# source tree by its clean commit (local-{sha7}-...), and builds a tree
# outside git for one run only.
pkgver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
stamp="$pkgver git"
exec 9> "$cache/.linux-source-6.12.lock"
flock 9
if [ "$(cat "$src/.ktstr-unpacked" 2> /dev/null)" != "$stamp" ]; then
    echo "# unpacking $tarball ($pkgver) into $src"
    rm -rf "$src" "$src.tmp"
    mkdir -p "$src.tmp"
    if ! tar -xJf "$tarball" -C "$src.tmp" --strip-components=1; then
        echo "unpacking '$tarball' failed"; rm -rf "$src.tmp"; exit 1
    fi
    echo "$stamp" > "$src.tmp/.ktstr-unpacked"
    # Tagged as its release (v6.12.117), as a kernel repository is at a
    # release: kbuild's setlocalversion appends '+' to an untagged commit.
    # add -f: Debian's top-level .gitignore ignores everything there.
    kver=$(awk '/^VERSION =/{v=$3} /^PATCHLEVEL =/{p=$3} /^SUBLEVEL =/{s=$3}
                END{print v "." p "." s}' "$src.tmp/Makefile")
    gitc=(git -C "$src.tmp" -c user.name=ktstr -c user.email=ktstr@localhost)
    if ! "${gitc[@]}" init -q || ! "${gitc[@]}" add -A -f ||
       ! "${gitc[@]}" commit -q -m "linux-source-6.12 $pkgver" ||
       ! "${gitc[@]}" tag -a -m "$kver" "v$kver"; then
        echo "committing the unpacked tree to git failed"; rm -rf "$src.tmp"; exit 1
    fi
    mv "$src.tmp" "$src"
fi
flock -u 9

# The build. Nothing may be written into the source tree (builds are out
# of tree), which the stamp lets us check.
touch "$TMP/stamp"
sleep 1
build_log=$TMP/build.err
t0=$(date +%s)
nice -n 10 "$KT_COORD" kernel build --source "$src" --kconfig "$KT_SRC/deploy/ktstr.kconfig" \
    -j 2 > "$TMP/build.out" 2> "$build_log"
rc=$?
t1=$(date +%s)
echo "# ktstr-coord kernel build: exit $rc in $((t1 - t0)) s"
if [ $rc -ne 0 ]; then
    echo "not ok - kernel build"; tail -n 60 "$build_log"; exit 1
fi
echo "ok - kernel build"

# The cache entry: the kernels/ entry whose metadata says 6.12.117 (the
# newest if several).
entry_dir=""
for m in $(ls -t "$cache"/kernels/*/metadata.json 2> /dev/null); do
    if [ "$(jq -r .version "$m")" = 6.12.117 ]; then entry_dir=$(dirname "$m"); break; fi
done
expect "a cache entry for 6.12.117 under '$cache/kernels'" test -n "$entry_dir"
[ -n "$entry_dir" ] || finish
expect "metadata lists scx_simple" \
    eq "$(jq -r '.sched_progs | index("scx_simple") != null' "$entry_dir/metadata.json")" true
expect "metadata has the fragment's hash" eq "$(jq -r .kconfig_hash "$entry_dir/metadata.json")" \
    "$("$KT_KBUILD_TOOL" hash "$KT_SRC/deploy/ktstr.kconfig")"
echo "# entry: $entry_dir"

is_static() { ! readelf -lW "$1" 2> /dev/null | grep -Eq 'INTERP|DYNAMIC' && readelf -h "$1" > /dev/null 2>&1; }
has_btf() { readelf -SW "$1" 2> /dev/null | grep -Eq '\] \.BTF +PROGBITS'; }
expect "vmlinux has .BTF" has_btf "$entry_dir/vmlinux"
expect "vmlinux has no debug info left" eq "$(readelf -SW "$entry_dir/vmlinux" | grep -c '\.debug_info')" 0
expect "config has sched_ext" grep -qx CONFIG_SCHED_CLASS_EXT=y "$entry_dir/config"
expect "config passes the required-option check" "$KT_KBUILD_TOOL" check "$entry_dir/config"
for s in scx_simple scx_qmap scx_central scx_flatcg scx_selftests; do
    expect "bin/$s is a static ELF" is_static "$entry_dir/bin/$s"
done
if [ "$entry_dir/config" -nt "$TMP/stamp" ]; then   # built by this run
    written=$(find "$src" -path "$src/.git" -prune -o -newer "$TMP/stamp" -print -quit)
    expect "the source tree was not written to" eq "$written" ""
    expect "the source tree is still clean in git" eq "$(git -C "$src" status --porcelain | head -n 3)" ""
fi

# A second build of the same tree reuses the entry.
before=$(jq -r .built_at "$entry_dir/metadata.json")
t0=$(date +%s)
"$KT_COORD" kernel build --source "$src" --kconfig "$KT_SRC/deploy/ktstr.kconfig" -j 2 \
    > "$TMP/build2.out" 2> "$TMP/build2.err"
rc=$?
t1=$(date +%s)
expect "second build: exit 0" eq "$rc" 0
expect "second build reuses the cache entry (took $((t1 - t0)) s)" test $((t1 - t0)) -lt 60
expect "second build left the entry as it was" \
    eq "$(jq -r .built_at "$entry_dir/metadata.json")" "$before"

# One cell on the built kernel under the scx_simple of the same build.
lock=()
[ -n "${KTSTR_VM_LOCK:-}" ] && lock=(flock "$KTSTR_VM_LOCK")
mkdir -p "$TMP/cell"
"${lock[@]}" "$KT_WORKER" run-cell --out "$TMP/cell" --kernel "$entry_dir/bzImage" \
    --topology tiny-2llc --scenario steady --scheduler "$entry_dir/bin/scx_simple" \
    --duration 3 > "$TMP/cell/stdout" 2> "$TMP/cell/stderr"
RC=$?
SIDECAR=$(ls "$TMP/cell"/*.ktstr.json 2> /dev/null | head -n1)
echo "[cell] rc=$RC $(cat "$TMP/cell/stdout")"
[ -n "$SIDECAR" ] || { echo "[cell] no sidecar; stderr:"; tail -n 20 "$TMP/cell/stderr"; }
expect "cell: exit status 0" eq "$RC" 0
expect "cell: verdict pass" eq "$(field .verdict)" pass
expect "cell: ran the built kernel" eq "$(field .kernel_version)" 6.12.117
expect "cell: sched_ext ops read from the kernel" eq "$(field .scheduler_state.ops)" simple
expect "cell: still enabled at the end" eq "$(field .scheduler_state.state)" enabled
finish

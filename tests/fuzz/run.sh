#!/usr/bin/env bash
# Builds every libFuzzer target under tests/fuzz/ (fuzz_*.c) with clang
# -fsanitize=fuzzer,address,undefined and runs each for a bounded time.
#
#   tests/fuzz/run.sh [SECONDS]      (default 20 per target)
#
# Each target's header comment holds its build line ("clang ... -o
# /tmp/fuzz_NAME") and its run line (dictionary and seed folders); this
# script takes both from there, so a new target only needs that comment.
# Seeds are copied into a scratch corpus: the repository is not written.
# One summary line per target; exit 1 when a target crashed, leaked, timed
# out or failed to build (its reproducer is kept and named), 0 otherwise.
# Without clang's libFuzzer runtime (Debian: clang, libclang-rt-14-dev) it
# tries to install it when run as root with apt-get, and otherwise prints
# SKIP and exits 0. KT_FUZZ_NO_INSTALL=1 never installs; KT_FUZZ_OUT=DIR
# keeps binaries and findings there (default: a temporary folder, removed
# when nothing was found).
set -uo pipefail

secs=${1:-20}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ] || [ "$secs" -gt 86400 ]; then
    echo "usage: $0 [SECONDS]   (1..86400, default 20)" >&2
    exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2

out=${KT_FUZZ_OUT:-}
keep_out=1
if [ -z "$out" ]; then
    out=$(mktemp -d /tmp/ktstr-fuzz.XXXXXX) || exit 2
    keep_out=0
fi
mkdir -p "$out" || exit 2

cc=${CLANG:-clang}
probe_fuzzer() {
    command -v "$cc" >/dev/null 2>&1 || return 1
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
        >"$out/probe.c"
    "$cc" -fsanitize=fuzzer,address,undefined "$out/probe.c" -o "$out/probe" >"$out/probe.log" 2>&1
}

if ! probe_fuzzer; then
    if [ "${KT_FUZZ_NO_INSTALL:-0}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "fuzz: clang's libFuzzer runtime is missing; installing clang libclang-rt-14-dev"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q clang libclang-rt-14-dev >"$out/apt.log" 2>&1 ||
            echo "fuzz: apt-get install failed (see $out/apt.log)"
    fi
    if ! probe_fuzzer; then
        echo "SKIP: no clang with the libFuzzer runtime (-fsanitize=fuzzer): install clang and libclang-rt-14-dev"
        [ -f "$out/probe.log" ] && sed -n '1,3p' "$out/probe.log" | sed 's/^/fuzz:   /'
        [ "$keep_out" = 0 ] && rm -rf "$out"
        exit 0
    fi
fi

# The value of a header comment's line that holds the build or run command.
header_line() { # file pattern
    sed -n '1,60p' "$1" | grep -E "$2" | head -n1 | sed -E 's/^[[:space:]]*\*[[:space:]]*//'
}

lib_sources=$(ls common/*.c proto/*.c | grep -v '/kt_wire\.c$' | tr '\n' ' ')

failed=0
found=0
targets=()
for src in tests/fuzz/fuzz_*.c; do
    [ -e "$src" ] || continue
    targets+=("$src")
done
if [ ${#targets[@]} -eq 0 ]; then
    echo "fuzz: no targets under tests/fuzz/"
    exit 1
fi

for src in "${targets[@]}"; do
    name=$(basename "$src" .c)
    bin="$out/$name"
    # Every target links the whole of common/ and proto/ (but the czmq
    # transport), so a decoder that gains a dependency never breaks the fuzz
    # build; the linker keeps only what the target reaches.
    build="$cc -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Icommon -Iproto"
    build="$build $src $lib_sources -lmsgpackc -lfyaml -llz4 -lsodium -ljansson -lm -lpthread -o $bin"
    # Word splitting is wanted: the line is a command with plain arguments.
    # shellcheck disable=SC2086
    if ! $build >"$out/$name.build.log" 2>&1; then
        echo "$name: FAIL build (see $out/$name.build.log)"
        sed -n '1,5p' "$out/$name.build.log" | sed 's/^/  /'
        failed=1
        keep_out=1
        continue
    fi

    # Dictionary and seed folders from the run line.
    runline=$(header_line "$src" "/tmp/$name -")
    args=()
    corpus="$out/$name.corpus"
    rm -rf "$corpus"
    mkdir -p "$corpus"
    for tok in $runline; do
        case $tok in
        -dict=*)
            [ -f "${tok#-dict=}" ] && args+=("$tok")
            ;;
        -* | /* | "&&" | mkdir) ;;
        *)
            if [ -d "$tok" ]; then
                cp -r "$tok"/. "$corpus"/ 2>/dev/null
            fi
            ;;
        esac
    done
    log="$out/$name.log"
    mkdir -p "$out/$name.findings"
    start=$(date +%s)
    # -timeout: one input may not take over 10 s; -rss_limit_mb: a decoder
    # that allocates what a hostile header announces is a finding.
    LSAN_OPTIONS="suppressions=$root/tests/fuzz/lsan.supp:print_suppressions=0" \
    timeout --kill-after=10 $((secs + 60)) "$bin" -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/$name.findings/" "${args[@]}" "$corpus" >"$log" 2>&1
    rc=$?
    wall=$(($(date +%s) - start))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | awk '{print $2}')
    corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -n1 | awk '{print $2}')
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n1)
    if [ $rc -eq 0 ]; then
        echo "$name: OK ${wall}s runs=${runs:-?} cov=${cov:-?} corpus=${corp:-?} peak_rss_mb=${rss:-?}"
    else
        what=$(grep -m1 -E '^==[0-9]+==ERROR|runtime error|ERROR: libFuzzer|deadly signal|SUMMARY' "$log")
        repro=$(ls "$out/$name.findings"/ 2>/dev/null | head -n1)
        echo "$name: FAIL rc=$rc after ${wall}s: ${what:-see log}"
        [ -n "$repro" ] && echo "  reproducer: $out/$name.findings/$repro (run: $bin $out/$name.findings/$repro)"
        echo "  log: $log"
        failed=1
        found=1
        keep_out=1
    fi
    rm -rf "$corpus"
done

if [ "$keep_out" = 0 ] && [ "$failed" = 0 ]; then
    rm -rf "$out"
fi
[ "$found" = 1 ] && echo "fuzz: findings kept under $out"
exit $failed

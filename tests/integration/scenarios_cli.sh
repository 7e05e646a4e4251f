#!/usr/bin/env bash
# scenarios_cli: `ktstr-coord scenarios` lists every built-in scenario (one
# aligned line each, the same names as --json), --yaml NAME prints what
# --yaml-all DIR writes, and every emitted file is the same scenario as the
# built-in: a gauntlet naming the files expands to the cells, with the same
# content-hashed ids, as one naming the built-ins (`ktstr-coord list --ids`;
# the id hashes the resolved plan). Changing one file changes its ids, so
# the comparison can fail. An unknown name exits 2 and names the known ones.
# TAP on stdout. Env: KT_COORD, KT_SRC (set by meson).
set -uo pipefail

if [ -z "${KT_COORD:-}" ] || [ ! -x "${KT_COORD:-}" ]; then
    echo "1..0 # SKIP ktstr-coord is not built (KT_COORD unset)"
    exit 77
fi
: "${KT_SRC:?KT_SRC must name the source tree}"
if ! command -v jq >/dev/null; then
    echo "1..0 # SKIP 'jq' is not installed (deploy/setup.sh installs it)"
    exit 77
fi

tmp=$(mktemp -d /tmp/kt-scenarios-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

n=0
failures=0
expect() { # expect DESCRIPTION COMMAND...
    local what=$1
    shift
    n=$((n + 1))
    if "$@"; then
        echo "ok $n - $what"
    else
        echo "not ok $n - $what"
        failures=$((failures + 1))
    fi
}
eq() { [ "$1" = "$2" ] || { echo "#   expected '$2', got '$1'"; return 1; }; }
contains() { case "$1" in *"$2"*) return 0 ;; *) echo "#   '$1' lacks '$2'"; return 1 ;; esac; }

# ---- the list ----
"$KT_COORD" scenarios > "$tmp/list" 2> "$tmp/list.err"
expect "list: exit 0" eq "$?" 0
"$KT_COORD" scenarios --json > "$tmp/list.json" 2> "$tmp/json.err"
expect "--json: exit 0" eq "$?" 0
expect "--json: an array of objects with name and description" \
    jq -e 'type == "array" and length > 0 and all(.[]; (.name | type) == "string"
           and (.description | length) > 0 and (.constraints | type) == "object")' \
    "$tmp/list.json"
mapfile -t names < <(jq -r '.[].name' "$tmp/list.json")
expect "list: one line per built-in (${#names[@]})" eq "$(wc -l < "$tmp/list")" "${#names[@]}"
expect "list: the names in order" eq "$(awk '{print $1}' "$tmp/list" | paste -sd' ')" \
    "${names[*]}"
for want in steady steady_llc oversubscribed pipe_pingpong futex_pingpong; do
    expect "list: has $want" grep -q "^$want " "$tmp/list"
done
expect "list: steady_llc's constraint" grep -Eq '^steady_llc +llcs>=2 ' "$tmp/list"
# Aligned: each line's description starts at the same column.
cols=$(jq -r '.[].description' "$tmp/list.json" | paste -d'\t' "$tmp/list" - |
    awk -F'\t' '{print index($1, $2)}' | sort -u)
expect "list: the descriptions start in one column" eq "$(echo "$cols" | wc -l)" 1
expect "list: every description is on its line" test "$cols" -gt 1

# ---- YAML ----
"$KT_COORD" scenarios --yaml-all "$tmp/yaml" 2> "$tmp/all.err"
expect "--yaml-all: exit 0" eq "$?" 0
for name in "${names[@]}"; do
    "$KT_COORD" scenarios --yaml "$name" > "$tmp/one.yaml"
    expect "--yaml $name: exit 0" eq "$?" 0
    expect "--yaml $name: the same text as --yaml-all's file" \
        cmp -s "$tmp/one.yaml" "$tmp/yaml/$name.yaml"
    expect "--yaml $name: names the scenario" grep -qx "name: $name" "$tmp/one.yaml"
done
expect "--yaml-all: one file per scenario, nothing else" \
    eq "$(find "$tmp/yaml" -type f | wc -l)" "${#names[@]}"

# ---- the files read back as the same scenarios ----
gauntlet() { # gauntlet FILE SCENARIO...
    local out=$1
    shift
    {
        echo "kernels: [$KT_SRC/tests/fixtures/gauntlets/fake/bzImage]"
        echo "topologies: [tiny-1llc, tiny-2llc, numa2-4llc]"
        echo "scenarios:"
        for s in "$@"; do
            echo "  - $s"
        done
    } > "$out"
}
gauntlet "$tmp/builtin.yaml" "${names[@]}"
files=()
for name in "${names[@]}"; do
    files+=("$tmp/yaml/$name.yaml")
done
gauntlet "$tmp/files.yaml" "${files[@]}"
"$KT_COORD" list --ids --gauntlet "$tmp/builtin.yaml" > "$tmp/builtin.cells" 2> "$tmp/builtin.err"
expect "list --gauntlet of the built-ins: exit 0" eq "$?" 0
"$KT_COORD" list --ids --gauntlet "$tmp/files.yaml" > "$tmp/files.cells" 2> "$tmp/files.err"
rc=$?
expect "list --gauntlet of the emitted files: exit 0" eq "$rc" 0
[ "$rc" = 0 ] || sed 's/^/#   /' "$tmp/files.err"
expect "every built-in has cells" test "$(wc -l < "$tmp/builtin.cells")" -ge "${#names[@]}"
expect "the files expand to the built-ins' cells and ids" \
    cmp -s "$tmp/builtin.cells" "$tmp/files.cells"

# The comparison sees a change: steady with another nice has other ids.
sed 's/^  work: spin$/  work: spin\n  nice: 5/' "$tmp/yaml/steady.yaml" > "$tmp/changed.yaml"
mkdir -p "$tmp/changed"
cp "$tmp/changed.yaml" "$tmp/changed/steady.yaml"
gauntlet "$tmp/one_builtin.yaml" steady
gauntlet "$tmp/one_changed.yaml" "$tmp/changed/steady.yaml"
expect "a changed file: the YAML changed" grep -q "nice: 5" "$tmp/changed/steady.yaml"
a=$("$KT_COORD" list --ids --gauntlet "$tmp/one_builtin.yaml" 2>/dev/null | awk '{print $1}')
b=$("$KT_COORD" list --ids --gauntlet "$tmp/one_changed.yaml" 2>/dev/null | awk '{print $1}')
expect "a changed file: cells listed" test -n "$b"
expect "a changed file: other ids" test "$a" != "$b"

# ---- bad input ----
"$KT_COORD" scenarios --yaml no_such_scenario > "$tmp/bad.out" 2> "$tmp/bad.err"
expect "unknown scenario: exit 2" eq "$?" 2
expect "unknown scenario: named, with the known ones" \
    contains "$(cat "$tmp/bad.err")" "unknown scenario 'no_such_scenario' (known: ${names[0]}, "
expect "unknown scenario: nothing on stdout" test ! -s "$tmp/bad.out"
"$KT_COORD" scenarios --json --yaml steady > /dev/null 2>&1
expect "two modes: exit 2" eq "$?" 2
"$KT_COORD" scenarios extra > /dev/null 2>&1
expect "an argument: exit 2" eq "$?" 2
touch "$tmp/plainfile"
"$KT_COORD" scenarios --yaml-all "$tmp/plainfile" > /dev/null 2> "$tmp/notdir.err"
expect "--yaml-all on a file: exit 1" eq "$?" 1
expect "--yaml-all on a file: says so" contains "$(cat "$tmp/notdir.err")" "is not a directory"

echo "1..$n"
[ "$failures" -eq 0 ] || { echo "# $failures check(s) failed"; exit 1; }
exit 0

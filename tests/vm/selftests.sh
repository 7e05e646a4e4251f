# ktstr-coord selftests: the kernel's sched_ext selftests as cells, end to
# end on the fixture kernel through the embedded worker: the real runner
# lists its tests on the host and two of them pass in their own VMs; a fake
# runner (a static C program speaking the runner's output format) shows that
# each verdict comes from the test's TAP line and not from the exit status
# (it exits 0 for all): not ok is a fail, # SKIP a skip, no line an error,
# a hang an error at the timeout. A full run of every selftest is a manual
# command (README: "The kernel's sched_ext selftests").
source "$(dirname "$0")/lib.sh"
need_fixture
COORD=${KT_COORD:-$KT_BUILD/coordinator/ktstr-coord}
RUNNER=$BIN/scx_selftests
if [ ! -x "$COORD" ] || [ ! -x "$RUNNER" ]; then
    echo "SKIP: needs $COORD and $RUNNER"
    exit 77
fi

list=$("$COORD" selftests --runner "$RUNNER" --list)
expect "the runner lists minimal" contains "$list" "minimal "
expect "the runner lists at least 10 tests" test "$(printf '%s\n' "$list" | wc -l)" -ge 10

# selftests_run NAME ARGS...: a run into $TMP/NAME; sets RC and RUN_DIR.
selftests_run() {
    local name=$1; shift
    "$COORD" selftests --kernel "$KERNEL" --results "$TMP/$name" --progress plain \
        --junit "$TMP/$name/junit.xml" "$@" > "$TMP/$name.out" 2>&1
    RC=$?
    RUN_DIR=$(ls -d "$TMP/$name"/2*/ 2>/dev/null | head -n1)
    echo "[$name] rc=$RC"
    sed -n '/^run .*cell(s)$/,$p' "$TMP/$name.out"
}
# verdict_of RUN_DIR TEST: the verdict in that test's sidecar.
verdict_of() {
    local f
    f=$(ls "$1"/*/selftests__"$2"__*.ktstr.json 2>/dev/null | head -n1)
    [ -n "$f" ] && jq -r .verdict "$f" || echo "no-sidecar"
}

selftests_run real --runner "$RUNNER" --test minimal --test select_cpu_dfl --timeout 90
expect "real: exit status 0" eq "$RC" 0
expect "real: minimal passed" eq "$(verdict_of "$RUN_DIR" minimal)" pass
expect "real: select_cpu_dfl passed" eq "$(verdict_of "$RUN_DIR" select_cpu_dfl)" pass
SIDECAR=$(ls "$RUN_DIR"/*/selftests__minimal__*.ktstr.json | head -n1)
expect "real: judged by its TAP line" eq "$(field .payload.tap.line)" "ok 1 minimal # "
expect "real: the runner ran as the payload" eq "$(field '.payload.args | join(" ")')" "-t minimal"
expect "real: JUnit has both" eq "$(grep -c '<testcase' "$TMP/real/junit.xml")" 2
expect "real: run store" test -s "$TMP/real/ktstr.db"
expect "real: run.json lists 2 cells" eq "$(jq '.cells | length' "$RUN_DIR/run.json")" 2

cat > "$TMP/fake_runner.c" <<'C'
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static const char *const tests[] = {"pass_me", "fail_me", "skip_me", "silent_me", "hang_me"};
int main(int argc, char **argv)
{
    int list = argc == 4 && strcmp(argv[1], "-s") == 0 && strcmp(argv[2], "-t") == 0;
    if (list) {
        for (int i = 0; i < 5; i++)
            printf("===== START =====\nTEST: %s\nDESCRIPTION: fake %d\nOUTPUT:\n"
                   "ok %d %s # SKIP \n=====  END  =====\n", tests[i], i, i + 1, tests[i]);
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "-t") != 0)
        return 2;
    const char *t = argv[2];
    printf("===== START =====\nTEST: %s\nOUTPUT:\n", t);
    if (strcmp(t, "pass_me") == 0)
        printf("ok 1 pass_me # \n");
    else if (strcmp(t, "fail_me") == 0)
        printf("ERR: fail_me.c:12\nnot ok 1 fail_me # \n");
    else if (strcmp(t, "skip_me") == 0)
        printf("ok 1 skip_me # SKIP no such feature\n");
    else if (strcmp(t, "hang_me") == 0)
        for (;;)
            pause();
    printf("=====  END  =====\n");
    return 0;
}
C
if gcc -static -O1 -o "$TMP/runner" "$TMP/fake_runner.c" 2> "$TMP/gcc.log"; then
    selftests_run fake --runner "$TMP/runner" --timeout 5
    expect "fake: exit status 1 (a test failed)" eq "$RC" 1
    expect "fake: pass_me pass" eq "$(verdict_of "$RUN_DIR" pass_me)" pass
    expect "fake: fail_me fail" eq "$(verdict_of "$RUN_DIR" fail_me)" fail
    expect "fake: skip_me skip" eq "$(verdict_of "$RUN_DIR" skip_me)" skip
    expect "fake: silent_me error" eq "$(verdict_of "$RUN_DIR" silent_me)" error
    expect "fake: hang_me error" eq "$(verdict_of "$RUN_DIR" hang_me)" error
    SIDECAR=$(ls "$RUN_DIR"/*/selftests__fail_me__*.ktstr.json | head -n1)
    expect "fake: the failing line is the reason" eq "$(field .reason)" "payload_tap: not ok 1 fail_me # "
    expect "fake: its exit status was 0" eq "$(field .payload.exit_code)" 0
    SIDECAR=$(ls "$RUN_DIR"/*/selftests__silent_me__*.ktstr.json | head -n1)
    expect "fake: no line says so" contains "$(field .reason)" "printed no TAP result line for 'silent_me'"
    SIDECAR=$(ls "$RUN_DIR"/*/selftests__hang_me__*.ktstr.json | head -n1)
    expect "fake: the hang timed out" contains "$(field .reason)" "timed out after 5000 ms"
    SIDECAR=$(ls "$RUN_DIR"/*/selftests__skip_me__*.ktstr.json | head -n1)
    expect "fake: the skip line is the reason" contains "$(field .reason)" "SKIP no such feature"
    expect "fake: JUnit counts" eq "$(grep -c '<failure' "$TMP/fake/junit.xml"),$(grep -c '<skipped' "$TMP/fake/junit.xml"),$(grep -c '<error' "$TMP/fake/junit.xml")" "1,1,2"
else
    echo "# gcc -static failed, the fake runner part is skipped:"; sed 's/^/# /' "$TMP/gcc.log"
fi
finish

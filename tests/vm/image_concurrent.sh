# Three VMs start at once with the same inputs: one image build, one image
# in the shared directory, and all three cells pass.
source "$(dirname "$0")/lib.sh"
need_fixture
for i in 1 2 3; do
    mkdir -p "$TMP/c$i"
    "$KT_WORKER" run-cell --kernel "$KERNEL" --topology 1,1,1,1 --scenario steady --duration 2 \
        --scheduler "$BIN/scx_simple" --accel tcg --out "$TMP/c$i" > "$TMP/c$i/stdout" 2>&1 &
done
wait
built=0; passed=0
for i in 1 2 3; do
    s=$(ls "$TMP/c$i"/*.ktstr.json 2>/dev/null | head -n1)
    [ -n "$s" ] || { echo "c$i: no sidecar"; cat "$TMP/c$i/stdout"; continue; }
    [ "$(jq -r .image.built "$s")" = true ] && built=$((built + 1))
    [ "$(jq -r .verdict "$s")" = pass ] && passed=$((passed + 1))
    echo "c$i: $(jq -c '{verdict, reason, image}' "$s")"
done
expect "exactly one build" eq "$built" 1
expect "exactly one image" eq "$(ls "$KTSTR_IMAGE_DIR" | grep -c '^ktstr-lz4-[0-9a-f]*$')" 1
expect "all three passed" eq "$passed" 3
finish

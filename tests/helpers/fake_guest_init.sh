#!/bin/busybox sh
# A stand-in for ktstr-init, for tests of the VM runner only: PID 1 in a
# busybox initramfs, speaking the channel protocol with printf-made msgpack
# frames (4-byte big-endian length, then the body). The behaviour comes from
# "ktmode=" on the kernel command line:
#   hello-result  hello; on a cell: hb x3, result, wait for the ack, power off;
#                 on a shutdown: power off (the default)
#   hang          never says hello (boot timeout, SIGKILL tests)
#   hello-hang    hello, then silence (run timeout, heartbeat, SIGKILL tests)
#   no-poweroff   hello; result on a cell, but never powers off (collect timeout)
#   exit          PID 1 exits at once: the kernel panics, QEMU exits
#   oversize      hello, then a frame announcing 4 GiB (the host must refuse)
#   topo          prints the CPU / cache / NUMA shape it sees, then as hello-result
/bin/busybox mkdir -p /proc /sys /dev /bin /sbin /usr/bin /usr/sbin /tmp
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo KTSTR_INIT_READY

mode=hello-result
for w in $(cat /proc/cmdline); do
    case $w in ktmode=*) mode=${w#ktmode=} ;; esac
done

port=
for d in /sys/class/virtio-ports/*; do
    [ "$(cat "$d/name" 2>/dev/null)" = org.ktstr.0 ] && port=/dev/${d##*/}
done
echo "fake-init: mode=$mode port=$port"
# Keep the port open all along: the guest driver drops what the host sends
# while no one in the guest has the port open.
exec 3<>"$port"

off() { sync; poweroff -f; sleep 60; }
# {"t":"hello"}
hello() { printf '\000\000\000\011\201\241t\245hello' >&3; }
# {"t":"hb"}
hb() { printf '\000\000\000\006\201\241t\242hb' >&3; }
# {"t":"result","verdict":"pass"}
result() { printf '\000\000\000\027\202\241t\246result\247verdict\244pass' >&3; }
# Reads one frame from the port into /tmp/frame.
readframe() {
    set -- $(dd bs=1 count=4 <&3 2>/dev/null | od -An -tu1)
    [ $# -eq 4 ] || return 1
    n=$(( ($1 << 24) | ($2 << 16) | ($3 << 8) | $4 ))
    dd bs=1 count=$n of=/tmp/frame <&3 2>/dev/null
}

if [ "$mode" = topo ]; then
    echo "topo: cpus=$(cat /sys/devices/system/cpu/online)"
    echo "topo: nodes=$(cat /sys/devices/system/node/online 2>/dev/null)"
    for n in /sys/devices/system/node/node[0-9]*; do
        [ -d "$n" ] && echo "topo: ${n##*/} cpus=$(cat $n/cpulist) $(grep MemTotal $n/meminfo | tr -s ' ' | cut -d' ' -f4-)"
    done
    echo "topo: l3=$(cat /sys/devices/system/cpu/cpu*/cache/index3/shared_cpu_list | sort -u | tr '\n' ' ')"
    echo "topo: smt=$(cat /sys/devices/system/cpu/cpu*/topology/thread_siblings_list | sort -u | tr '\n' ' ')"
    echo "topo: pkgs=$(cat /sys/devices/system/cpu/cpu*/topology/physical_package_id | sort -u | tr '\n' ' ')"
    mode=hello-result
fi

case $mode in
hang)
    while :; do sleep 3600; done ;;
exit)
    exit 1 ;;
hello-hang)
    hello
    while :; do sleep 3600; done ;;
oversize)
    hello
    printf '\377\377\377\377\201' >&3
    while :; do sleep 3600; done ;;
hello-result|no-poweroff)
    hello
    readframe || off
    if grep -q shutdown /tmp/frame; then off; fi
    for i in 1 2 3; do hb; sleep 0.1; done
    result
    readframe
    grep -q ack /tmp/frame && echo "fake-init: got ack"
    [ "$mode" = no-poweroff ] && while :; do sleep 3600; done
    off ;;
*)
    echo "fake-init: unknown mode $mode"
    off ;;
esac

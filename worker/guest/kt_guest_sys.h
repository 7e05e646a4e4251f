/* The guest's system plumbing for ktstr-init: mounts, the console, bounded
 * file reads and writes, clocks, kernel facts, the orphan reaper and power
 * off. Everything here is plain Linux and also runs on the host in tests
 * (except the parts that need PID 1: mounts, power off). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* CLOCK_MONOTONIC in ns / ms, and CLOCK_BOOTTIME in ms (the "uptime" the
 * heartbeats and events carry). */
uint64_t kt_guest_sys_now_ns(void);
uint64_t kt_guest_sys_now_ms(void);
uint64_t kt_guest_sys_uptime_ms(void);
void kt_guest_sys_sleep_ms(unsigned ms);

/* Reads at most len - 1 bytes of a (sysfs/proc) file into buf, NUL
 * terminated, trailing newlines stripped. Returns the length or -errno. */
int kt_guest_sys_read_file(const char *path, char *buf, size_t len);
/* Writes text to an existing file (no O_CREAT) in one write(). 0 or -errno. */
int kt_guest_sys_write_file(const char *path, const char *text);
bool kt_guest_sys_exists(const char *path);

/* Mounts proc, sys, devtmpfs, tmpfs (/tmp, /run), cgroup2, bpffs and
 * tracefs. proc, sys and devtmpfs are required (-errno when one fails, with
 * the mount named in the log); the others are tolerated missing. */
int kt_guest_sys_mount_all(void);

/* Points fds 0, 1, 2 at /dev/console (the kernel may have started PID 1
 * without one when the initramfs has no /dev/console node). */
void kt_guest_sys_console_setup(void);

/* Writes one line to the console (stdout), adding the newline. */
void kt_guest_sys_console_line(const char *prefix, const char *line);

/* uname release into buf. */
void kt_guest_sys_kernel_release(char *buf, size_t len);

/* True when the kernel carries lockdep or KASAN: /proc/lockdep exists, or
 * the boot log (read from /dev/kmsg at the start) names the lock
 * dependency validator or KernelAddressSanitizer. */
bool kt_guest_sys_debug_kernel(void);

/* Runs `/bin/busybox --install -s /bin` when busybox is there (bounded). */
void kt_guest_sys_busybox_install(void);

/* Reaps zombie children of this process found in /proc, except the pids in
 * keep (whose status their owner collects). Returns how many it reaped. */
int kt_guest_sys_reap_orphans(const pid_t *keep, size_t n_keep);

/* sync() and reboot(RB_POWER_OFF); never returns (PID 1 must not exit). */
__attribute__((noreturn)) void kt_guest_sys_poweroff(void);

/* SCHED_FIFO at prio for the calling thread, with SCHED_RESET_ON_FORK so the
 * processes it forks (workers, the scheduler) start as SCHED_NORMAL. Threads
 * created afterwards also start SCHED_NORMAL and must call this themselves.
 * 0 or -errno. */
int kt_guest_sys_make_rt(int prio);

# bench/table.awk - prints bench/run's table from its results file, whose
# lines are "PEER MODE KEY VALUE" (PEER: zenith, beanstalkd or machine).
# A figure recorded more than once (bench/run --repeat) is their median.
# Variables from bench/run: jobs, repeat, fs, cpus, kernel, and for the drains
# through worker processes noop_procs, exec_procs (lists of process
# counts) and exec_jobs.

function commas(s,    out) {
    out = ""
    while (length(s) > 3) {
        out = "," substr(s, length(s) - 2) out
        s = substr(s, 1, length(s) - 3)
    }
    return s out
}

# Thousands separators for the integer part of n printed with fmt.
function num(n, fmt,    s, i) {
    if (n == "")
        return "-"
    s = sprintf(fmt, n)
    i = index(s, ".")
    return i ? commas(substr(s, 1, i - 1)) substr(s, i) : commas(s)
}

# The lowest and highest of the rounds' ratios z/b into RLO and RHI; false
# unless both peers have the figure for every round (bench/run --repeat).
function spread(mode, key,    kz, kb, i, r) {
    kz = "zenith" SUBSEP mode SUBSEP key
    kb = "beanstalkd" SUBSEP mode SUBSEP key
    if (N[kz] < 2 || N[kz] != N[kb])
        return 0
    for (i = 1; i <= N[kz]; i++) {
        if (X[kb, i] <= 0)
            return 0
        r = X[kz, i] / X[kb, i]
        if (i == 1 || r < RLO)
            RLO = r
        if (i == 1 || r > RHI)
            RHI = r
    }
    return 1
}

# One row: label, unit, key, printf format, scale, which way is better.
# With rounds, the mark says whether every round agrees: a pair whose
# rounds fall on both sides of 1 is "mixed".
function row(mode, label, unit, key, fmt, scale, better, info,
             z, b, r, mark, range, ahead, behind) {
    z = V["zenith", mode, key]
    b = V["beanstalkd", mode, key]
    if (z != "")
        z = z / scale
    if (b != "")
        b = b / scale
    r = (z != "" && b != "" && b > 0) ? z / b : ""
    range = ""
    mark = ""
    if (spread(mode, key)) {
        range = sprintf("%.2f-%.2f", RLO, RHI)
        ahead = better == "higher" ? RLO >= 1 : RHI <= 1
        behind = better == "higher" ? RHI < 1 : RLO > 1
        mark = ahead ? "ok" : behind ? "BEHIND" : "mixed"
    } else if (r != "") {
        mark = (better == "higher" ? r >= 1 : r <= 1) ? "ok" : "BEHIND"
        if (repeat > 1)
            range = "-" # a round without both figures
    }
    if (info)
        mark = "(info)"
    printf "  %-36s %-6s %10s %11s %6s %11s  %-6s  %s\n", label, unit,
           num(z, fmt), num(b, fmt), r == "" ? "-" : sprintf("%.2f", r),
           range, better, mark
}

# The columns' names, above the rows of a pair.
function header() {
    printf "  %-36s %-6s %10s %11s %6s %11s  %-6s\n", "", "unit", "zenith",
           "beanstalkd", "z/b", "rounds", "better"
}

function pair(mode, zdesc, bdesc,    bound, p50) {
    printf "\ndurability %s\n  zenith --durability %s: %s\n" \
           "  beanstalkd %s\n", mode, mode, zdesc, bdesc
    header()
    row(mode, "push, 1 producer", "jobs/s", "push1.rate", "%.0f", 1, "higher")
    row(mode, "push, 8 producers", "jobs/s", "push8.rate", "%.0f", 1, "higher")
    row(mode, "push, batches of 1,000 (a)", "jobs/s", "pushb.rate", "%.0f", 1,
        "higher")
    row(mode, "drain, 4 consumers, after push1 (b)", "jobs/s",
        "drain4.push1.rate", "%.0f", 1, "higher")
    row(mode, "drain, 4 consumers, after push8 (b)", "jobs/s",
        "drain4.push8.rate", "%.0f", 1, "higher")
    row(mode, "drain, 4 consumers, after pushb (b)", "jobs/s",
        "drain4.pushb.rate", "%.0f", 1, "higher")
    row(mode, "push->fetch latency p50 (c)", "us", "latency.p50_us", "%.0f", 1,
        "lower")
    row(mode, "push->fetch latency p99 (c)", "us", "latency.p99_us", "%.0f", 1,
        "lower")
    row(mode, "server peak RSS (VmHWM)", "MiB", "rss_kb", "%.1f", 1024,
        "lower")
    row(mode, "server CPU time, whole run", "s", "cpu_s", "%.2f", 1, "lower",
        1)
    if (mode != "full")
        return
    p50 = V["machine", "-", "fsync.overwrite_fdatasync_p50_us"]
    if (p50 <= 0)
        return
    bound = 1e6 / p50
    printf "  one fsync per job bounds push, 1 producer at 1e6 / %.0f us = " \
           "%s jobs/s:\n    zenith reaches %.0f%% of it (%.0f us per push), " \
           "beanstalkd %.0f%% (%.0f us per put)\n", p50, num(bound, "%.0f"),
           100 * V["zenith", mode, "push1.rate"] / bound,
           1e6 / V["zenith", mode, "push1.rate"],
           100 * V["beanstalkd", mode, "push1.rate"] / bound,
           1e6 / V["beanstalkd", mode, "push1.rate"]
}

# The drains through worker processes (durability full only).
function workers(mode,    n, p, i) {
    printf "\ndrain through worker processes, durability %s: %s noop jobs, " \
           "%s exec jobs\n  zenith --durability %s: the workers of serve's " \
           "supervisor (zenith work)\n  beanstalkd -b DIR -f 0: as many " \
           "processes of zn_bench\n", mode, num(jobs, "%.0f"),
           num(exec_jobs, "%.0f"), mode
    header()
    n = split(noop_procs, p, " ")
    for (i = 1; i <= n; i++)
        row(mode, "noop, " p[i] " worker processes (d)", "jobs/s",
            "work.noop." p[i] ".rate", "%.0f", 1, "higher")
    n = split(exec_procs, p, " ")
    for (i = 1; i <= n; i++)
        row(mode, "exec /bin/true, " p[i] " processes (e)", "jobs/s",
            "work.true." p[i] ".rate", "%.0f", 1, "higher")
}

# Each figure once per round; V gets the median of the rounds.
{
    k = $1 SUBSEP $2 SUBSEP $3
    X[k, ++N[k]] = $4
}

function median(k,    n, i, j, t, a) {
    n = N[k]
    for (i = 1; i <= n; i++) {
        a[i] = X[k, i] + 0
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
            t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
        }
    }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

END {
    for (k in N)
        V[k] = median(k)
    printf "zenith beside beanstalkd 1.12: %s no-op jobs per scenario, " \
           "%s CPUs, Linux %s\n", num(jobs, "%.0f"), cpus, kernel
    if (repeat > 1)
        printf "each figure: the median of %d rounds, the peers taking " \
               "turns\n", repeat
    printf "\nfsync on the data directories' file system, %s: " \
           "4 KiB write + sync, p50 (p99) of %s\n", fs,
           V["machine", "-", "fsync.ops"]
    printf "  in place:  fdatasync %s us (%s), fsync %s us (%s)\n",
           num(V["machine", "-", "fsync.overwrite_fdatasync_p50_us"], "%.0f"),
           num(V["machine", "-", "fsync.overwrite_fdatasync_p99_us"], "%.0f"),
           num(V["machine", "-", "fsync.overwrite_fsync_p50_us"], "%.0f"),
           num(V["machine", "-", "fsync.overwrite_fsync_p99_us"], "%.0f")
    printf "  appending: fdatasync %s us (%s), fsync %s us (%s)\n",
           num(V["machine", "-", "fsync.append_fdatasync_p50_us"], "%.0f"),
           num(V["machine", "-", "fsync.append_fdatasync_p99_us"], "%.0f"),
           num(V["machine", "-", "fsync.append_fsync_p50_us"], "%.0f"),
           num(V["machine", "-", "fsync.append_fsync_p99_us"], "%.0f")
    pair("full", "fsync before OK", "-b DIR -f 0: fsync on every write")
    pair("fast", "fsync at checkpoints",
         "-b DIR: fsync at most every 50 ms")
    workers("full")
    print ""
    print "z/b = zenith / beanstalkd (of the medians); rounds: the lowest " \
          "and highest z/b"
    print "of single rounds (--repeat). ok: zenith at least equal (in every " \
          "round); BEHIND:"
    print "zenith worse (in every round); mixed: rounds on both sides."
    print "(a) zenith: one PUSHB of 1,000 jobs per request. beanstalkd has " \
          "no batch command:"
    print "    1,000 puts are pipelined in one write, then the 1,000 " \
          "replies are read."
    print "(b) 4 connections FETCH+ACK (beanstalkd: reserve+delete) the " \
          "jobs the push left;"
    print "    the clock stops at the last ACK (delete)."
    print "(c) 1,000 sequential jobs on an idle server: a consumer waits in " \
          "FETCH (reserve),"
    print "    the producer pushes a job that carries its push time; " \
          "measured to its arrival."
    print "(d) N worker processes, each its own connection, fetch, run the " \
          "handler, ACK"
    print "    (delete); the jobs are pushed first, while the workers wait; " \
          "the clock runs"
    print "    from letting them through to the poll that finds every job " \
          "done."
    print "(e) as (d); the handler runs /bin/true, without a shell, the job " \
          "on its stdin."
}

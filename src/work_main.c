/*
 * work_main.c - zenith-work, the worker program: `zenith work` and the
 * supervisor run it. A program of its own so that the server does not
 * load what only handlers need (libcurl and its TLS stack).
 */
#include "compat.h"

#include "worker/worker.h"

int
main(int argc, char **argv)
{
    return zn_worker_command(argc, argv);
}
